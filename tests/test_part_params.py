"""The extension points stand on one foundation: parts are parameter objects.

Regularizers, pruners, search strategies and schedules have ``get_params`` /
``set_params`` from their ``__init__`` signature, ``clone``, a readable
``repr`` and one ``validate``; a pruner holds its masks whether or not a
subclass calls ``super()``; ``strategy__<option>`` reaches the strategy of a
``ParetoSearchCV`` as ``regularizer__<name>`` reaches an estimator's.
"""

from numbers import Real

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import PredefinedSplit
from sklearn.utils._param_validation import Interval

from skprune import ParetoSearchCV, SparseNetClassifier
from skprune.constrained import HardConcrete
from skprune.lobster import LOBSTER, LobsterPruning
from skprune.magnitude import MagnitudePruning, layerwise_magnitude_masks
from skprune.parts import ChannelPruning, GroupLasso, GroupThresholdPruning, InputGroupL1
from skprune.pruning import Pruner, ThresholdPruning
from skprune.registry import PRUNERS, REGULARIZERS
from skprune.regularizers import L0, L1, L2, L2L0, Regularizer
from skprune.schedules import SigmoidLR
from skprune.strategies import STRATEGIES, Bisection, Dichotomic, Grid, StochasticDichotomic


class RowGroupLasso(Regularizer):
    """A user's part: the group lasso over the rows of each weight."""

    _parameter_constraints = {"lam_scale": [Interval(Real, 0, None, closed="neither")]}

    def __init__(self, lam_scale=1.0):
        self.lam_scale = lam_scale

    def penalty(self, weights):
        return self.lam_scale * sum(w.norm(dim=-1).sum() for w in weights)


#: Every built-in part with one parameter and a new value for it.
BUILT_INS = {
    L1: ({}, {}),
    L2: ({}, {}),
    L0: ({}, {"beta": 5.0}),
    L2L0: ({}, {"alpha": 2.0}),
    LOBSTER: ({}, {}),
    HardConcrete: ({}, {"gate_lr": 0.1}),
    InputGroupL1: ({}, {"threshold": 0.05}),
    ThresholdPruning: ({}, {"when": "epoch"}),
    MagnitudePruning: ({"target_density": 0.5}, {"finetune_epochs": 1}),
    LobsterPruning: ({}, {"patience": 2}),
    GroupLasso: ({}, {"weighting": None}),
    GroupThresholdPruning: ({}, {"when": "epoch"}),
    ChannelPruning: ({"target_flops": 0.5}, {"finetune_epochs": 1}),
    Grid: ({}, {}),
    Dichotomic: ({}, {"per_round": 2}),
    StochasticDichotomic: ({}, {"tol": 0.01}),
    Bisection: ({}, {"n_start": 3}),
    SigmoidLR: ({"lr_start": 1e-2, "lr_end": 1e-3}, {"lr_end": 1e-4}),
}


def test_part_table_covers_every_registered_part():
    registered = {*REGULARIZERS.values(), *(cls for cls, _ in PRUNERS.values())}
    assert registered | set(STRATEGIES.values()) <= set(BUILT_INS)


@pytest.mark.parametrize("cls", BUILT_INS, ids=lambda cls: cls.__name__)
def test_part_get_set_params_and_clone_round_trip(cls):
    args, change = BUILT_INS[cls]
    part = cls(**args)
    params = part.get_params()
    assert set(params) == set(cls._get_param_names())
    assert cls(**params).get_params() == params
    copy = clone(part)
    assert copy is not part and copy.get_params() == params
    assert copy.set_params(**change) is copy
    assert copy.get_params() == {**params, **change}
    assert clone(copy).get_params() == {**params, **change}
    assert part.get_params() == params  # the original is untouched
    assert copy.validate() is copy


@pytest.mark.parametrize("cls", BUILT_INS, ids=lambda cls: cls.__name__)
def test_part_repr_shows_the_changed_parameters(cls):
    args, change = BUILT_INS[cls]
    part = cls(**args).set_params(**change)
    shown = {**args, **change}
    assert repr(part) == f"{cls.__name__}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


def test_part_repr_of_a_custom_part_is_readable():
    assert repr(RowGroupLasso()) == "RowGroupLasso()"
    assert repr(RowGroupLasso(lam_scale=2.0)) == "RowGroupLasso(lam_scale=2.0)"
    assert str(RowGroupLasso(lam_scale=2.0)) == "RowGroupLasso(lam_scale=2.0)"


