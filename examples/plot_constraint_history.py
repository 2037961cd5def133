"""
Reaching a target density with a constraint
===========================================

Instead of a penalty weight, ``regularizer="hard_concrete"`` with
``target_density=ε`` asks for "expected density ≤ ε" and enforces it with a
Lagrange multiplier updated by gradient ascent (Gallego-Posada et al., eq. 5).
:func:`~skprune.plotting.plot_constraint_history` shows, per epoch, the
expected density of the gates, the density of the test-time network, the
target, and the multiplier (right axis): it grows while the constraint is
violated and stops growing once it holds.
"""

import matplotlib.pyplot as plt
import torch
from sklearn.datasets import load_digits

from skprune import SparseNetClassifier
from skprune.plotting import plot_constraint_history

torch.set_num_threads(1)  # tiny network: one thread is fastest

X, y = load_digits(return_X_y=True)
clf = SparseNetClassifier(
    regularizer="hard_concrete", target_density=0.3, max_epochs=15, random_state=0
)
clf.fit(X / 16.0, y)
print(f"target 0.3, reached density {clf.density_:.3f}")

# %%
ax = plot_constraint_history(clf)
ax.set_title("Digits, MLP, hard-concrete gates: density ≤ 0.3")
plt.show()
