"""Linear, activations, Dropout, LayerNorm: gradcheck, gradgradcheck and PyTorch parity (first and
second derivatives)."""
import numpy as np
import pytest
import torch
from helpers import (assert_hvp_matches_torch, check_module_hvp_parity, check_module_parity,
                     gradcheck_module, gradgradcheck_module)
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl import nn


@given(batch=st.integers(1, 4), features=st.integers(1, 5), out=st.integers(1, 4),
       bias=st.booleans(), lead=st.integers(0, 2), seed=st.integers(0, 2**16))
def test_linear_gradcheck_and_parity(batch, features, out, bias, lead, seed):
    x = np.random.default_rng(seed).standard_normal((2,) * lead + (batch, features))
    assert gradcheck_module(nn.Linear(features, out, bias=bias), [x])
    check_module_parity(nn.Linear(features, out, bias=bias), torch.nn.Linear(features, out, bias=bias), [x])
    assert gradgradcheck_module(nn.Linear(features, out, bias=bias), [x])
    check_module_hvp_parity(nn.Linear(features, out, bias=bias),
                            torch.nn.Linear(features, out, bias=bias), [x])


ACTIVATIONS = [
    (lambda m: m.ReLU(), "ReLU"), (lambda m: m.LeakyReLU(0.2), "LeakyReLU"),
    (lambda m: m.GELU(), "GELU"), (lambda m: m.GELU(approximate="tanh"), "GELU-tanh"),
    (lambda m: m.Tanh(), "Tanh"), (lambda m: m.Sigmoid(), "Sigmoid"), (lambda m: m.SiLU(), "SiLU"),
    (lambda m: m.Softplus(beta=2.0), "Softplus"), (lambda m: m.Softmax(dim=1), "Softmax"),
    (lambda m: m.LogSoftmax(dim=-1), "LogSoftmax"),
]


@pytest.mark.parametrize("make", [a[0] for a in ACTIVATIONS], ids=[a[1] for a in ACTIVATIONS])
@given(seed=st.integers(0, 2**16))
def test_activation_layers(make, seed):
    x = np.random.default_rng(seed).standard_normal((3, 4)) * 3
    assert gradcheck_module(make(nn), [x])
    check_module_parity(make(nn), make(torch.nn), [x])
    assert gradgradcheck_module(make(nn), [x])
    check_module_hvp_parity(make(nn), make(torch.nn), [x])


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), trailing=st.integers(1, 2),
       affine=st.booleans(), seed=st.integers(0, 2**16))
def test_layer_norm(shape, trailing, affine, seed):
    trailing = min(trailing, len(shape))
    x = np.random.default_rng(seed).standard_normal(shape) + 1
    normalized = tuple(shape[-trailing:])
    if np.prod(normalized) == 1:  # one element normalises to 0: only rounding noise is left to compare
        return
    assert gradcheck_module(nn.LayerNorm(normalized, elementwise_affine=affine), [x])
    check_module_parity(nn.LayerNorm(normalized, elementwise_affine=affine),
                        torch.nn.LayerNorm(normalized, elementwise_affine=affine), [x])
    assert gradgradcheck_module(nn.LayerNorm(normalized, elementwise_affine=affine), [x])
    check_module_hvp_parity(nn.LayerNorm(normalized, elementwise_affine=affine),
                            torch.nn.LayerNorm(normalized, elementwise_affine=affine), [x])


def test_dropout_train_and_eval():
    minidl.manual_seed(0)
    layer = nn.Dropout(0.3)
    x = minidl.ones(2000, requires_grad=True)
    y = layer(x)
    kept = y.numpy() != 0
    assert 0.6 < kept.mean() < 0.8
    np.testing.assert_allclose(y.numpy()[kept], 1 / 0.7, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), kept / 0.7, rtol=1e-6)
    layer.eval()
    assert layer(x) is x


def test_linear_rejects_wrong_features_and_dtype():
    layer = nn.Linear(4, 2)
    with pytest.raises(ValueError, match=r"Linear\(in_features=4.*expected input of shape \(\.\.\., 4\), got \(3, 5\)"):
        layer(minidl.randn(3, 5))
    with pytest.raises(TypeError, match="dtype float32 on cpu.*got dtype float64"):
        layer(minidl.randn(3, 4, dtype=minidl.float64))


@given(p=st.sampled_from([0.2, 0.5]), seed=st.integers(0, 2**16))
def test_dropout_second_order_with_the_same_draw(p, seed):
    """Dropout is x·m/(1-p) with a constant mask m: re-seeding before each call makes every
    evaluation draw the same m, so gradgradcheck applies, and torch gets that same mask."""
    x = np.random.default_rng(seed).standard_normal((3, 4))

    def ours(t):
        minidl.manual_seed(seed)
        return minidl.nn.functional.dropout(t, p) ** 3

    scaled_mask = ours(minidl.ones(3, 4, dtype=minidl.float64)).numpy()  # m³/(1-p)³
    mask = np.cbrt(scaled_mask)  # m/(1-p)
    assert set(np.unique(mask.round(12))) <= {0.0, round(1 / (1 - p), 12)}
    assert minidl.autograd.gradgradcheck(ours, [minidl.tensor(x, requires_grad=True)])
    assert_hvp_matches_torch(
        lambda m, t: ours(t) if m is minidl else (t * torch.tensor(mask)) ** 3, [x], "dropout")

