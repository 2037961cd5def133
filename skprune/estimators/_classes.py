"""``SparseNetClassifier`` and ``SparseNetRegressor``: estimators training sparse networks."""

import inspect

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from skorch.callbacks import EpochScoring
from torch import nn

from ..training._net import SparseNet, SparseNetRegression
from . import _inference
from ._base import BaseSparseNet
from ._mlp_bridge import MLPBridgeMixin
from ._publish import fitted_view

__all__ = ["SparseNetClassifier", "SparseNetRegressor"]


_PARAMETERS = """\
    Parameters
    ----------
    module : str, torch.nn.Module class or instance, default="mlp"
        ``"mlp"`` (sized from the data; ``module__hidden_layer_sizes``, default
        ``(100,)``), ``"lenet300"`` (784-300-100-10), ``"lenet5"`` (Reiners
        Table 1a) or ``"vgg"`` (Table 1b); or any module returning logits.
        Its arguments pass as ``module__name=value``.
    regularizer : {"l1", "l2", "l0", "l2_l0", "lobster", "hard_concrete", "group_l1", \
            "input_group_l1"}, \
            Regularizer or None, default="l1"
        Ω; ``"l1"`` is ``Σ|w|`` (Reiners eq. 4), ``"l2"`` ``½Σw²``, ``"l0"`` the
        smooth ℓ0 ``Σ 1−exp(−β|w|)`` (Oliveira eq. 11), ``"l2_l0"`` their sum
        (eq. 15), ``"lobster"`` LOBSTER's sensitivity shrinkage (eq. 4),
        ``"hard_concrete"`` hard-concrete L0 gates (Gallego-Posada et al.): with
        ``target_density`` a constraint solved by a Lagrangian (``lam`` is then
        unused), else the penalty ``λ·E‖z‖₀``; ``"group_l1"`` the ℓ2,1 norm over
        output units and channels, each weighted by the multiply-adds it
        carries (:class:`~skprune.parts.GroupLasso`), which removes whole
        units and channels; ``"input_group_l1"`` the group
        ℓ1 ``Σⱼ‖W[:, j]‖₂`` over input columns (LassoNet eq. 4; on
        ``regularized_layers=["layer1"]`` it selects inputs). An instance of a
        :class:`~skprune.regularizers.Regularizer` subclass also works (see
        :doc:`/extending`). The regulariser's own parameters pass as
        ``regularizer__name=value``.
    lam : float in [0, 1), default=1e-4
        λ, the weight of Ω in ``(1 − λ)·E + λ·Ω``. Ω is summed, not averaged,
        so λ means what it means in the paper.
    pruning : {"auto", "batch", "epoch", "after", "global", "layerwise", "random", \
            "lobster", "channel", "group"}, Pruner or None, default="auto"
        ``"auto"``: ``"batch"``, or None for a regularizer that prunes itself
        (``"hard_concrete"``).
        Soft threshold pruning with ``threshold`` after every batch, after
        every epoch, or once after training (Reiners §4); every mode also
        prunes once before training and once after the last step.
        ``"global"``, ``"layerwise"``, ``"random"``: after ``max_epochs``,
        prune to ``target_density`` and fine-tune ``finetune_epochs`` more
        (Oliveira §4.1). ``"lobster"``: LOBSTER's learning and pruning stages
        (§4), with ``patience`` and ``loss_tolerance``. ``"channel"``: after
        ``max_epochs``, remove the filters and units of smallest ℓ1 norm until
        the compacted network keeps ``pruning__target_flops`` of the dense
        multiply-adds, then fine-tune (Li et al. 2017). ``"group"``: as
        ``"batch"``, but a unit's or filter's weights go together when their
        root mean square is under ``threshold``. An instance of a
        :class:`~skprune.pruning.Pruner` subclass also works (see
        :doc:`/extending`). A mode's own settings pass as
        ``pruning__name=value`` and take precedence over the estimator
        parameters of the same name (``threshold``, ``target_density``,
        ``finetune_epochs``, ``patience``, ``loss_tolerance``), which stay as
        the convenient spelling. Setting one of those that the chosen modes do
        not read raises a ``UserWarning``.
    threshold : float >= 0, default=1e-3
        τ: weights with ``|w| <= τ`` are set to zero when pruning.
    target_density : float in (0, 1], dict or None, default=None
        ε, the share of regularised weights to keep: the constraint level of
        ``regularizer="hard_concrete"`` and the goal of magnitude pruning
        (``"global"``, ``"layerwise"``, ``"random"``). A dict maps layer names
        (as in ``layer_density_``) to their own level.
    finetune_epochs : int >= 0, default=3
        Epochs of training with the pruning mask held after magnitude pruning.
    loss_tolerance : float >= 0, default=0.05
        LOBSTER's TWT: the pruning stage keeps the validation loss within
        ``(1 + loss_tolerance)`` times its value before pruning.
    patience : int >= 1, default=5
        LOBSTER's PWE: epochs without improvement of the validation loss that
        end a learning stage.
    optimizer : str or torch optimizer class, default="adam"
        ``"sgd"``, ``"adam"``, ``"rmsprop"``, ``"smgd"``, ``"madam"`` or
        ``"mrmsprop"``, or a :class:`torch.optim.Optimizer` subclass. Its options
        pass as ``optimizer__name=value`` (e.g. ``optimizer__momentum``).
        ``"smgd"``, ``"madam"`` and ``"mrmsprop"`` are the multi-objective
        optimisers of Reiners §3.2 (:mod:`skprune.optim`): they ignore ``lam``
        and pick at every step the λ of the steepest common descent direction
        of E and Ω (eq. 15), recorded in ``lambda_history_``.
    lr : float > 0 or "auto", default="auto"
        Starting rate (under ``lr_schedule``); ``"auto"``: 0.1 for ``"sgd"``, ``"smgd"``, else 1e-3.
    lr_schedule : {"sigmoid"} or None, default=None
        ``"sigmoid"``: the rate falls smoothly from ``lr`` to ``lr_final``,
        dropping around 75 % of ``max_epochs`` (Reiners §6.1); the rate of
        each epoch is recorded in ``history_`` as ``lr``.
    lr_final : float > 0 or None, default=None
        The final rate of ``lr_schedule``, at most ``lr``; None means ``lr / 10``.
    batch_size : int >= 1, default=32
    max_epochs : int >= 1, default=30
    validation_fraction : float in [0, 1), default=0.0
        Share of the training data held out inside ``fit`` (stratified) and
        scored every epoch as ``valid_loss`` / ``valid_acc``.
    regularized_layers : {"dense", "all"} or list of str, default="dense"
        The layers whose weights are regularised and pruned: every
        ``nn.Linear`` (as in the papers), linear and convolutional layers, or
        those sub-module names.
    device : str, default="auto"
        ``"auto"`` picks CUDA when available, else ``"cpu"``; or ``"cpu"``,
        ``"cuda"``, ``"cuda:1"``, ...
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, dropout, batch order and the validation
        split. Equal seeds give identical results on the CPU.
    verbose : int, default=0
        Print one line per epoch when > 0.
    callbacks : list of skorch callbacks or None, default=None
        Extra callbacks, appended after skprune's own.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (which must then be > 0),
        score it after every epoch (accuracy for a classifier, R² for a
        regressor), stop once the score has not improved by ``tol`` for
        ``n_iter_no_change`` epochs, and restore the weights of the best epoch
        (as ``MLPClassifier``). Not with the pruning modes that decide the
        length of training themselves (magnitude pruning, LOBSTER).
    n_iter_no_change : int >= 1, default=10
        Epochs without improvement that end training under ``early_stopping``.
    tol : float >= 0, default=1e-4
        The least improvement of the validation score that counts. Unlike
        ``MLPClassifier``, without ``early_stopping`` training always runs
        ``max_epochs`` (the papers' protocol).
    warm_start : bool, default=False
        A second ``fit`` continues from the fitted weights, masks and optimiser
        state for ``max_epochs`` more epochs, instead of starting anew.
    **kwargs
        Routed parameters ``module__*``, ``optimizer__*``, ``regularizer__*``,
        ``pruning__*`` and ``callbacks__*``; searchable with ``GridSearchCV``.

"""

