"""Prediction faults (issue 20): stale inference forms, ``sparsify()`` on any
module, and predictions while ``fit`` runs in another thread.

The thread tests start 8 threads that predict in a loop, then fit in another
thread, and check every answer: the previous model's predictions, the new
model's, or ``NotFittedError`` before the first fit. They also check that
predictions did run during the fit, so that they test something.
"""

import threading
import time

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from torch import nn
from torch.nn.utils import parametrize, prune

from skprune import SparseNetClassifier, SparseNetRegressor
from skprune.estimators import _inference
from skprune.estimators._inference import InferenceNet, inference_form

# -- the inference form follows the weights -----------------------------------


@pytest.fixture(scope="module")
def fitted(digits):
    X_train, X_test, y_train, _ = digits
    clf = SparseNetClassifier(
        module__hidden_layer_sizes=(32, 16),
        pruning="global",
        target_density=0.1,
        max_epochs=2,
        finetune_epochs=1,
        random_state=0,
    ).fit(X_train, y_train)
    return clf, X_test


def _halve(tensor):
    return tensor * 0.5


def _data_assignment(module):
    module.layer1.weight.data = _halve(module.layer1.weight.data)


def _in_place_on_data(module):  # bumps no version counter of the parameter
    module.layer1.weight.data.mul_(0.5)


def _in_place_no_grad(module):
    with torch.no_grad():
        module.layer2.weight.mul_(-1.0)


def _load_state_dict(module):
    module.load_state_dict({k: _halve(v) for k, v in module.state_dict().items()})


def _load_state_dict_assign(module):  # new tensors, maybe at a freed address
    module.load_state_dict({k: _halve(v) for k, v in module.state_dict().items()}, assign=True)


def _torch_prune(module):
    prune.l1_unstructured(module.layer1, "weight", amount=0.97)


def _torch_prune_then_change_orig(module):
    prune.random_unstructured(module.layer2, "weight", amount=0.5)
    with torch.no_grad():
        module.layer2.weight_orig.mul_(-1.0)


def _torch_prune_remove(module):
    prune.l1_unstructured(module.layer1, "weight", amount=0.97)
    prune.remove(module.layer1, "weight")


class _Scale(nn.Module):
    def forward(self, weight):
        return 0.5 * weight


def _parametrization(module):
    parametrize.register_parametrization(module.layer1, "weight", _Scale())


def _doubled(layer, inputs, output):
    return 2.0 * output


def _forward_hook(module):  # no tensor changes: only the layout tells
    module.layer3.register_forward_hook(_doubled)


def _replaced_layer(module):
    torch.manual_seed(0)
    old = module.layer3
    module.layer3 = nn.Linear(old.in_features, old.out_features).to(old.weight.device)


_CHANGES = [
    _data_assignment,
    _in_place_on_data,
    _in_place_no_grad,
    _load_state_dict,
    _load_state_dict_assign,
    _torch_prune,
    _torch_prune_then_change_orig,
    _torch_prune_remove,
    _parametrization,
    _forward_hook,
    _replaced_layer,
]


def _module_proba(module, X):
    """What the module itself predicts now (float32, through its own hooks)."""
    device = next(module.parameters()).device
    with torch.no_grad():
        out = module.eval()(torch.as_tensor(X, device=device))
        return torch.softmax(out, dim=1).double().cpu().numpy()


@pytest.mark.parametrize("sparsified", [False, True], ids=["dense", "sparsified"])
@pytest.mark.parametrize("change", _CHANGES, ids=lambda f: f.__name__.strip("_"))
def test_predict_proba_follows_weights_changed_in_place(fitted, change, sparsified):
    import copy

    clf, X = copy.deepcopy(fitted[0]), fitted[1]
    clf = clf.sparsify() if sparsified else clf
    before = clf.predict_proba(X)  # the form is made and cached here
    change(clf.net_.module_)
    after = clf.predict_proba(X)  # before a forward of the module runs its hooks
    expected = _module_proba(clf.net_.module_, X)
    assert np.abs(expected - before).max() > 1e-2  # the change matters
    # The deployment guide's promise for the sparsified form: within 1e-5.
    np.testing.assert_allclose(after, expected, rtol=0, atol=1e-5)
    assert (clf.predict(X) == clf.classes_[expected.argmax(1)]).all()
    if sparsified and change not in (_forward_hook, _replaced_layer):
        # Still compacted: prune's masks are applied, a parametrisation read.
        assert isinstance(inference_form(clf.net_), InferenceNet)


