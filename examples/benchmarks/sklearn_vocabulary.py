"""
The MLPClassifier vocabulary on digits: sample and class weights, early stopping, warm start
==============================================================================================

Prints the figures behind the user-guide page "Coming from MLPClassifier":
what a zero sample weight, a class weight of 20 and ``"balanced"`` do to the
predictions, where early stopping ends, what a warm-started second ``fit``
starts from, and how ``partial_fit`` passes compare with ``fit``. Digits,
75/25 stratified split, MLP 64-100-10, ℓ1 with batchwise pruning, 5 epochs,
``random_state=0``, one thread.

Run: ``python examples/benchmarks/sklearn_vocabulary.py``.
"""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from skprune import SparseNetClassifier

FAST = dict(max_epochs=5, random_state=0)


def main():
    X, y = load_digits(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X / 16, y, test_size=0.25, stratify=y, random_state=0)
    plain = SparseNetClassifier(**FAST).fit(X_tr, y_tr)
    unit = SparseNetClassifier(**FAST).fit(X_tr, y_tr, sample_weight=np.ones(len(y_tr)))
    delta = np.abs(unit.predict_proba(X_te) - plain.predict_proba(X_te)).max()
    print(f"unit weights: max |Δ proba| = {delta}")
    share = lambda clf: np.mean(clf.predict(X_te) == 3)  # noqa: E731
    zero = SparseNetClassifier(**FAST).fit(X_tr, y_tr, sample_weight=np.where(y_tr == 3, 0.0, 1.0))
    heavy = SparseNetClassifier(class_weight={3: 20}, **FAST).fit(X_tr, y_tr)
    print(
        f"share of class 3: unweighted {share(plain):.3f}, zero weight {share(zero):.3f}, "
        f"class_weight 20 {share(heavy):.3f}"
    )
    balanced = SparseNetClassifier(class_weight="balanced", **FAST).fit(X_tr, y_tr)
    print(
        f"test accuracy: unweighted {plain.score(X_te, y_te):.4f}, "
        f"balanced {balanced.score(X_te, y_te):.4f}"
    )
    stop = SparseNetClassifier(
        early_stopping=True,
        validation_fraction=0.2,
        n_iter_no_change=3,
        max_epochs=200,
        random_state=0,
    ).fit(X_tr, y_tr)
    print(
        f"early stopping: n_iter_ {stop.n_iter_} of 200, len(loss_curve_) "
        f"{len(stop.loss_curve_)}, len(validation_scores_) {len(stop.validation_scores_)}, "
        f"best {stop.best_validation_score_:.4f}, test accuracy {stop.score(X_te, y_te):.4f}"
    )
    warm = SparseNetClassifier(warm_start=True, max_epochs=3, random_state=0).fit(X_tr, y_tr)
    last = warm.loss_curve_[-1]
    warm.fit(X_tr, y_tr)
    print(
        f"warm start: first fit's last loss {last:.3f}, second fit's first loss "
        f"{warm.loss_curve_[3]:.3f}, n_iter_ {warm.n_iter_}"
    )
    passes = SparseNetClassifier(random_state=0)
    for _ in range(5):
        passes.partial_fit(X_tr, y_tr, classes=np.arange(10))
    print(
        f"5 partial_fit passes: test accuracy {passes.score(X_te, y_te):.4f} "
        f"(fit for 5 epochs: {plain.score(X_te, y_te):.4f})"
    )


if __name__ == "__main__":
    main()
