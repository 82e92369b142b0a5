"""Every core op: float64 gradcheck on every device, and parity with PyTorch (values and gradients).

The cases come from tests/op_specs.py; a coverage test fails when a public op has no entry.
"""
import numpy as np
import pytest
import torch
from helpers import assert_close, assert_hvp_matches_torch
from hypothesis import given
from hypothesis import strategies as st
from op_specs import SPECS, draw_case

import minidl

IDS = [spec.name for spec in SPECS]


def _outputs(result):
    return list(result) if isinstance(result, (tuple, list)) else [result]


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
@given(data=st.data())
def test_gradcheck(spec, device, data):
    arrays, params = draw_case(spec, data.draw)
    inputs = [minidl.tensor(a, requires_grad=True, device=device) for a in arrays]
    assert minidl.gradcheck(lambda *xs: spec.fn(minidl, *xs, **params), inputs, **spec.gradcheck)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
@given(data=st.data())
def test_matches_torch(spec, dtype, data):
    arrays, params = draw_case(spec, data.draw)
    ours = [minidl.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    our_out, their_out = _outputs(spec.fn(minidl, *ours, **params)), _outputs(spec.fn(torch, *theirs, **params))
    assert len(our_out) == len(their_out)
    rng = np.random.default_rng(0)
    our_loss = their_loss = None
    for index, (a, b) in enumerate(zip(our_out, their_out)):
        assert_close(a, b, dtype, f"{spec.name} output {index}")
        assert str(a.dtype) == str(b.dtype).replace("torch.", ""), f"{spec.name}: dtype {a.dtype} vs {b.dtype}"
        if b.requires_grad:
            weight = rng.standard_normal(b.shape).astype(dtype)
            our_term, their_term = (a * minidl.tensor(weight)).sum(), (b * torch.tensor(weight)).sum()
            our_loss = our_term if our_loss is None else our_loss + our_term
            their_loss = their_term if their_loss is None else their_loss + their_term
    if their_loss is None:
        return
    our_loss.backward()
    their_loss.backward()
    for index, (a, b) in enumerate(zip(ours, theirs)):
        if b.grad is None:
            assert a.grad is None or not np.any(a.grad.numpy()), f"{spec.name}: input {index} got a gradient"
            continue
        assert_close(a.grad, b.grad, dtype, f"{spec.name} grad of input {index}")


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
@given(data=st.data())
def test_gradgradcheck(spec, device, data):
    arrays, params = draw_case(spec, data.draw)
    inputs = [minidl.tensor(a, requires_grad=True, device=device) for a in arrays]
    assert minidl.autograd.gradgradcheck(lambda *xs: spec.fn(minidl, *xs, **params), inputs,
                                         **spec.gradcheck)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
@given(data=st.data())
def test_second_derivatives_match_torch(spec, data):
    """Hessian-vector products through create_graph: uᵀ ∂²(Σ wᵢ·outᵢ)/∂x² in both engines."""
    arrays, params = draw_case(spec, data.draw)
    assert_hvp_matches_torch(lambda m, *xs: spec.fn(m, *xs, **params), arrays, spec.name)


def test_every_differentiable_op_has_a_spec():
    covered = {spec.op for spec in SPECS}
    missing = sorted(set(minidl.ops.DIFFERENTIABLE) - covered)
    assert not missing, f"ops without a gradcheck/parity entry in tests/op_specs.py: {missing}"


NON_DIFFERENTIABLE = {
    "eq": lambda m, x, y: m.eq(x, y), "ne": lambda m, x, y: x != y, "lt": lambda m, x, y: x < y,
    "le": lambda m, x, y: x <= y, "gt": lambda m, x, y: m.gt(x, y), "ge": lambda m, x, y: x >= y,
    "logical_not": lambda m, x, y: m.logical_not(x > 0),
    "logical_and": lambda m, x, y: m.logical_and(x > 0, y > 0),
    "logical_or": lambda m, x, y: m.logical_or(x > 0, y > 0),
    "argmax": lambda m, x, y: (m.argmax(x), m.argmax(x, dim=-1), m.argmax(x, dim=0, keepdim=True)),
    "argmin": lambda m, x, y: (m.argmin(x), m.argmin(x, dim=1), m.argmin(x, dim=-2, keepdim=True)),
    "argsort": lambda m, x, y: (m.argsort(x, dim=1, stable=True), x.argsort(dim=0, stable=True),
                                m.argsort(x, dim=-1, descending=True, stable=True)),
}


@pytest.mark.parametrize("name", sorted(NON_DIFFERENTIABLE))
@given(seed=st.integers(0, 2**16), rows=st.integers(1, 4), cols=st.integers(1, 4))
def test_non_differentiable_ops_match_torch(name, seed, rows, cols):
    rng = np.random.default_rng(seed)
    x, y = rng.integers(-2, 3, (rows, cols)).astype(np.float32), rng.integers(-2, 3, (cols,)).astype(np.float32)
    ours = _outputs(NON_DIFFERENTIABLE[name](minidl, minidl.tensor(x), minidl.tensor(y)))
    theirs = _outputs(NON_DIFFERENTIABLE[name](torch, torch.tensor(x), torch.tensor(y)))
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        assert a.requires_grad is False


def test_every_public_op_is_tested():
    assert set(minidl.ops.__all__) == set(minidl.ops.DIFFERENTIABLE) | set(NON_DIFFERENTIABLE)


@pytest.mark.parametrize("dtype", ["int64", "bool"])
def test_leaky_relu_of_a_non_float_tensor_is_an_error_as_in_torch(dtype):
    values = np.array([1, 0, 1]).astype(dtype)
    with pytest.raises(RuntimeError):
        torch.nn.functional.leaky_relu(torch.tensor(values), 0.1)
    with pytest.raises(RuntimeError, match=f"leaky_relu: expected a floating-point tensor, got {dtype}"):
        minidl.nn.LeakyReLU(0.1)(minidl.tensor(values))