def test_sparsified_form_follows_a_switch_and_back(fitted):
    import copy

    clf, X = copy.deepcopy(fitted[0]), fitted[1]
    dense = clf.predict_proba(X)
    _in_place_on_data(clf.net_.module_)
    sparse = clf.sparsify().predict_proba(X)
    np.testing.assert_allclose(clf.densify().predict_proba(X), sparse, rtol=0, atol=1e-5)
    assert np.abs(sparse - dense).max() > 1e-2


@pytest.mark.parametrize("sparsified", [False, True], ids=["dense", "sparsified"])
def test_predict_proba_follows_weights_on_device(blobs, device, sparsified):
    X, y = blobs
    clf = SparseNetClassifier(max_epochs=2, random_state=0, device=device).fit(X, y)
    clf = clf.sparsify() if sparsified else clf
    before = clf.predict_proba(X)
    for change in (_in_place_on_data, _load_state_dict_assign):
        change(clf.net_.module_)
        np.testing.assert_allclose(
            clf.predict_proba(X), _module_proba(clf.net_.module_, X), rtol=0, atol=1e-5
        )
    assert np.abs(clf.predict_proba(X) - before).max() > 1e-3


def test_partial_fit_trains_a_copy_of_the_network(blobs, device):
    X, y = blobs
    clf = SparseNetClassifier(max_epochs=1, random_state=0, device=device).fit(X, y)
    net, history = clf.net_, clf.history_
    weights = {k: v.clone() for k, v in net.module_.state_dict().items()}
    clf.partial_fit(X, y)
    assert clf.net_ is not net and len(history) == 1 and len(clf.history_) == 2
    for k, v in net.module_.state_dict().items():
        assert torch.equal(v, weights[k])  # the published network is never trained
    params = set(clf.net_.module_.parameters())
    trained = [p for group in clf.net_.optimizer_.param_groups for p in group["params"]]
    assert params == set(trained)  # the optimiser steps the copy's own weights
    assert all(layer.weight in params for _, layer in clf.net_.regularized_named_)


# -- sparsify() on modules that are not analysed ------------------------------


class _ConvNet(nn.Module):
    """A small user conv net, with or without batch normalisation."""

    def __init__(self, n_classes=3, batch_norm=False):
        super().__init__()
        norm = [nn.BatchNorm2d(6)] if batch_norm else []
        self.features = nn.Sequential(nn.Conv2d(1, 6, 3), *norm, nn.ReLU(), nn.MaxPool2d(2))
        self.layer1 = nn.Linear(6 * 3 * 3, 32)
        self.layer2 = nn.Linear(32, n_classes)

    def forward(self, x):
        x = self.features(x.reshape(len(x), 1, 8, 8)).flatten(1)
        return self.layer2(torch.relu(self.layer1(x)))


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    X = rng.random((48, 1, 8, 8), dtype=np.float32)
    return X, np.digitize(X[:, 0, :4].mean(axis=(1, 2)), [0.47, 0.53])


def _sparsified_agrees(clf, X, atol=1e-12):
    dense = clf.predict_proba(X)
    sparse = clf.sparsify().predict_proba(X)
    # The deployment guide: the same labels, probabilities within 1e-5 (for
    # unanalysed modules, "predictions stay exact": met to float64 rounding).
    np.testing.assert_allclose(sparse, dense, rtol=0, atol=atol)
    assert (clf.predict(X) == clf.classes_[dense.argmax(1)]).all()
    np.testing.assert_array_equal(clf.densify().predict_proba(X), dense)


