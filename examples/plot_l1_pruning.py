"""
ℓ1 regularisation and batchwise pruning on digits
=================================================

Train the same MLP at several λ with ℓ1 and batchwise threshold pruning
(Reiners et al. §4) and look at the trade-off: density falls with λ while the
accuracy holds until the network starts to collapse. The right panel shows how
the density evolves during training, as recorded in ``history_``.
"""

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from skprune import SparseNetClassifier

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X / 16.0, y, test_size=0.25, stratify=y, random_state=0
)

lambdas = [0.0, 1e-4, 3e-4, 1e-3, 3e-3, 6e-3, 1e-2]
fits = {
    lam: SparseNetClassifier(lam=lam, max_epochs=20, random_state=0).fit(X_train, y_train)
    for lam in lambdas
}

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
xs = [max(lam, 3e-5) for lam in lambdas]
left.semilogx(xs, [f.score(X_test, y_test) for f in fits.values()], "o-", label="test accuracy")
left.semilogx(xs, [f.density_ for f in fits.values()], "s-", label="density")
left.set_xlabel("λ (λ = 0 drawn at 3e-5)")
left.set_title("Trade-off")
left.legend()
for lam, clf in fits.items():
    right.plot(range(1, len(clf.history_) + 1), clf.history_[:, "density"], label=f"λ={lam:g}")
right.set_xlabel("epoch")
right.set_ylabel("density of the dense layers")
right.set_title("Density during training (batchwise pruning)")
right.legend(fontsize=8)
fig.tight_layout()
plt.show()

for lam, clf in fits.items():
    print(f"λ={lam:<7g} accuracy={clf.score(X_test, y_test):.3f} density={clf.density_:.3f}")
