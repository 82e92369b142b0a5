"""The fused attention Function: against its composed definition (every mask kind, dropout, the
weights output), float64 gradcheck of the paths PyTorch cannot check (dropout, dead rows), PyTorch
parity for grouped-query attention with masks, and the memory order of its results."""
import math

import numpy as np
import pytest
import torch.nn.functional as F
from helpers import assert_close, gradcheck_module
from hypothesis import given
from hypothesis import strategies as st
from test_attention import check_function_parity, random_mask

import minidl
from minidl import ops
from minidl.nn.attention import MultiheadAttention
from minidl.ops.attention import attend, scaled_dot_product_attention


def composed(q, k, v, mask=None, scale=None, dropout_p=0.0):
    """The definition, from minidl's ops: (softmax(Q Kᵀ·scale + M) ⊙ D) V, and the weights."""
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = ops.matmul(q * scale, k.mT)  # (..., L, S)
    if mask is not None and mask.dtype == bool:
        scores = ops.where(mask, scores, -math.inf)
    elif mask is not None:
        scores = scores + mask
    dead = np.isneginf(scores.numpy()).all(axis=-1, keepdims=True)  # (..., L, 1)
    weights = ops.where(dead, 0.0, ops.softmax(ops.where(dead, 0.0, scores), -1))
    weights = minidl.nn.functional.dropout(weights, dropout_p)
    return ops.matmul(weights, v), weights


def attention_case(rng, batch, broadcast, L, S, E, Ev, mask_kind, dead_row):
    """q, k, v (key/value batch dims of 1 when ``broadcast``) and a mask of ``mask_kind``."""
    key_batch = tuple(1 for _ in batch) if broadcast else batch
    q, k = rng.standard_normal(batch + (L, E)), rng.standard_normal(key_batch + (S, E))
    v = rng.standard_normal(key_batch + (S, Ev))
    mask = None
    if mask_kind == "bool":
        mask = rng.random((L, S)) < 0.7
        if dead_row:
            mask[0] = False
    elif mask_kind == "float":
        mask = rng.standard_normal(batch + (L, S))
        mask[rng.random(mask.shape) < 0.2] = -np.inf
        if dead_row:
            mask[..., 0, :] = -np.inf
    return q, k, v, mask


@given(batch=st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple),
       broadcast=st.booleans(), L=st.integers(1, 4), S=st.integers(1, 4), E=st.integers(1, 3),
       Ev=st.integers(1, 3), mask_kind=st.sampled_from(["none", "bool", "float"]),
       dead_row=st.booleans(), dropout_p=st.sampled_from([0.0, 0.4]), seed=st.integers(0, 2**16))
def test_fused_matches_composed_and_gradchecks(batch, broadcast, L, S, E, Ev, mask_kind, dead_row,
                                               dropout_p, seed):
    q, k, v, mask = attention_case(np.random.default_rng(seed), batch, broadcast, L, S, E, Ev,
                                   mask_kind, dead_row)
    arrays = [q, k, v] + ([] if mask is None else [mask])

    def run(attention, *tensors):
        minidl.manual_seed(seed)  # the same dropout mask on every call
        q, k, v, *m = tensors
        return attention(q, k, v, m[0] if m else None, 0.7, dropout_p)

    def fused(*args):
        return attend(*args, weights=True)

    tensors = [minidl.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    assert minidl.gradcheck(lambda *ts: run(fused, *ts), tensors)
    ours, theirs = ([minidl.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
                    for _ in range(2))
    outputs = run(fused, *ours), run(composed, *theirs)
    weights = np.random.default_rng(0).standard_normal(outputs[0][0].shape)
    for output, attention_weights in outputs:  # the weights' own gradient takes part too
        ((output * minidl.tensor(weights)).sum() + attention_weights.sum()).backward()
    for a, b, what in zip(outputs[0], outputs[1], ("output", "weights")):
        assert_close(a, b, np.float64, what)
    for index, (a, b) in enumerate(zip(ours, theirs)):
        if b.grad is not None:
            assert np.isfinite(a.grad.numpy()).all()
            assert_close(a.grad, b.grad, np.float64, f"grad of input {index}")


def test_dead_rows_get_zero_output_and_zero_grads():
    rng = np.random.default_rng(0)
    q, k, v = (minidl.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True) for _ in range(3))
    mask = rng.standard_normal((3, 3))
    mask[1] = -np.inf  # query 1 may attend to nothing
    mask = minidl.tensor(mask, requires_grad=True)
    output = scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.5)
    output.sum().backward()
    assert np.all(output.numpy()[:, 1] == 0)
    assert np.all(q.grad.numpy()[:, 1] == 0) and np.all(mask.grad.numpy()[1] == 0)
    assert all(np.isfinite(t.grad.numpy()).all() for t in (q, k, v, mask))