_FITTED = """\
    n_features_in_ : int
        Number of features after flattening (784 for 28×28 images).
    feature_names_in_ : ndarray of str
        Present when ``X`` had string column names.
    net_ : skorch.NeuralNet
        The fitted skorch net; ``net_.module_`` is the trained network.
    history_ : skorch.History
        Per epoch: ``train_loss`` (the weighted sum), E (``ce``, the
        cross-entropy, for a classifier; ``mse``, the mean squared error, for a
        regressor), ``penalty`` (Ω), ``density``, ``n_nonzero``,
        ``layer_density``, and ``valid_loss`` (and a classifier's ``valid_acc``)
        with a validation split; ``lr`` with ``lr_schedule``;
        ``lambda`` (the epoch's mean λ*) with a multi-objective optimizer; the
        pruning modes' events (``event_prune``; ``lobster_threshold``,
        ``event_lobster_prune``).
    density_ : float
        Share of non-zero regularised weights, counted on ``net_.module_``.
    sparsity_ : float
        ``1 − density_``.
    n_nonzero_ : int
        Number of non-zero regularised weights.
    n_weights_ : int
        Number of regularised weights.
    layer_density_ : dict
        Regularised layer name -> its share of non-zero weights.
    flops_ : int
        Multiply-adds per sample of the network as it predicts, compacted:
        before :meth:`sparsify`, of the form it would make (dead units and
        channels removed, CSR layers by their non-zeros); after it, of that
        form (:mod:`skprune.cost`). Counted on access.
    layer_flops_ : dict
        Layer name -> its multiply-adds per sample (see ``flops_``).
    param_bytes_ : int
        Bytes of the weights and biases that run (float32 before
        :meth:`sparsify`, then the compacted form's own dtypes).
    objectives_ : tuple of float
        The biobjective point (E, Ω): the mean training error E of the last
        epoch and the regulariser of the final weights.
    lambda_history_ : ndarray of shape (n_steps,)
        With a multi-objective optimizer only: the λ* chosen at every
        optimiser step (Reiners Fig. 8).
    n_iter_ : int
        Epochs run (``partial_fit`` passes included), as ``len(history_)``.
    loss_curve_ : list of float
        The training loss ``(1 − λ)·E + λ·Ω`` of every epoch.
    validation_scores_ : list of float or None
        With ``early_stopping``: the validation score of every epoch.
    best_validation_score_ : float or None
        With ``early_stopping``: the best of ``validation_scores_``, whose
        weights the fitted network holds.
    training_loop_ : {"stacked", "skorch"}
        Which loop trained the network in the last call: ``"stacked"``, the
        engine (:mod:`skprune.engine`, K = 1 for a plain ``fit``), or
        ``"skorch"``, skorch's own loop, for settings the engine does not
        serve (:func:`skprune.engine.unstackable_reason` says which) and for
        ``partial_fit`` and ``warm_start`` continuations.

"""


