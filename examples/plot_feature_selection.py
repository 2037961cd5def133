"""
Selecting features of breast-cancer data with a sparse input layer
==================================================================

:class:`~skprune.SparseNetSelector` trains a network whose first layer carries
the group ℓ1 penalty over its input columns (LassoNet's penalty) and keeps
exactly ``k`` inputs. Here it chooses among the 30 measurements of
scikit-learn's bundled breast-cancer data, and we compare it at equal ``k``
with two of scikit-learn's own selectors, each inside a pipeline whose last
step is the same ExtraTrees classifier, then draw the feature path: at which λ
each measurement stops being read.
"""

import matplotlib.pyplot as plt
import numpy as np
import sklearn
import torch
from packaging.version import Version
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import ExtraTreesClassifier
from sklearn.feature_selection import SelectFromModel, SelectKBest, f_classif
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler, scale

from skprune import SparseNetClassifier, SparseNetSelector
from skprune.feature_selection import feature_path
from skprune.plotting import plot_feature_path

torch.set_num_threads(1)  # tiny networks run fastest on one thread
data = load_breast_cancer()
X, y = data.data, data.target
names = np.asarray(data.feature_names)

# %%
# Which measurements does the network keep?
# -----------------------------------------
# ``get_feature_names_out`` names the inputs kept; ``feature_importances_`` is
# the ℓ2 norm of each input's column of first-layer weights (0 for an input the
# network no longer reads).

selector = SparseNetSelector(5, random_state=0).fit(scale(X), y)
print("kept:", list(names[selector.get_support()]))

# %%
# Equal k, three selectors
# ------------------------
# 5-fold accuracy of ExtraTrees on the ``k`` features each selector keeps; the
# selection is made inside each training fold.


def l1_logistic():
    """ℓ1-penalised logistic regression (saga: liblinear no longer takes 3+ classes)."""
    if Version(sklearn.__version__) >= Version("1.8"):  # `penalty` is deprecated there
        return LogisticRegression(l1_ratio=1.0, solver="saga", max_iter=5000)
    return LogisticRegression(penalty="l1", solver="saga", max_iter=5000)


def selectors(k):
    return {
        "SparseNetSelector": SparseNetSelector(k, random_state=0),
        "SelectKBest(f_classif)": SelectKBest(f_classif, k=k),
        "SelectFromModel(ℓ1 logistic)": SelectFromModel(
            l1_logistic(),
            max_features=k,
            threshold=-np.inf,
        ),
    }


cv = StratifiedKFold(5, shuffle=True, random_state=0)
ks = [1, 2, 4, 8]
scores = {name: [] for name in selectors(1)}
for k in ks:
    for name, sel in selectors(k).items():
        pipe = make_pipeline(StandardScaler(), sel, ExtraTreesClassifier(50, random_state=0))
        scores[name].append(cross_val_score(pipe, X, y, cv=cv).mean())

fig, ax = plt.subplots(figsize=(6.4, 4))
for name, values in scores.items():
    ax.plot(ks, values, "o-", label=name)
ax.set_xscale("log", base=2)
ax.set_xlabel("k, features kept")
ax.set_ylabel("5-fold accuracy (ExtraTrees)")
ax.legend()
ax.grid(True, alpha=0.3)

# %%
# The feature path
# ----------------
# One network per λ, all trained together; a measurement's line ends where the
# group penalty has removed its column. The dashed steps count the inputs read.

net = SparseNetClassifier(
    regularizer="input_group_l1",
    regularized_layers=["layer1"],
    optimizer="sgd",
    max_epochs=30,
    random_state=0,
)
path = feature_path(net, scale(X), y, [1e-3, 0.01, 0.03, 0.1, 0.3, 0.5])
print("inputs read per λ:", path.n_selected)
ax = plot_feature_path(path, feature_names=list(names), n_labels=4)
plt.show()
