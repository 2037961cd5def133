import math

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from skprune.gates import (
    LIMITS,
    TEMPERATURE,
    attach_gate,
    fold_gate,
    gate_shape,
    hard_concrete_sample,
    log_alpha_for,
    median_gate,
    prob_nonzero,
)


def _samples(log_alpha, n, temperature=TEMPERATURE, seed=0):
    generator = torch.Generator().manual_seed(seed)
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return hard_concrete_sample(
        torch.full((n,), float(log_alpha), dtype=torch.float64), u, temperature
    )


def test_hard_concrete_sample_in_unit_interval_with_exact_zeros_and_ones():
    z = _samples(0.0, 100_000)
    assert z.min() == 0.0 and z.max() == 1.0
    assert 0.05 < (z == 0).double().mean() < 0.5
    assert 0.05 < (z == 1).double().mean() < 0.5
    assert ((z > 0) & (z < 1)).any()


@pytest.mark.parametrize("log_alpha", [-3.0, -1.0, 0.0, 0.5, 2.0])
@pytest.mark.parametrize("temperature", [TEMPERATURE, 0.3])
def test_prob_nonzero_matches_monte_carlo(log_alpha, temperature):
    z = _samples(log_alpha, 200_000, temperature, seed=1)
    closed = float(prob_nonzero(torch.tensor(log_alpha), temperature))
    assert abs((z != 0).double().mean().item() - closed) < 0.005


@pytest.mark.parametrize("log_alpha", [-2.0, -0.5, 0.0, 1.0])
def test_median_gate_is_the_median_of_the_samples(log_alpha):
    z = _samples(log_alpha, 100_001, seed=2)
    assert abs(z.median().item() - float(median_gate(torch.tensor(log_alpha)))) < 0.01


def test_median_gate_closed_exactly_when_prob_nonzero_at_most_half():
    log_alpha = torch.linspace(-4, 4, 801)
    closed = median_gate(log_alpha) == 0
    assert torch.equal(closed, prob_nonzero(log_alpha) <= 0.5 + 1e-6)


def test_log_alpha_for_inverts_prob_nonzero():
    for p in (0.01, 0.5, 0.83, 0.99):
        assert math.isclose(float(prob_nonzero(torch.tensor(log_alpha_for(p)))), p, rel_tol=1e-5)


def test_hard_concrete_sample_gradient_matches_autograd_formula():
    log_alpha = torch.randn(50, dtype=torch.float64, requires_grad=True)
    u = torch.rand(50, dtype=torch.float64)
    (grad,) = torch.autograd.grad(hard_concrete_sample(log_alpha, u).sum(), log_alpha)
    low, high = LIMITS
    x = (torch.log(u) - torch.log1p(-u) + log_alpha) / TEMPERATURE
    reference = (torch.sigmoid(x) * (high - low) + low).clamp(0, 1)
    (expected,) = torch.autograd.grad(reference.sum(), log_alpha)
    torch.testing.assert_close(grad, expected)


def test_gate_shape_per_weight_and_per_neuron():
    assert gate_shape(nn.Linear(4, 3), "weight") == (3, 4)
    assert gate_shape(nn.Linear(4, 3), "neuron") == (1, 4)
    assert gate_shape(nn.Conv2d(2, 5, 3), "neuron") == (5, 1, 1, 1)


def test_gate_shape_neuron_rejects_other_layers():
    with pytest.raises(ValueError, match="structure='neuron'.*BatchNorm1d"):
        gate_shape(nn.BatchNorm1d(4), "neuron")


def test_eval_mode_uses_median_gates_and_fold_keeps_them():
    torch.manual_seed(0)
    layer = nn.Linear(6, 4)
    original = layer.weight
    gate = attach_gate(layer, "weight", init_density=0.6)
    with torch.no_grad():
        gate.log_alpha.copy_(torch.randn(4, 6) * 3)
    gate.resample()
    layer.eval()
    expected = original.detach() * median_gate(gate.log_alpha.detach())
    torch.testing.assert_close(layer.weight.detach(), expected)
    fold_gate(layer)
    assert not parametrize.is_parametrized(layer) and type(layer) is nn.Linear
    assert layer.weight is original
    torch.testing.assert_close(layer.weight.detach(), expected)
    assert (layer.weight == 0).any()


def test_training_mode_samples_from_the_noise():
    layer = nn.Linear(3, 2)
    gate = attach_gate(layer, "neuron", init_density=0.9)
    gate.resample()
    z = gate.gate()
    assert z.shape == (1, 3) and z.requires_grad
    torch.testing.assert_close(layer.weight, layer.parametrizations.weight.original * z)
