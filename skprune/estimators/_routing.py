"""Routed ``prefix__name`` parameters, as in skorch.

``module__hidden_layer_sizes=(50,)``, ``optimizer__momentum=0.9``,
``regularizer__beta=5`` (the estimators) and ``strategy__per_round=2``
(:class:`~skprune.ParetoSearchCV`) reach the part they name, whether it is
given by name or as an instance. Like any parameter they are stored as given,
reported by ``get_params`` (so ``GridSearchCV`` can search them), kept by
``clone`` and checked in ``fit``.
"""

__all__ = ["RoutedParams"]

#: Prefixes of the routed parameters ``<prefix>__<name>``.
PREFIXES = ("module", "optimizer", "regularizer", "pruning", "callbacks")


class RoutedParams:
    """Mixin of a scikit-learn estimator that stores routed parameters.

    ``_routed_prefixes`` names the parameters whose ``<prefix>__<name>`` are
    routed. Other nested parameters of a sub-estimator (``estimator__lam`` of
    a search) go to it, as in scikit-learn.
    """

    _routed_prefixes = PREFIXES

    def _set_routed_params(self, params):
        if not hasattr(self, "_routed"):
            self._routed = []
        for key, value in params.items():
            setattr(self, key, value)
            if key not in self._routed:
                self._routed.append(key)

    def _check_routed_params(self):
        prefixes = self._routed_prefixes
        unknown = [k for k in self._routed if k.partition("__")[0] not in prefixes]
        if unknown or any(not k.partition("__")[2] for k in self._routed):
            raise ValueError(
                f"{type(self).__name__} got unknown parameters {unknown or self._routed}; "
                f"routed parameters are named {[p + '__<name>' for p in prefixes]}."
            )

    def _prefixed_params(self, prefix):
        """The routed parameters ``prefix__name`` as ``{name: value}``."""
        start = prefix + "__"
        return {k[len(start) :]: getattr(self, k) for k in self._routed if k.startswith(start)}

    def get_params(self, deep=True):
        params = super().get_params(deep=deep)
        return {**params, **{k: getattr(self, k) for k in self._routed}}

    def set_params(self, **params):
        routed = {k: v for k, v in params.items() if self._is_routed(k)}
        self._set_routed_params(routed)
        return super().set_params(**{k: v for k, v in params.items() if k not in routed})

    def _is_routed(self, key):
        """Whether ``key`` is stored here rather than set on a parameter (or a sub-estimator)."""
        if key in self._get_param_names():
            return False
        prefix, delim, _ = key.partition("__")
        nested = delim and prefix not in self._routed_prefixes
        return not (nested and hasattr(getattr(self, prefix, None), "set_params"))