def test_part_repr_names_a_custom_part_in_errors(blobs):
    X, y = blobs
    clf = SparseNetClassifier(
        regularizer=RowGroupLasso(lam_scale=2.0), regularizer__nope=1, max_epochs=1
    )
    with pytest.raises(ValueError, match=r"regularizer=RowGroupLasso\(lam_scale=2.0\) got unknown"):
        clf.fit(X, y)
    with pytest.raises(ValueError, match=r"RowGroupLasso\(lam_scale=2.0\) has no parameter 'nope'"):
        RowGroupLasso(lam_scale=2.0).set_params(nope=1)


def test_part_repr_names_a_custom_pruner_in_its_own_check(blobs):
    class PlateauPruning(Pruner):
        needs_validation = True

        def __init__(self, patience=3):
            self.patience = patience

    X, y = blobs
    clf = SparseNetClassifier(pruning=PlateauPruning(patience=1), validation_fraction=0.0)
    with pytest.raises(ValueError, match=r"PlateauPruning\(patience=1\) evaluates the validation"):
        clf.fit(X, y)


@pytest.mark.parametrize(
    "part, name, value",
    [
        (L0(beta=0), "beta", 0),
        (L2L0(alpha=-1.0), "alpha", -1.0),
        (L2L0(beta=True), "beta", True),
        (HardConcrete(structure="row"), "structure", "row"),
        (ThresholdPruning(when="sometimes"), "when", "sometimes"),
        (ThresholdPruning(threshold=-1e-3), "threshold", -1e-3),
        (MagnitudePruning(method="biggest", target_density=0.5), "method", "biggest"),
        (MagnitudePruning(target_density=1.5), "target_density", 1.5),
        (LobsterPruning(patience=0), "patience", 0),
        (Dichotomic(per_round=0), "per_round", 0),
        (Bisection(n_start=1), "n_start", 1),
        (SigmoidLR(lr_start=-1.0, lr_end=1e-3), "lr_start", -1.0),
        (RowGroupLasso(lam_scale=0.0), "lam_scale", 0.0),
    ],
    ids=repr,
)
def test_part_validate_names_the_parameter_the_value_and_what_is_allowed(part, name, value):
    cls = type(part).__name__
    with pytest.raises(ValueError, match=rf"'{name}' parameter of {cls} must be .*{value!r}"):
        part.validate()


def test_part_validate_runs_in_fit_for_a_custom_part(blobs):
    X, y = blobs
    clf = SparseNetClassifier(regularizer=RowGroupLasso(), regularizer__lam_scale=-1, max_epochs=1)
    with pytest.raises(ValueError, match="'lam_scale' parameter of RowGroupLasso must be"):
        clf.fit(X, y)


def test_part_that_does_not_store_an_argument_says_so():
    class Forgetful(Regularizer):
        def __init__(self, eps=0.1):
            self.epsilon = eps

        def penalty(self, weights):
            return sum(w.abs().sum() for w in weights)

    with pytest.raises(AttributeError, match="takes 'eps' but stores no attribute"):
        Forgetful().get_params()


class _NoSuperPruning(Pruner):
    """Prunes half of each layer after the first epoch; calls ``super()`` nowhere."""

    def __init__(self, keep=0.5):  # no super().__init__()
        self.keep = keep

    def initialize(self):  # no super().initialize()
        self.epochs_ = 0
        return self

    def on_batch_end(self, net, training=False, **kwargs):  # no super().on_batch_end()
        pass

    def on_epoch_end(self, net, **kwargs):
        self.epochs_ += 1
        if self.epochs_ == 1:
            weights = net.regularized_weights()
            self.set_masks(net, layerwise_magnitude_masks(weights, self.keep))


def test_pruner_without_super_holds_its_masks_under_momentum(blobs):
    X, y = blobs
    clf = SparseNetClassifier(
        regularizer=None,
        pruning=_NoSuperPruning(),
        optimizer="sgd",
        optimizer__momentum=0.9,
        lr=0.1,
        max_epochs=4,
        random_state=0,
    ).fit(X, y)
    pruner = dict(clf.net_.callbacks_)["pruning"]
    assert pruner.epochs_ == 4 and pruner.masks_ is not None
    for w, mask in zip(clf.net_.regularized_weights(), pruner.masks_):
        assert torch.equal(w[~mask], torch.zeros_like(w[~mask]))  # exactly zero after 3 epochs
        assert bool((w[mask] != 0).all())  # the kept weights trained on
    assert clf.density_ == pytest.approx(0.5, abs=0.01)


def test_pruner_without_super_starts_each_fit_without_masks(blobs):
    pruner = _NoSuperPruning()
    pruner.masks_ = [torch.ones(1, dtype=torch.bool)]  # a stale mask from elsewhere
    assert pruner.initialize().masks_ is None


