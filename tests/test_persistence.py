import pickle
from unittest import mock

import numpy as np
import pytest
import torch
from torch import nn

import skprune
from skprune import SparseNetClassifier

WORDS = np.array(["cat", "dog", "emu"])


@pytest.fixture(scope="module")
def fitted(digits):
    X_train, X_test, y_train, _ = digits
    y = np.array([f"digit {d}" for d in y_train])
    clf = SparseNetClassifier(
        module__hidden_layer_sizes=(128,),
        pruning="global",
        target_density=0.02,
        max_epochs=1,
        finetune_epochs=1,
        random_state=0,
    ).fit(X_train, y)
    return clf, X_test


def _no_unpickling():
    boom = AssertionError("unpickled")
    return (
        mock.patch("pickle.loads", side_effect=boom),
        mock.patch("pickle.load", side_effect=boom),
        mock.patch("torch.load", side_effect=boom),
    )


@pytest.mark.parametrize("sparsified", [False, True])
def test_load_gives_back_the_estimator_without_unpickling(fitted, tmp_path, sparsified):
    clf, X = fitted
    clf.sparsify() if sparsified else clf.densify()
    skprune.save(clf, tmp_path / "m.skp")
    a, b, c = _no_unpickling()
    with a, b, c:
        loaded = skprune.load(tmp_path / "m.skp")
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)
    assert loaded.classes_.dtype == clf.classes_.dtype
    assert loaded.density_ == clf.density_ and loaded.layer_density_ == clf.layer_density_
    assert loaded.get_params() == clf.get_params()
    assert list(loaded.history_[:, "density"]) == list(clf.history_[:, "density"])
    assert hasattr(loaded, "coef_") == sparsified
    for k, v in loaded.densify().net_.module_.state_dict().items():
        assert torch.equal(v, clf.net_.module_.state_dict()[k])
    clf.densify()


def test_saved_file_grows_with_the_non_zeros(fitted, tmp_path):
    clf, _ = fitted
    skprune.save(clf.sparsify(), tmp_path / "m.skp")
    clf.densify()
    size = (tmp_path / "m.skp").stat().st_size
    dense_pickle = len(pickle.dumps(clf))
    assert size < 0.1 * dense_pickle


@pytest.mark.parametrize("change", ["flip", "truncate", "garbage"])
def test_a_damaged_file_raises_a_value_error_naming_it(fitted, tmp_path, change):
    clf, _ = fitted
    path = tmp_path / "m.skp"
    skprune.save(clf, path)
    data = bytearray(path.read_bytes())
    if change == "flip":
        data[-20] ^= 1
    data = data[: len(data) // 2] if change == "truncate" else data
    path.write_bytes(b"not a model" if change == "garbage" else bytes(data))
    with pytest.raises(ValueError, match="m.skp"):
        skprune.load(path)


class TinyNet(nn.Module):
    def __init__(self, width=6):
        super().__init__()
        self.layer1, self.layer2 = nn.Linear(4, width), nn.Linear(width, 3)

    def forward(self, x):
        return self.layer2(torch.relu(self.layer1(x)))


def test_a_user_module_is_rebuilt_only_when_trusted(blobs, tmp_path):
    X, y = blobs
    clf = SparseNetClassifier(TinyNet, module__width=5, max_epochs=1, random_state=0)
    clf.fit(X[:, :4], WORDS[y])
    skprune.save(clf, tmp_path / "m.skp")
    with pytest.raises(ValueError, match="trusted"):
        skprune.load(tmp_path / "m.skp")
    loaded = skprune.load(tmp_path / "m.skp", trusted=[TinyNet])
    np.testing.assert_array_equal(loaded.predict(X[:, :4]), clf.predict(X[:, :4]))


def test_save_refuses_what_it_cannot_rebuild(blobs, tmp_path):
    X, y = blobs
    clf = SparseNetClassifier(TinyNet(), max_epochs=1).fit(X[:, :4], y)
    with pytest.raises(ValueError, match="module"):
        skprune.save(clf, tmp_path / "m.skp")
    with pytest.raises(TypeError, match="skops"):
        skprune.save(object(), tmp_path / "m.skp")


@pytest.mark.cuda
def test_a_model_trained_on_cuda_loads_on_the_cpu(blobs, tmp_path, device):
    if device != "cuda":
        pytest.skip("the CPU case is every other test")
    X, y = blobs
    clf = SparseNetClassifier(device="cuda", max_epochs=1, random_state=0).fit(X, y)
    skprune.save(clf.sparsify(), tmp_path / "m.skp")
    loaded = skprune.load(tmp_path / "m.skp", device="cpu")
    assert next(loaded.net_.module_.parameters()).device.type == "cpu"
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-6)
    with mock.patch("torch.cuda.is_available", return_value=False):
        with pytest.warns(UserWarning, match="CPU"):
            assert skprune.load(tmp_path / "m.skp").device == "cpu"
