"""
The weight a multi-objective optimiser chooses
==============================================

The multi-objective optimisers of Reiners et al. (§3.2: ``"smgd"``,
``"madam"``, ``"mrmsprop"``) do not take λ as given: at every step they
choose the weight λ* of the two gradients that gives the common descent
direction of minimum norm (eq. 15). :func:`~skprune.plotting.plot_lambda_history`
draws λ* per step and its running mean over an epoch — Fig. 8 of the paper.
"""

import matplotlib.pyplot as plt
import torch
from sklearn.datasets import load_digits

from skprune import SparseNetClassifier
from skprune.plotting import plot_lambda_history

torch.set_num_threads(1)  # tiny network: one thread is fastest

X, y = load_digits(return_X_y=True)
clf = SparseNetClassifier(optimizer="madam", max_epochs=10, random_state=0)
clf.fit(X / 16.0, y)
print(f"{len(clf.lambda_history_)} steps, mean λ* {clf.lambda_history_.mean():.2e}")

# %%
# λ* stays small: the cross-entropy's gradient dominates while the loss falls,
# and the regulariser gains weight once the network fits the data.
ax = plot_lambda_history(clf)
ax.set_title("Digits, MLP, MAdam: λ* per step")
plt.show()