@pytest.mark.parametrize("batch_norm", [False, True], ids=["conv", "conv-batchnorm"])
def test_sparsify_user_module_predicts_as_before(images, batch_norm):
    X, y = images
    clf = SparseNetClassifier(
        _ConvNet(batch_norm=batch_norm),
        regularized_layers="all",
        pruning="global",
        target_density=0.05,
        max_epochs=2,
        finetune_epochs=1,
        random_state=0,
    ).fit(X, y)
    _sparsified_agrees(clf, X)
    assert type(clf.sparsify().net_.module_.layer1) is nn.Linear  # the trained one
    assert inference_form(clf.net_).layer1.weight.layout == torch.sparse_csr


def test_sparsify_vgg_predicts_as_before():
    rng = np.random.default_rng(0)
    X = rng.random((24, 3, 32, 32), dtype=np.float32)  # CIFAR-shaped
    y = np.arange(24) % 3
    clf = SparseNetClassifier("vgg", max_epochs=1, batch_size=12, random_state=0).fit(X, y)
    _sparsified_agrees(clf, X, atol=1e-5)  # compacted, in float32
    assert isinstance(inference_form(clf.sparsify().net_), InferenceNet)
    clf.densify()


def test_sparsify_regressor_with_batch_norm_predicts_as_before(images):
    X, y = images
    module = _ConvNet(n_classes=1, batch_norm=True)
    reg = SparseNetRegressor(module, max_epochs=1, random_state=0).fit(X, y.astype(float))
    dense = reg.predict(X)
    np.testing.assert_array_equal(reg.sparsify().predict(X), dense)


# -- predictions while fit runs in another thread -----------------------------


def _predict_while(train, clf, X, n_threads=8):
    """Run ``train()`` in a thread while ``n_threads`` threads predict on ``X``.

    Returns ``(answers, n_during)``: every ``(method, result or exception)``,
    and how many calls started and ended while ``train`` ran.
    """
    answers, stop, running = [], threading.Event(), threading.Event()
    during = []

    def predict(method):
        while not stop.is_set():
            started = running.is_set()
            try:
                answer = getattr(clf, method)(X)
            except Exception as error:  # every exception is an answer to check
                answer = error
            answers.append((method, answer))
            during.append(started and running.is_set())
            time.sleep(0.001)  # leave the fit some of the interpreter

    def fit():
        running.set()
        try:
            train()
        finally:
            running.clear()

    threads = [
        threading.Thread(target=predict, args=("predict_proba" if i % 2 else "predict",))
        for i in range(n_threads)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.02)  # predictions run before the fit starts
    fitter = threading.Thread(target=fit)
    fitter.start()
    fitter.join()
    time.sleep(0.02)  # and after it ends
    stop.set()
    for thread in threads:
        thread.join()
    return answers, sum(during)


def _check_answers(answers, models):
    """Each answer is one of ``models`` (dicts method -> result), or NotFittedError if None."""
    for method, answer in answers:
        if isinstance(answer, NotFittedError) and None in models:
            continue
        assert isinstance(answer, np.ndarray), f"{method} raised {answer!r}"
        assert any(m is not None and np.array_equal(answer, m[method]) for m in models), method


def _outputs(clf, X):
    return {"predict_proba": clf.predict_proba(X), "predict": clf.predict(X)}


def _concurrent_fits(X, y, y_refit, estimator):
    """A first fit, then a refit on other labels, each with 8 threads predicting."""
    clf = estimator
    answers, n_during = _predict_while(lambda: clf.fit(X, y), clf, X)
    first = _outputs(clf, X)
    _check_answers(answers, [None, first])
    assert n_during > 0 and any(isinstance(a, NotFittedError) for _, a in answers)
    answers, n_during = _predict_while(
        lambda: clf.set_params(random_state=1).fit(X, y_refit), clf, X
    )
    second = _outputs(clf, X)
    _check_answers(answers, [first, second])
    assert n_during > 0 and not np.array_equal(first["predict"], second["predict"])


