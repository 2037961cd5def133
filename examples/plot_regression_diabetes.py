"""
Sparse regression on diabetes, with a knee search
=================================================

:class:`~skprune.SparseNetRegressor` trains on ``(1 − λ)·MSE + λ·Ω`` (Reiners
eq. 7 with the mean squared error as E). In a ``Pipeline`` after a
``StandardScaler``, we first train it at three λ at once, then let
:class:`~skprune.ParetoSearchCV` find the knee of the cross-validated MSE
against the density, and compare with scikit-learn's ``MLPRegressor``.
"""

import matplotlib.pyplot as plt
import torch
from sklearn.datasets import load_diabetes
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skprune import ParetoSearchCV, SparseNetRegressor, lambda_path
from skprune.plotting import plot_pareto

torch.set_num_threads(1)  # tiny networks run fastest on one thread
X, y = load_diabetes(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)

# %%
# Three λ: the MSE stays while the network thins out
# ---------------------------------------------------
# :func:`~skprune.lambda_path` fits the pipeline at each λ, the three networks
# trained at once as one stacked model (the scaler is fitted once).
pipe = make_pipeline(StandardScaler(), SparseNetRegressor(random_state=0))
for fitted in lambda_path(pipe, X_train, y_train, [1e-4, 1e-3, 1e-2]):
    mse = mean_squared_error(y_test, fitted.predict(X_test))
    print(
        f"lam={fitted[-1].lam:g}: test MSE {mse:.0f}, R² {fitted.score(X_test, y_test):.3f}, "
        f"density {fitted[-1].density_:.3f}"
    )

mlp = make_pipeline(
    StandardScaler(), MLPRegressor(hidden_layer_sizes=(100,), max_iter=2000, random_state=0)
)
print(f"MLPRegressor (100,): R² {mlp.fit(X_train, y_train).score(X_test, y_test):.3f}")

# %%
# The knee of the cross-validated front
# -------------------------------------
# The loss objective of a regressor's front is the cross-validated MSE (from the
# ``neg_mean_squared_error`` scorer); the complexity is the density.
search = ParetoSearchCV(
    make_pipeline(StandardScaler(), SparseNetRegressor(random_state=0)),
    param_name="sparsenetregressor__lam",
    strategy="grid",
    lambdas=[1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1],
    cv=3,
).fit(X_train, y_train)
knee = search.knee_
print(
    f"knee: lam={knee['lam']:g}, CV MSE {knee['loss']:.0f}, density {knee['density']:.3f}; "
    f"test R² {search.score(X_test, y_test):.3f}"
)
ax = plot_pareto(search)
ax.set_ylabel("cross-validated MSE")
plt.show()
