import pytest
import torch

from skprune.models import BUILTIN_MODULES, MLP, LeNet5, VGGLike


def _n_params(module):
    return sum(p.numel() for p in module.parameters())


def test_lenet5_matches_reiners_table_1a():
    model = LeNet5()
    assert _n_params(model) == 60_074
    assert [model.layer1.weight.numel(), model.layer2.weight.numel()] == [48_000, 10_080]
    out = model(torch.zeros(2, 1, 28, 28))
    assert out.shape == (2, 10)
    torch.testing.assert_close(out, model(torch.zeros(2, 784)))


def test_vgg_matches_reiners_table_1b():
    model = VGGLike()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    buffers = sum(b.numel() for n, b in model.named_buffers() if "running" in n)
    assert trainable == 308_394 and trainable + buffers == 309_290
    assert model.layer1.weight.numel() + model.layer1.bias.numel() == 20_490
    model.eval()
    assert model(torch.zeros(2, 3 * 32 * 32)).shape == (2, 10)


def test_mlp_follows_hidden_layer_sizes():
    model = MLP(784, 10, hidden_layer_sizes=(300, 100))
    assert _n_params(model) == 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_builtin_factories_size_from_the_data():
    cls, kwargs = BUILTIN_MODULES["lenet300"](784, 10, None)
    assert cls is MLP and kwargs["hidden_layer_sizes"] == (300, 100)
    cls, kwargs = BUILTIN_MODULES["lenet5"](784, 10, None)
    assert kwargs["input_shape"] == (1, 28, 28)
    cls, kwargs = BUILTIN_MODULES["vgg"](3 * 32 * 32, 10, None)
    assert kwargs["input_shape"] == (3, 32, 32)
    assert BUILTIN_MODULES["lenet5"](3 * 16 * 16, 4, (3, 16, 16))[1]["input_shape"] == (3, 16, 16)


def test_ambiguous_flat_input_is_a_clear_error():
    with pytest.raises(ValueError, match="Cannot view 700 features"):
        BUILTIN_MODULES["lenet5"](700, 10, None)
    with pytest.raises(ValueError, match="at least 10x10"):
        LeNet5(input_shape=(1, 8, 8))