_CLASS_WEIGHT = """\
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in E, as in scikit-learn's linear models: a dict
        label -> weight (missing labels weigh 1), or ``"balanced"``,
        ``n_samples / (n_classes · count(label))``. They multiply
        ``sample_weight``.
"""


class SparseNetClassifier(MLPBridgeMixin, ClassifierMixin, BaseSparseNet):
    __doc__ = (
        """\
Neural network classifier trained for accuracy *and* sparsity.

    Trains a PyTorch network (through skorch) on the weighted sum of the mean
    batch cross-entropy E and a complexity objective Ω of the regularised
    weights (Reiners et al., eq. 7)::

        (1 − lam) · E + lam · Ω

    and prunes weights while or after it trains. After ``fit`` it reports how
    sparse the network is (``density_``, ``layer_density_``).

"""
        + _PARAMETERS.replace("    **kwargs\n", _CLASS_WEIGHT + "    **kwargs\n", 1)
        + """\
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels seen in ``fit``.
"""
        + _FITTED
        + """\
    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skprune import SparseNetClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = SparseNetClassifier(lam=1e-3, max_epochs=5, random_state=0)
    >>> clf.fit(X / 16, y).density_ < 1
    True
"""
    )

    _net_class = SparseNet
    _criterion = nn.CrossEntropyLoss
    _loss_key = "ce"
    _y_validation = {}
    _outputs_meaning = "one logit per class"
    _validation_score = ("valid_acc",)  # skorch records it with validation data
    _parameter_constraints = {
        **BaseSparseNet._parameter_constraints,
        "class_weight": [StrOptions({"balanced"}), dict, None],
    }

    def __init__(self, module="mlp", *, class_weight=None, **kwargs):
        super().__init__(module, **kwargs)
        self.class_weight = class_weight

    @property
    def _n_outputs(self):
        return len(self.classes_)

    def _encode_targets(self, y, classes=None, reset=True, sample_weight=None):
        check_classification_targets(y)
        if reset:
            self.classes_ = np.unique(y if classes is None else np.asarray(classes))
            if len(self.classes_) < 2:
                raise ValueError(
                    "SparseNetClassifier needs samples of at least 2 classes in y; "
                    f"got 1 class ({self.classes_[0]!r})."
                )
        unknown = np.setdiff1d(y, self.classes_)
        if len(unknown):
            raise ValueError(
                f"y has labels {unknown.tolist()} that are not in classes "
                f"{self.classes_.tolist()}; pass every label as 'classes' to the first "
                "partial_fit, or call fit."
            )
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        if classes is None and not hasattr(self, "net_"):
            raise ValueError(
                "The 'classes' parameter of partial_fit is required on the first call: "
                "pass every label y will ever hold."
            )
        return super().partial_fit(X, y, classes=classes, sample_weight=sample_weight)

    partial_fit.__doc__ = BaseSparseNet.partial_fit.__doc__

    def _target_weights(self, y):
        if self.class_weight is None:
            return None
        weights = compute_class_weight(self.class_weight, classes=self.classes_, y=self.classes_[y])
        return weights[y]

    def predict_proba(self, X):
        """Class probabilities (n_samples, n_classes) of ``X``, array-like or sparse matrix.

        Computed in float64 by a form of the network made once (compacted
        after :meth:`sparsify`), so that a sample's probabilities do not
        depend on the other samples passed with it, from the last finished fit.
        """
        return _inference.softmax(_inference.predict_outputs(fitted_view(self), X))

    def predict(self, X):
        """Predicted class labels of ``X`` (array-like or sparse matrix), of ``y``'s type."""
        fitted = fitted_view(self)  # labels and probabilities of the same fit
        proba = fitted.predict_proba(X)
        return fitted.classes_[np.argmax(proba, axis=1)]


