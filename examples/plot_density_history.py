"""
How the network thins out during training
=========================================

With ℓ1 regularisation and batchwise soft-threshold pruning (Reiners et al.,
§4), weights reach zero during training, not only at its end.
:func:`~skprune.plotting.plot_density_history` draws the share of non-zero
weights after every epoch, for the whole network and for each regularised
layer (``history_`` keys ``density`` and ``layer_density``).
"""

import matplotlib.pyplot as plt
import torch
from sklearn.datasets import load_digits

from skprune import SparseNetClassifier
from skprune.plotting import plot_density_history

torch.set_num_threads(1)  # tiny network: one thread is fastest

X, y = load_digits(return_X_y=True)
clf = SparseNetClassifier(lam=2e-3, max_epochs=15, random_state=0).fit(X / 16.0, y)
print(f"final density {clf.density_:.3f}: {clf.layer_density_}")

# %%
# The hidden layer (64 × 100 weights) loses most of its weights; the output
# layer (100 × 10) keeps more, since every class needs some evidence.
ax = plot_density_history(clf)
ax.set_title("Digits, MLP 64-100-10, ℓ1 (λ = 2e-3) + batchwise pruning")
plt.show()
