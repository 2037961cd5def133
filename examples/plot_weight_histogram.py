"""
The weights that survive pruning
================================

Soft-threshold pruning sets every weight with ``|w| < τ`` to zero after each
batch (Reiners et al., §4). :func:`~skprune.plotting.plot_weight_histogram`
shows the distribution of the weights left, per regularised layer, on a log
count scale; the pruned zeros are counted in the legend.
"""

import matplotlib.pyplot as plt
import torch
from sklearn.datasets import load_digits

from skprune import SparseNetClassifier
from skprune.plotting import plot_weight_histogram

torch.set_num_threads(1)  # tiny network: one thread is fastest

X, y = load_digits(return_X_y=True)
clf = SparseNetClassifier(lam=2e-3, threshold=1e-3, max_epochs=15, random_state=0)
clf.fit(X / 16.0, y)

# %%
# About one hidden weight in six survives; the output layer keeps half of its
# weights, spread wider and flatter, since every class needs some evidence.
ax = plot_weight_histogram(clf)
ax.set_title(f"Non-zero weights after training (density {clf.density_:.2f})")
plt.show()