class _FrontNet(ClassifierMixin, BaseEstimator):
    """Loss λ² and density/Ω (1 − λ)²: the convex front that (7) traces, per fold."""

    def __init__(self, lam=0.0, max_epochs=1):
        self.lam = lam
        self.max_epochs = max_epochs

    def fit(self, X, y=None):
        self.classes_ = np.array([0, 1])
        self.error_, self.density_ = self.lam**2, (1 - self.lam) ** 2
        self.objectives_ = (self.error_, self.density_)
        return self

    def predict_proba(self, X):
        p = np.exp(-self.error_)
        right = X[:, 1].astype(int)[:, None] == self.classes_
        return np.where(right, p, 1 - p)

    def predict(self, X):
        return X[:, 1].astype(int)


def _front_data():
    X = np.column_stack([np.repeat(np.arange(2), 10), np.arange(20) % 2]).astype(float)
    return X, X[:, 1].astype(int)


def _front_search(**kwargs):
    X, _ = _front_data()
    return ParetoSearchCV(
        _FrontNet(), cv=PredefinedSplit(X[:, 0]), lambdas=(0.0, 0.9), budget=12, **kwargs
    )


@pytest.fixture
def proposals(monkeypatch):
    """The length of every proposal the dichotomic search makes during a fit."""
    sizes, propose = [], Dichotomic.propose

    def spy(self, results):
        new = propose(self, results)
        sizes.append(len(new))
        return new

    monkeypatch.setattr(Dichotomic, "propose", spy)
    return sizes


def test_search_takes_strategy_options_in_its_constructor(proposals):
    search = _front_search(strategy="dichotomic", strategy__per_round=2)
    assert search.get_params()["strategy__per_round"] == 2
    assert search.set_params(strategy__per_round=3).get_params()["strategy__per_round"] == 3
    assert clone(search).get_params()["strategy__per_round"] == 3
    assert "strategy__per_round=3" in repr(search)
    clone(search).fit(*_front_data())
    assert max(proposals) == 3
    proposals.clear()
    _front_search(strategy="dichotomic").fit(*_front_data())
    assert max(proposals) > 3  # the option binds: without it the rounds grow


def test_search_strategy_options_reach_an_instance_without_changing_it(proposals):
    strategy = Dichotomic()
    _front_search(strategy=strategy, strategy__per_round=1).fit(*_front_data())
    assert max(proposals) == 1 and strategy.per_round is None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"strategy": "dichotomic", "strategy__nope": 1},
            r"strategy='dichotomic' got unknown parameters \['strategy__nope'\]; it takes "
            r"\['strategy__per_round', 'strategy__tol'\]",
        ),
        ({"strategy": "grid", "nope__x": 1}, r"routed parameters are named \['strategy__<name>'\]"),
    ],
)
def test_search_rejects_unknown_routed_parameters_in_fit(kwargs, match):
    search = _front_search(**kwargs)
    with pytest.raises(ValueError, match=match):
        search.fit(*_front_data())


def test_search_still_sets_the_estimators_own_nested_parameters():
    search = _front_search(strategy="grid").set_params(estimator__max_epochs=7)
    assert search.estimator.max_epochs == 7 and "estimator__max_epochs" not in search._routed


def test_part_instances_save_and_load_with_the_estimator(blobs, tmp_path):
    import skprune

    X, y = blobs
    clf = SparseNetClassifier(
        regularizer=L0(beta=5.0),
        pruning=MagnitudePruning(method="layerwise", target_density=0.5, finetune_epochs=1),
        max_epochs=2,
        random_state=0,
    ).fit(X, y)
    skprune.save(clf, tmp_path / "model")
    loaded = skprune.load(tmp_path / "model")
    assert repr(loaded.regularizer) == "L0(beta=5.0)"
    assert loaded.pruning.get_params() == clf.pruning.get_params()
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))


def test_part_instances_load_only_for_listed_part_classes():
    from skprune.deploy._json_codec import decode, encode
    from skprune.deploy._trusted import Names

    stored = encode(RowGroupLasso(lam_scale=2.0), "regularizer")
    with pytest.raises(ValueError, match="pass trusted="):
        decode(stored, Names(), "the parameter 'regularizer'")
    rebuilt = decode(stored, Names([RowGroupLasso]), "the parameter 'regularizer'")
    assert repr(rebuilt) == "RowGroupLasso(lam_scale=2.0)"
    not_a_part = {"__part__": "skprune.models.MLP", "params": {}}
    with pytest.raises(ValueError, match="which is not a skprune part"):
        decode(not_a_part, Names(), "the parameter 'regularizer'")
    unknown = {"__part__": "skprune.regularizers.L0", "params": {"gamma": 1.0}}
    with pytest.raises(ValueError, match=r"does not take: \['gamma'\]"):
        decode(unknown, Names(), "the parameter 'regularizer'")
