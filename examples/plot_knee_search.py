"""
Finding the knee of the loss–density trade-off
==============================================

Training a sparse network means choosing λ in ``(1 − λ)·E + λ·Ω`` (Reiners et
al., eq. 7): too small and few weights are pruned, too large and the network
collapses. :class:`~skprune.ParetoSearchCV` trains a few λ on cross-validation
folds, keeps the Pareto front of (validation loss, density), picks its knee
and refits there — here with the bisection search of Reiners §5 on the
bundled digits.
"""

import warnings

import matplotlib.pyplot as plt
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from skprune import ParetoSearchCV, SparseNetClassifier
from skprune.plotting import plot_pareto

# Networks this small train fastest on one thread; on a busy machine extra
# threads mostly wait for each other.
torch.set_num_threads(1)

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X / 16.0, y, test_size=0.25, stratify=y, random_state=0
)

# %%
# Candidates train for 3 epochs each (multi-fidelity); the refit at the knee
# uses the estimator's own ``max_epochs``.
search = ParetoSearchCV(
    SparseNetClassifier(max_epochs=10, random_state=0),
    strategy="bisection",
    budget=6,
    search_epochs=3,
    cv=3,
)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # collapsed candidates warn
    search.fit(X_train, y_train)

knee = search.knee_
print(f"knee at lambda={knee['lam']:.2g}: cv density {knee['density']:.2f}")
print(
    f"refit: test accuracy {search.score(X_test, y_test):.3f}, "
    f"density {search.best_estimator_.density_:.3f}"
)

# %%
# Every λ tried, the front and its knee. The collapsed network (density 0)
# stays on the front as an extreme but is never the knee.
ax = plot_pareto(search)
ax.set_title("Digits, MLP: bisection knee search")
plt.show()
