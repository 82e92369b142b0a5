"""clip_grad_norm_ and clip_grad_value_: the total norm and the clipped gradients equal torch's."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import minidl
import minidl.nn.utils as utils
from minidl.nn.parameter import Parameter
from helpers import assert_close

shapes = st.lists(st.lists(st.integers(1, 4), max_size=3).map(tuple), min_size=1, max_size=4)


def with_grads(grads, device="cpu"):
    """minidl and torch parameters with these gradients (None: a parameter without one)."""
    ours, theirs = [], []
    for g in grads:
        value = np.zeros(() if g is None else g.shape, dtype=np.float32 if g is None else g.dtype)
        p, q = Parameter(minidl.tensor(value, device=device)), torch.nn.Parameter(torch.tensor(value))
        if g is not None:
            p.grad, q.grad = minidl.tensor(g, device=device), torch.tensor(g)
        ours.append(p)
        theirs.append(q)
    return ours, theirs


def draw_grads(shapes, dtype, seed, missing):
    rng = np.random.default_rng(seed)
    grads = [np.asarray(rng.standard_normal(s) * 3, dtype=dtype) for s in shapes]
    return [None if index == missing else g for index, g in enumerate(grads)]


@given(shapes=shapes, dtype=st.sampled_from([np.float32, np.float64]),
       norm_type=st.sampled_from([2.0, 1.0, 3.0, 0.5, math.inf, 2]),
       max_norm=st.sampled_from([0.1, 1.0, 5.0, 1e3]), seed=st.integers(0, 2**16),
       missing=st.integers(-1, 3))
def test_clip_grad_norm_matches_torch(shapes, dtype, norm_type, max_norm, seed, missing):
    ours, theirs = with_grads(draw_grads(shapes, dtype, seed, missing))
    total = utils.clip_grad_norm_(ours, max_norm, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    assert isinstance(total, minidl.Tensor) and total.shape == ()
    assert total.dtype == dtype or all(p.grad is None for p in ours)
    assert_close(total, expected, dtype, "total norm")
    for index, (p, q) in enumerate(zip(ours, theirs)):
        assert (p.grad is None) == (q.grad is None)
        if p.grad is not None:
            assert_close(p.grad, q.grad, dtype, f"clipped gradient {index}")
    norms = [np.linalg.norm(p.grad.numpy().ravel(), norm_type) for p in ours if p.grad is not None]
    if norms:  # a p-norm scales linearly: the clipped total is min(total, max_norm)
        np.testing.assert_allclose(np.linalg.norm(norms, norm_type), min(total.item(), max_norm),
                                   rtol=1e-4)


def test_clip_grad_norm_on_every_device(device):
    grads = [np.arange(6.0).reshape(2, 3), np.array([-4.0, 0.5])]
    ours, theirs = with_grads(grads, device)
    total = utils.clip_grad_norm_(ours, 2.0)
    assert total.device == minidl.device(device)
    assert_close(total, torch.nn.utils.clip_grad_norm_(theirs, 2.0), np.float64)
    for p, q in zip(ours, theirs):
        assert_close(p.grad, q.grad, np.float64)


def test_clip_grad_norm_takes_one_tensor_or_a_generator_and_leaves_small_grads():
    ours, _ = with_grads([np.array([3.0, 4.0])])
    total = utils.clip_grad_norm_(ours[0], max_norm=10.0)
    assert total.item() == 5.0
    np.testing.assert_array_equal(ours[0].grad.numpy(), [3.0, 4.0])
    total = utils.clip_grad_norm_((p for p in ours), max_norm=1.0)
    np.testing.assert_allclose(ours[0].grad.numpy(), [0.6, 0.8], rtol=1e-6)
    empty = utils.clip_grad_norm_([Parameter(minidl.zeros(2))], 1.0)
    assert empty.item() == 0.0 and empty.dtype == np.float32


@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_clip_grad_norm_nonfinite(bad):
    grads = [np.array([1.0, bad]), np.array([2.0])]
    ours, theirs = with_grads(grads)
    with pytest.raises(RuntimeError, match=r"clip_grad_norm_: the total norm of order 2\.0 .* is (inf|nan)"):
        utils.clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(ours[0].grad.numpy(), grads[0])  # untouched by the failed call
    total = utils.clip_grad_norm_(ours, 1.0)
    expected = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    np.testing.assert_array_equal(total.numpy(), expected.numpy())
    for p, q in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())


@given(shapes=shapes, dtype=st.sampled_from([np.float32, np.float64]),
       clip_value=st.sampled_from([0.0, 0.3, 1.0, 10.0]), seed=st.integers(0, 2**16),
       missing=st.integers(-1, 3))
def test_clip_grad_value_matches_torch(shapes, dtype, clip_value, seed, missing):
    ours, theirs = with_grads(draw_grads(shapes, dtype, seed, missing))
    assert utils.clip_grad_value_(ours, clip_value) is None
    if any(q.grad is not None for q in theirs):  # torch 2.13 raises when no parameter has a grad
        torch.nn.utils.clip_grad_value_(theirs, clip_value)
    for p, q in zip(ours, theirs):
        if p.grad is not None:
            np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())
            assert np.abs(p.grad.numpy()).max() <= clip_value