def test_predict_during_fit_sees_the_old_or_the_new_model(blobs):
    X, y = blobs
    # The refit has other classes: a mix of two fits would fail or mislabel.
    y_refit = np.where(y == 0, "a", "b")
    _concurrent_fits(X, y, y_refit, SparseNetClassifier(max_epochs=15, random_state=0))


@pytest.mark.slow
def test_predict_during_long_fit_sees_the_old_or_the_new_model(digits):
    X, _, y, _ = digits
    y_refit = y % 2
    clf = SparseNetClassifier("lenet300", pruning="global", target_density=0.1, max_epochs=8)
    _concurrent_fits(X, y, y_refit, clf.set_params(random_state=0))


def test_predict_during_partial_fit_sees_the_old_or_the_new_model(blobs):
    X, y = blobs
    clf = SparseNetClassifier(max_epochs=1, random_state=0, batch_size=4)
    clf.partial_fit(X, y, classes=np.unique(y))
    old = _outputs(clf, X)
    answers, n_during = _predict_while(lambda: clf.partial_fit(X, y), clf, X)
    new = _outputs(clf, X)
    _check_answers(answers, [old, new])
    assert n_during > 0 and not np.array_equal(old["predict_proba"], new["predict_proba"])


def test_predict_during_regressor_fit_sees_the_old_or_the_new_model(blobs):
    X, y = blobs
    reg = SparseNetRegressor(max_epochs=5, random_state=0)
    answers, n_during = _predict_while(lambda: reg.fit(X, y.astype(float)), reg, X, n_threads=4)
    first = {"predict": reg.predict(X)}
    _check_answers([(m, a) for m, a in answers if m == "predict"], [None, first])
    assert n_during > 0


@pytest.mark.parametrize("estimator", [SparseNetClassifier, SparseNetRegressor])
def test_predict_reads_one_fit_when_another_publishes_meanwhile(blobs, monkeypatch, estimator):
    # Deterministic: the second fit is published in the middle of a predict.
    X, y = blobs
    y_other = np.where(y == 0, "a", "b") if estimator is SparseNetClassifier else np.c_[y, -y]
    model = estimator(max_epochs=2, random_state=0).fit(X, y)
    other = estimator(max_epochs=2, random_state=1).fit(X, y_other)
    expected, forward = model.predict(X), _inference.forward_outputs

    def forward_then_publish(net, tensor):
        out = forward(net, tensor)
        model.__dict__ = other.__dict__  # what fit's last step does
        return out

    monkeypatch.setattr(_inference, "forward_outputs", forward_then_publish)
    np.testing.assert_array_equal(model.predict(X), expected)


class _FailAt(nn.Module):
    """An MLP whose forward raises once ``calls`` forwards have run."""

    def __init__(self, calls=20):
        super().__init__()
        self.calls, self.layer1, self.layer2 = calls, nn.Linear(8, 16), nn.Linear(16, 3)

    def forward(self, x):
        self.calls -= 1
        if self.calls < 0:
            raise RuntimeError("the fit fails")
        return self.layer2(torch.relu(self.layer1(x)))


@pytest.mark.parametrize("how", ["fit", "partial_fit", "warm_start"])
def test_failed_fit_leaves_the_previous_model(blobs, how):
    X, y = blobs
    clf = SparseNetClassifier(_FailAt(10**6), max_epochs=2, random_state=0).fit(X, y)
    before, net = _outputs(clf, X), clf.net_
    clf.net_.module_.calls = 2  # the next training fails in its 3rd batch
    clf.set_params(module=_FailAt(2), warm_start=how == "warm_start")
    with pytest.raises(RuntimeError, match="the fit fails"):
        clf.partial_fit(X, y) if how == "partial_fit" else clf.fit(X, y)
    assert clf.net_ is net
    after = _outputs(clf, X)
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])