@pytest.mark.parametrize("heads", [(4, 2), (6, 3), (2, 1)])
@pytest.mark.parametrize("mask", ["causal", "bool", "float"])
def test_grouped_query_attention_with_masks_gradchecks_and_matches_torch(device, heads, mask):
    rng = np.random.default_rng(0)
    hq, hk = heads
    q, k, v = (rng.standard_normal((2, hq, 3, 4)), rng.standard_normal((2, hk, 5, 4)),
               rng.standard_normal((2, hk, 5, 2)))
    m = None if mask == "causal" else random_mask(rng, (3, 5), mask)
    arrays = [q, k, v] + ([] if m is None else [m])

    def call(sdpa, *xs):
        return sdpa(*xs[:3], attn_mask=xs[3] if len(xs) > 3 else None,
                    is_causal=mask == "causal", enable_gqa=True)

    tensors = [minidl.tensor(a, requires_grad=a.dtype.kind == "f", device=device) for a in arrays]
    assert minidl.gradcheck(lambda *xs: call(scaled_dot_product_attention, *xs), tensors)
    check_function_parity(lambda *xs: call(scaled_dot_product_attention, *xs),
                          lambda *xs: call(F.scaled_dot_product_attention, *xs), arrays)


@pytest.mark.parametrize("need_weights", [False, True])
def test_mha_training_with_dropout_gradchecks(need_weights):
    """Dropout inside the fused Function, with and without the weights output (reseeded per call)."""
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    pad = np.array([[False, False, True], [False, True, True]])

    def call(module, x):
        minidl.manual_seed(0)
        return module(x, x, x, key_padding_mask=minidl.tensor(pad), need_weights=need_weights,
                      average_attn_weights=False)

    assert gradcheck_module(MultiheadAttention(4, 2, dropout=0.3, batch_first=True), [x], call)


def test_head_views_get_results_in_their_memory_order():
    """The output for permuted (N, H, L, D) head views is laid out as (N, L, H, D), so merging the
    heads back is a view; values and gradients as for contiguous inputs."""
    rng = np.random.default_rng(0)
    packed = minidl.tensor(rng.standard_normal((2, 5, 3, 2, 4)), requires_grad=True)  # (N,L,3,H,D)
    q, k, v = (packed[:, :, i].permute(0, 2, 1, 3) for i in range(3))  # (N, H, L, D) views
    output = scaled_dot_product_attention(q, k, v)
    plain = [minidl.tensor(t.numpy(), requires_grad=True) for t in (q, k, v)]
    expected = scaled_dot_product_attention(*plain)
    assert output.array.transpose(0, 2, 1, 3).flags.c_contiguous
    np.testing.assert_allclose(output.numpy(), expected.numpy(), rtol=1e-12)
    output.sum().backward()
    expected.sum().backward()
    for i, t in enumerate(plain):
        grad = packed.grad.numpy()[:, :, i].transpose(0, 2, 1, 3)  # (N, H, L, D)
        np.testing.assert_allclose(grad, t.grad.numpy(), rtol=1e-12)
