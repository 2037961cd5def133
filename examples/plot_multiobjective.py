"""
==========================================================
Multi-objective training: MAdam's λ against the knee's λ
==========================================================

The weighted sum ``(1 − λ)·E + λ·Ω`` needs a λ, and the interesting one — the
knee of the accuracy/sparsity trade-off — is only found by training several
times. The multi-objective optimisers of Reiners et al. (§3.2) need none: at
every step they take the λ* of the *steepest common descent direction* of the
loss E and the ℓ1 objective Ω, the min-norm point of the two gradients
(eq. 15),

.. math::

    λ^* = \\operatorname{clip}\\left(\\frac{g_1 \\cdot (g_1 - g_2)}
          {\\|g_1 - g_2\\|^2}, 0, 1\\right).

Reiners et al. observe (§6.3.1, Fig. 7–8) that this converges quickly but to a
λ far below the knee: accurate, yet dense networks. This example repeats the
experiment on scikit-learn's digits with a small MLP.
"""

# %%
# The knee of a small λ grid with ℓ1 and Adam
# -------------------------------------------
# Batchwise threshold pruning, as in the paper's §6.3. The knee is the point
# farthest from the chord between the extreme points, on normalised axes.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from skprune import SparseNetClassifier

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    (X / 16).astype(np.float32), y, test_size=0.25, stratify=y, random_state=0
)
settings = dict(module="mlp", threshold=1e-3, batch_size=64, max_epochs=20, validation_fraction=0.2)

lambdas = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
grid = [
    SparseNetClassifier(lam=lam, random_state=0, **settings).fit(X_train, y_train)
    for lam in lambdas
]
error = np.array([1 - clf.score(X_test, y_test) for clf in grid])
density = np.array([clf.density_ for clf in grid])


def knee_index(error, density):
    points = np.column_stack([density, error])
    points = (points - points.min(0)) / np.maximum(np.ptp(points, 0), 1e-12)
    a, b = points[np.argmin(points[:, 0])], points[np.argmax(points[:, 0])]
    chord = (b - a) / np.linalg.norm(b - a)
    offsets = points - a
    return int(np.argmax(np.abs(offsets[:, 0] * chord[1] - offsets[:, 1] * chord[0])))


knee = knee_index(error, density)
knee_lam, knee_clf = lambdas[knee], grid[knee]
for lam, e, d in zip(lambdas, error, density):
    print(f"lam={lam:.0e}  test error {e:.3f}  density {d:.3f}" + ("  <- knee" * (lam == knee_lam)))

# %%
# MAdam: λ chosen at every step
# -----------------------------
# ``lam`` is ignored; the λ* of every step lands in ``lambda_history_`` and
# its epoch mean in ``history_[:, "lambda"]``.
madam = SparseNetClassifier(optimizer="madam", random_state=0, **settings).fit(X_train, y_train)
print(
    f"MAdam: test accuracy {madam.score(X_test, y_test):.3f}, density {madam.density_:.3f}, "
    f"median λ* {np.median(madam.lambda_history_):.1e} (knee λ {knee_lam:.0e})"
)

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
lambdas_madam = madam.lambda_history_
per_epoch = len(lambdas_madam) // len(madam.history_)
ax1.plot(lambdas_madam, lw=0.4, alpha=0.5, label="MAdam λ* per step")
ax1.plot(
    np.arange(per_epoch - 1, len(lambdas_madam)),
    np.convolve(lambdas_madam, np.ones(per_epoch) / per_epoch, mode="valid"),
    label="mean over an epoch",
)
ax1.axhline(knee_lam, ls="--", c="k", label="knee λ of ℓ1-Adam")
ax1.set(xlabel="optimiser step", ylabel="λ", title="λ (cf. Reiners Fig. 8)")
ax1.legend(loc="center right")
epochs = madam.history_[:, "epoch"]
ax2.plot(epochs, madam.history_[:, "valid_acc"], label=f"MAdam (density {madam.density_:.2f})")
ax2.plot(
    epochs,
    knee_clf.history_[:, "valid_acc"],
    ls="--",
    c="k",
    label=f"ℓ1-Adam at the knee (density {knee_clf.density_:.2f})",
)
ax2.set(xlabel="epoch", ylabel="validation accuracy", title="accuracy (cf. Reiners Fig. 7)")
ax2.legend()
fig.tight_layout()
plt.show()