class SparseNetRegressor(MLPBridgeMixin, RegressorMixin, BaseSparseNet):
    __doc__ = (
        """\
Neural network regressor trained for accuracy *and* sparsity.

    The regression twin of :class:`SparseNetClassifier`, with the same
    parameters, regularisers, pruning modes and optimisers: it trains on

        (1 − lam) · E + lam · Ω

    with E the mean squared error of the batch (Reiners eq. 7 holds for any
    loss E). ``y`` may have several columns (multi-output regression).

    The targets are standardised inside ``fit`` (each column to zero mean and
    unit variance; predictions are mapped back), so E, and with it λ, does not
    depend on the units of ``y``: a λ chosen on one problem means the same on
    another, and the default λ interval of :class:`~skprune.ParetoSearchCV`
    suits every target scale. scikit-learn's ``MLPRegressor`` does not do
    this (its users reach for ``TransformedTargetRegressor``).

"""
        + _PARAMETERS
        + """\
    Attributes
    ----------
    n_outputs_ : int
        Number of target columns.
    target_mean_, target_scale_ : ndarray of shape (n_outputs,)
        The standardisation of the targets: the network predicts
        ``(y − target_mean_) / target_scale_``.
"""
        + _FITTED
        + """\
    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from skprune import SparseNetRegressor
    >>> X, y = load_diabetes(return_X_y=True)
    >>> reg = SparseNetRegressor(lam=1e-3, max_epochs=5, random_state=0)
    >>> reg.fit(X, y).density_ < 1
    True
"""
    )

    _net_class = SparseNetRegression
    _criterion = nn.MSELoss
    _loss_key = "mse"
    _y_validation = {"y_numeric": True, "multi_output": True}
    _outputs_meaning = "one output per target column"
    _validation_score = (
        "valid_r2",
        ("valid_r2", EpochScoring("r2", lower_is_better=False, name="valid_r2")),
    )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    @property
    def _n_outputs(self):
        return self.n_outputs_

    def _encode_targets(self, y, classes=None, reset=True, sample_weight=None):
        y = np.asarray(y, dtype=np.float64)
        y_1d, y = y.ndim == 1, y.reshape(len(y), -1)
        if reset:
            # Weighted moments: integer weights standardise as repeated rows do.
            self._y_1d, self.n_outputs_ = y_1d, y.shape[1]
            weight = None if sample_weight is None or not sample_weight.sum() else sample_weight
            self.target_mean_ = np.average(y, axis=0, weights=weight)
            scale = np.sqrt(np.average((y - self.target_mean_) ** 2, axis=0, weights=weight))
            self.target_scale_ = np.where(scale > 0, scale, 1.0)
        elif y.shape[1] != self.n_outputs_:
            raise ValueError(
                f"y has {y.shape[1]} target columns, but SparseNetRegressor was fitted "
                f"with {self.n_outputs_}."
            )
        return ((y - self.target_mean_) / self.target_scale_).astype(np.float32)

    def predict(self, X):
        """Predicted targets of ``X`` (array-like or sparse matrix), shaped as ``y`` in ``fit``.

        Computed in float64 by a form of the network made once (compacted
        after :meth:`sparsify`), so that a sample's prediction does not depend
        on the other samples passed with it, from the last finished fit.
        """
        fitted = fitted_view(self)  # the network and the scaling of the same fit
        # Rounded to float32, the precision of the weights: the dense and the
        # compacted forms (sparsify) then give the same values, not 1 ulp apart.
        out = _inference.predict_outputs(fitted, X).astype(np.float32).astype(np.float64)
        y = out * fitted.target_scale_ + fitted.target_mean_
        return y.ravel() if fitted._y_1d else y


def _with_class_weight(signature):
    """The base estimator's signature with ``class_weight`` after ``module``.

    scikit-learn reads an estimator's parameters from its ``__init__``
    signature; the classifier adds one parameter to the shared ones without
    writing all of them out again.
    """
    params = list(signature.parameters.values())
    extra = inspect.Parameter("class_weight", inspect.Parameter.KEYWORD_ONLY, default=None)
    return signature.replace(parameters=[*params[:2], extra, *params[2:]])


SparseNetClassifier.__init__.__signature__ = _with_class_weight(
    inspect.signature(BaseSparseNet.__init__)
)
