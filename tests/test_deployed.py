"""The deployed form (issue 22): float32 kernels that keep a sample's outputs
independent of its batch, VGG compaction, and the cost attributes of its ops."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from skprune import SparseNetRegressor
from skprune.estimators import _deployed
from skprune.estimators._deployed import DENSE_CHUNK, InferenceNet, Op
from skprune.estimators._inference import inference_form
from skprune.models import MLP, LeNet5, VGGLike
from skprune.sparsify import compact


def _prune(module, density, seed=0):
    """Keep a random share ``density`` of every weight matrix or kernel."""
    g = torch.Generator().manual_seed(seed)
    for weight in (p for p in module.parameters() if p.dim() > 1):
        weight.data.mul_(torch.rand(weight.shape, generator=g) < density)
    return module


def _vgg(seed=0, dead=0.5, shape=(3, 16, 16)):
    """A VGGLike with batch-norm statistics of its own and whole channels zeroed."""
    torch.manual_seed(seed)
    module = VGGLike(4, input_shape=shape).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in module.features:
            if isinstance(layer, nn.BatchNorm2d):
                layer.running_mean.normal_(generator=g)
                layer.running_var.uniform_(0.5, 2.0, generator=g)
                layer.weight.normal_(generator=g)
                layer.bias.normal_(generator=g)
            if isinstance(layer, nn.Conv2d):
                layer.weight[torch.rand(len(layer.weight), generator=g) < dead] = 0
    return module


def _forms():
    torch.manual_seed(0)
    mlp = _prune(MLP(30, 4, hidden_layer_sizes=(40, 20)), 0.5)
    mlp.layer1.weight.data[:, ::2] *= (torch.rand(40, 15) < 0.1).float()  # a CSR layer too
    lenet = _prune(LeNet5(3, input_shape=(1, 16, 16)), 0.6)
    return {"mlp": (mlp, (30,)), "lenet5": (lenet, (1, 16, 16)), "vgg": (_vgg(), (3, 16, 16))}


@pytest.mark.parametrize("name", ["mlp", "lenet5", "vgg"])
def test_deployed_form_is_float32_and_batch_invariant_bit_for_bit(name):
    module, shape = _forms()[name]
    form = compact(module)
    assert isinstance(form, InferenceNet)
    assert all(op.weight.dtype == torch.float32 for op in form.ops if "weight" in op.tensors)
    x = torch.rand(2 * DENSE_CHUNK + 5, *shape, generator=torch.Generator().manual_seed(1))
    full = form(x)
    one_by_one = torch.cat([form(x[i : i + 1]) for i in range(len(x))])
    reversed_ = form(x.flip(0)).flip(0)
    odd = torch.cat([form(x[:7]), form(x[7:])])
    for other in (one_by_one, reversed_, odd):
        torch.testing.assert_close(other, full, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["mlp", "lenet5", "vgg"])
def test_deployed_form_probabilities_stay_within_1e_4(name):
    module, shape = _forms()[name]
    x = torch.rand(40, *shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        exact = torch.softmax(copy.deepcopy(module).double().eval()(x.double()), 1)
    proba = torch.softmax(compact(module)(x), 1)
    assert (proba - exact).abs().max() < 1e-4


def test_deployed_layer_falls_back_to_float64_when_its_kernel_is_not_batch_invariant(
    monkeypatch,
):
    monkeypatch.setattr(_deployed, "_invariant", lambda op, shape: False)
    module, _ = _forms()["lenet5"]
    form = compact(module)
    dense = [op for op in form.ops if "weight" in op.tensors and not op.is_csr]
    assert dense and all(op.weight.dtype == torch.float64 for op in dense)
    assert not any(op.chunked for op in dense)


def test_compact_vgg_removes_constant_and_unread_channels_and_computes_the_same_function():
    module = _vgg(dead=0.4)
    convs = [layer for layer in module.features if isinstance(layer, nn.Conv2d)]
    norms = [layer for layer in module.features if isinstance(layer, nn.BatchNorm2d)]
    with torch.no_grad():
        norms[1].weight[0] = 0  # a constant channel by its batch-norm scale
        convs[3].weight[:, 2] = 0  # channel 2 of conv 2 is read by nobody
        convs[2].weight[2] = 1.0
    form = compact(module)
    convs_out = [op.weight.shape[0] for op in form.ops if op.kind == "conv"]
    live = [int(c.weight.flatten(1).any(1).sum()) for c in convs]
    assert convs_out[1] < live[1] and convs_out[2] < live[2]
    assert all(o <= n for o, n in zip(convs_out, live))
    assert any("bias_map" in op.tensors for op in form.ops)  # borders of a folded constant
    x = torch.rand(9, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        exact = copy.deepcopy(module).double()(x.double())
    torch.testing.assert_close(form(x), exact, rtol=1e-4, atol=1e-4)


def test_compact_vgg_with_every_channel_dead_outputs_a_constant():
    module = _vgg(dead=0.0)
    with torch.no_grad():
        [c for c in module.features if isinstance(c, nn.Conv2d)][3].weight.zero_()
    form = compact(module)
    assert not any(op.kind == "conv" for op in form.ops)
    x = torch.rand(5, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        exact = copy.deepcopy(module).double()(x.double())
    torch.testing.assert_close(form(x), exact, rtol=1e-5, atol=1e-5)


def test_compact_vgg_with_a_layer_it_cannot_read_keeps_the_module_exact():
    module = _vgg()
    module.features[1] = nn.Tanh()
    with pytest.warns(UserWarning, match="VGGLike.*Tanh"):
        form = compact(module)
    assert not isinstance(form, InferenceNet)
    x = torch.rand(3, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(form(x), copy.deepcopy(module).double()(x), rtol=0, atol=0)


def test_deployed_ops_count_their_multiply_adds_and_bytes():
    module, _ = _forms()["lenet5"]
    form = compact(module)
    conv1, conv2 = [op for op in form.ops if op.kind == "conv"]
    assert conv1.flops == conv1.weight.shape[0] * 9 * 14 * 14
    assert conv2.flops == conv2.weight.shape[0] * conv2.weight.shape[1] * 9 * 5 * 5
    for op in form.ops:
        if op.kind == "linear":
            w = op.weight
            assert op.flops == (w.values().numel() if op.is_csr else w.numel())
    assert conv1.nbytes == 4 * (conv1.weight.numel() + conv1.bias.numel())
    assert form.flops == sum(op.flops for op in form.ops) > 0
    assert form.nbytes == sum(op.nbytes for op in form.ops) > 0


def test_deployed_layer_times_name_every_op():
    module, shape = _forms()["lenet5"]
    form = compact(module)
    times = form.layer_times(torch.rand(8, *shape), repeats=2)
    assert [op for op, _ in times] == form.ops and all(t >= 0 for _, t in times)
    assert sum(t for _, t in times) > 0


def test_sparsified_regressor_form_computes_in_float64(blobs):
    X, y = blobs
    reg = SparseNetRegressor(max_epochs=1, random_state=0).fit(X, y.astype(float))
    form = inference_form(reg.sparsify().net_)
    assert all(op.weight.dtype == torch.float64 for op in form.ops if "weight" in op.tensors)


def test_op_to_keeps_index_tensors():
    op = Op("select", index=torch.tensor([0, 2]))
    assert op.to(torch.float32).index.dtype == torch.int64


class _ResNet(nn.Module):
    """A user module with batch norm and a residual sum over 8 channels."""

    def __init__(self, n_classes=3):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv3 = nn.Conv2d(8, 12, 3, padding=1)
        self.fc = nn.Linear(12 * 4 * 4, n_classes)

    def forward(self, x):
        x = x.reshape(len(x), 1, 8, 8)
        h = torch.relu(self.bn1(self.conv1(x)))
        h = torch.relu(h + self.bn2(self.conv2(h)))
        h = nn.functional.max_pool2d(torch.relu(self.conv3(h)), 2)
        return self.fc(h.flatten(1))


def _structured_resnet():
    """Whole output channels zeroed: 3 of the residual's 8 (in both convs), 5 of conv3's 12."""
    torch.manual_seed(0)
    module = _ResNet().eval()
    with torch.no_grad():
        for bn in (module.bn1, module.bn2):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.bias.uniform_(-0.5, 0.5)
        for conv in (module.conv1, module.conv2):
            conv.weight[[1, 4, 6]] = 0
        module.conv2.weight[[0, 3]] = 0  # zero in one branch only: not constant
        module.conv3.weight[[0, 2, 5, 7, 11]] = 0
    return module


def test_compact_user_module_with_batch_norm_and_residual_removes_constant_channels():
    pytest.importorskip("torch_pruning")
    module = _structured_resnet()
    form = compact(module, input_shape=(64,))
    conv2 = form.conv2.layer if hasattr(form.conv2, "layer") else form.conv2
    conv3 = form.conv3.layer if hasattr(form.conv3, "layer") else form.conv3
    assert form.conv1.out_channels == 5 and conv2.out_channels == 5  # coupled by the sum
    assert conv3.out_channels == 7
    x = torch.rand(30, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        exact = torch.softmax(copy.deepcopy(module).double()(x), 1)
        torch.testing.assert_close(torch.softmax(form(x), 1), exact, rtol=0, atol=1e-9)


def test_compact_user_module_keeps_a_channel_that_the_input_reaches():
    pytest.importorskip("torch_pruning")

    class Skip(nn.Module):  # the input itself is added to channel 0: never constant
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 2, 3, padding=1)
            self.fc = nn.Linear(2 * 36, 2)

        def forward(self, x):
            x = x.reshape(len(x), 1, 6, 6)
            return self.fc(self.conv2(self.conv1(x) + x).flatten(1))

    torch.manual_seed(0)
    module = Skip().eval()
    with torch.no_grad():
        module.conv1.weight.zero_()
    form = compact(module, input_shape=(36,))
    x = torch.rand(7, 36, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(form(x), copy.deepcopy(module).double()(x), rtol=0, atol=1e-12)


def test_compact_user_module_without_torch_pruning_warns_and_stays_exact(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_torch_pruning(name, *args, **kwargs):
        if name == "torch_pruning":
            raise ImportError("no torch_pruning here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch_pruning)
    module = _structured_resnet()
    with pytest.warns(UserWarning, match=r"_ResNet.*skprune\[structured\]"):
        form = compact(module, input_shape=(64,))
    assert form.conv1.out_channels == 8
    x = torch.rand(4, 64, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(form(x), copy.deepcopy(module).double()(x), rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["avg", "max"])
@pytest.mark.parametrize("size", [(26, 26), (13, 11)])
def test_pool2_is_torch_pooling_bit_for_bit(kind, size):
    x = torch.randn(3, 2, *size, generator=torch.Generator().manual_seed(6))
    pool = nn.functional.avg_pool2d if kind == "avg" else nn.functional.max_pool2d
    torch.testing.assert_close(_deployed._pool2(x, kind), pool(x, 2), rtol=0, atol=0)


def test_staleness_check_of_a_sparse_weight_sees_every_change(blobs):
    from skprune import SparseNetClassifier
    from skprune.estimators._inference import _entry, _NonZeros

    X, y = blobs
    X = np.hstack([X] * 13).astype(np.float32)  # a first weight of 100 x 104 > 4,096
    clf = SparseNetClassifier(pruning="global", target_density=0.1, max_epochs=1, random_state=0)
    clf.fit(X, y).sparsify()
    weight = clf.net_.module_.layer1.weight
    assert any(isinstance(c, _NonZeros) for c in _entry(clf.net_).copies)
    zero = (weight == 0).nonzero()[0].tolist()
    nonzero = weight.nonzero()[0].tolist()
    for place, value in ((zero, 0.5), (nonzero, 0.25), (nonzero, 0.0)):
        form = inference_form(clf.net_)
        weight.data[place[0], place[1]] = value  # through .data: no version counter moves
        assert inference_form(clf.net_) is not form
        expected = torch.softmax(clf.net_.module_(torch.from_numpy(X)), 1).detach().numpy()
        np.testing.assert_allclose(clf.predict_proba(X), expected, atol=1e-5)
    form = inference_form(clf.net_)
    assert inference_form(clf.net_) is form  # unchanged weights: the same form
