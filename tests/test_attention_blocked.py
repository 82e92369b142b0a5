"""The blocked ("flash") path of scaled_dot_product_attention as an op: which inputs take it, its
gradients (float64 gradcheck and gradgradcheck), PyTorch parity of outputs, gradients and
Hessian-vector products, MultiheadAttention through it, and its O(L) memory.

The kernels themselves are tested against their references in test_kernels_attention.py. Here
the blocked path is forced on small sizes (``BLOCKED_MIN_KEYS`` of 1, blocks of 2 queries and 3
keys), so every case crosses block edges and ragged ends.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import assert_hvp_matches_torch, check_module_parity
from hypothesis import given
from hypothesis import strategies as st
from test_attention import check_function_parity, random_mask
from torch.nn.attention import SDPBackend, sdpa_kernel

import minidl
from minidl.kernels import attention as kernels
from minidl.nn.attention import MultiheadAttention
from minidl.ops import attention
from minidl.ops.attention import scaled_dot_product_attention


@pytest.fixture
def blocked(monkeypatch):
    """The blocked kernel for any number of keys, in blocks of 2 queries and 3 keys."""
    monkeypatch.setattr(attention, "BLOCKED_MIN_KEYS", {"causal": 1, "full": 1})
    monkeypatch.setattr(kernels, "BLOCK_Q", 2)
    monkeypatch.setattr(kernels, "BLOCK_K", 3)


def constant(mask, dtype):
    """A bool mask as it is, a float one in the query's dtype."""
    return mask if mask.dtype == bool else mask.astype(dtype)


@given(batch=st.lists(st.integers(1, 2), min_size=0, max_size=2).map(tuple), L=st.integers(1, 5),
       S=st.integers(1, 7), E=st.integers(1, 3), Ev=st.integers(1, 3),
       mask=st.sampled_from(["none", "bool", "float", "causal"]), mask_batched=st.booleans(),
       broadcast_key=st.booleans(), scale=st.sampled_from([None, 0.3]), seed=st.integers(0, 2**16))
def test_blocked_path_gradchecks_and_matches_torch(blocked, kernel_mode, batch, L, S, E, Ev, mask,
                                                   mask_batched, broadcast_key, scale, seed):
    rng = np.random.default_rng(seed)
    key_batch = (1,) * len(batch) if broadcast_key else batch
    q, k, v = (rng.standard_normal(batch + (L, E)), rng.standard_normal(key_batch + (S, E)),
               rng.standard_normal(key_batch + (S, Ev)))
    causal = mask == "causal"  # top-left aligned, also for L != S (PyTorch's rule)
    m = None if causal else random_mask(rng, (batch if mask_batched else ()) + (L, S), mask)

    def ours(q, k, v):  # the mask is a constant (of the query's dtype): the blocked path's condition
        mask = [] if m is None else [minidl.tensor(constant(m, q.detach().numpy().dtype))]
        return scaled_dot_product_attention(q, k, v, *mask, is_causal=causal, scale=scale)

    def theirs(q, k, v):
        mask = None if m is None else torch.tensor(constant(m, str(q.dtype)[len("torch."):]))
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                              scale=scale)

    tensors = [minidl.tensor(x, requires_grad=True) for x in (q, k, v)]
    assert ours(*tensors).grad_fn.name == "BlockedAttentionBackward"
    assert minidl.gradcheck(ours, tensors)
    assert minidl.autograd.gradgradcheck(ours, tensors)
    check_function_parity(ours, theirs, [q, k, v])

    def either(engine, *xs):
        if engine is minidl:
            return ours(*xs)
        with sdpa_kernel(SDPBackend.MATH):  # torch's fused CPU kernel has no double backward
            return theirs(*xs)

    assert_hvp_matches_torch(either, [q, k, v], "blocked scaled_dot_product_attention")


def test_which_inputs_take_the_blocked_kernel():
    """From BLOCKED_MIN_KEYS keys on (fewer with a causal mask), unless something needs the
    (L, S) weights: dropout, a mask that requires grad, or MultiheadAttention's need_weights."""
    rng = np.random.default_rng(0)
    S, causal_S = attention.BLOCKED_MIN_KEYS["full"], attention.BLOCKED_MIN_KEYS["causal"]
    q, k, v = (minidl.tensor(rng.standard_normal((1, 2, S, 4)), requires_grad=True)
               for _ in range(3))

    def path(length: int, causal: bool) -> str:
        rows = slice(None, length)
        return scaled_dot_product_attention(q[..., rows, :], k[..., rows, :], v[..., rows, :],
                                            is_causal=causal).grad_fn.name

    assert path(S, False) == path(causal_S, True) == "BlockedAttentionBackward"
    assert path(S - 1, False) == path(causal_S - 1, True) == "ScaledDotProductAttentionBackward"
    dropped = scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    assert dropped.grad_fn.name == "ScaledDotProductAttentionBackward"
    learned_mask = minidl.zeros(S, S, dtype=minidl.float64, requires_grad=True)
    masked = scaled_dot_product_attention(q, k, v, attn_mask=learned_mask)
    assert masked.grad_fn.name == "ScaledDotProductAttentionBackward"
    masked.sum().backward()
    assert learned_mask.grad is not None and learned_mask.grad.shape == (S, S)


def test_the_blocked_node_saves_no_scores():
    """O(L) memory: the node keeps q, k, v, the output and one log-sum-exp per row, no (L, S)."""
    L = S = attention.BLOCKED_MIN_KEYS["causal"]
    rng = np.random.default_rng(1)
    q, k, v = (minidl.tensor(rng.standard_normal((2, L, 8)).astype(np.float32), requires_grad=True)
               for _ in range(3))
    out = scaled_dot_product_attention(q, k, v, is_causal=True)
    saved = out.grad_fn.saved_tensors
    assert [tuple(a.shape) for a in saved] == [(2, L, 8)] * 4 + [(2, L)]
    assert all(a.shape[-2:] != (L, S) for a in saved)


@pytest.mark.parametrize("causal", [False, True])
def test_multihead_attention_with_padding_through_the_blocked_kernel(blocked, causal):
    """MultiheadAttention (need_weights=False) with a key padding mask and a causal mask runs on
    the blocked kernel and matches torch.nn.MultiheadAttention: outputs and every gradient."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 7, 8))  # (N, L, E)
    pad = np.zeros((2, 7), dtype=bool)
    pad[1, 5:] = True  # the second sequence is two tokens shorter
    causal_mask = np.triu(np.ones((7, 7), dtype=bool), 1) if causal else None  # True = masked

    def call(module, x):
        engine = torch if isinstance(module, torch.nn.Module) else minidl
        extra = {} if causal_mask is None else {"attn_mask": engine.tensor(causal_mask),
                                                "is_causal": True}
        return module(x, x, x, key_padding_mask=engine.tensor(pad), need_weights=False,
                      **extra)[0]

    ours = MultiheadAttention(8, 2, batch_first=True)
    out = call(ours, minidl.tensor(x.astype(np.float32)))
    assert out.grad_fn is not None
    check_module_parity(ours, torch.nn.MultiheadAttention(8, 2, batch_first=True), [x], call=call)
