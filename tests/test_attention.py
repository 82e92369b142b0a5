"""scaled_dot_product_attention and MultiheadAttention: gradcheck, gradgradcheck, PyTorch parity
of outputs, gradients and Hessian-vector products (hvp), masks, errors.

PyTorch's fused CPU attention kernels have no double backward, so torch's side of every HVP
comparison runs under ``sdpa_kernel(SDPBackend.MATH)`` (the composed reference).
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from helpers import (assert_close, assert_hvp_matches_torch, check_module_hvp_parity,
                     check_module_parity, gradcheck_module, gradgradcheck_module)
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl.nn.attention import MultiheadAttention
from minidl.ops.attention import scaled_dot_product_attention


def check_function_parity(ours, theirs, inputs, dtype=np.float32, seed=0):
    """ours(*minidl tensors) and theirs(*torch tensors): output and grads of float inputs match."""
    our_inputs = [minidl.tensor(x.astype(dtype) if x.dtype.kind == "f" else x,
                                requires_grad=x.dtype.kind == "f") for x in inputs]
    their_inputs = [torch.tensor(x.astype(dtype) if x.dtype.kind == "f" else x,
                                 requires_grad=x.dtype.kind == "f") for x in inputs]
    a, b = ours(*our_inputs), theirs(*their_inputs)
    assert_close(a, b, dtype, "output")
    weight = np.random.default_rng(seed).standard_normal(a.shape).astype(dtype)
    (a * minidl.tensor(weight)).sum().backward()
    (b * torch.tensor(weight)).sum().backward()
    for index, (x, y) in enumerate(zip(our_inputs, their_inputs)):
        if y.grad is not None:
            assert_close(x.grad, y.grad, dtype, f"grad of input {index}")


def random_mask(rng, shape, kind):
    """None, a bool mask (True = take part) or a float mask with some -inf; key 0 always stays."""
    if kind == "none":
        return None
    if kind == "bool":
        mask = rng.random(shape) < 0.7
        mask[..., 0] = True
        return mask
    mask = rng.standard_normal(shape)
    mask[(rng.random(shape) < 0.2) & (np.arange(shape[-1]) > 0)] = -np.inf
    return mask


@given(batch=st.lists(st.integers(1, 3), min_size=0, max_size=2), L=st.integers(1, 4),
       S=st.integers(1, 4), E=st.integers(1, 4), Ev=st.integers(1, 3),
       mask=st.sampled_from(["none", "bool", "float", "causal"]), mask_batched=st.booleans(),
       broadcast_key=st.booleans(), scale=st.sampled_from([None, 0.3]), seed=st.integers(0, 2**16))
def test_sdpa_gradcheck_and_parity(batch, L, S, E, Ev, mask, mask_batched, broadcast_key, scale,
                                   seed):
    rng = np.random.default_rng(seed)
    batch = tuple(batch)
    key_batch = (1,) * len(batch) if broadcast_key else batch  # key/value broadcast over the batch
    q, k, v = (rng.standard_normal(batch + (L, E)), rng.standard_normal(key_batch + (S, E)),
               rng.standard_normal(key_batch + (S, Ev)))
    causal = mask == "causal"
    m = None if causal else random_mask(rng, (batch if mask_batched else ()) + (L, S), mask)
    inputs = [q, k, v] + ([] if m is None else [m])

    def ours(q, k, v, m=None):
        return scaled_dot_product_attention(q, k, v, attn_mask=m, is_causal=causal, scale=scale)

    def theirs(q, k, v, m=None):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=m, is_causal=causal, scale=scale)

    tensors = [minidl.tensor(x, requires_grad=x.dtype.kind == "f") for x in inputs]
    assert minidl.gradcheck(ours, tensors)
    check_function_parity(ours, theirs, inputs)
    assert minidl.autograd.gradgradcheck(ours, tensors)
    floats = [x for x in inputs if x.dtype.kind == "f"]  # a bool mask is a constant of both
    constant = [x for x in inputs if x.dtype.kind != "f"]

    def either(m, *xs):
        if m is minidl:
            return ours(*xs, *[minidl.tensor(c) for c in constant])
        with sdpa_kernel(SDPBackend.MATH):
            return theirs(*xs, *[torch.tensor(c) for c in constant])

    assert_hvp_matches_torch(either, floats, "scaled_dot_product_attention")


@given(heads=st.sampled_from([(4, 2), (6, 3), (2, 1)]), seed=st.integers(0, 2**16))
def test_sdpa_grouped_query_attention(heads, seed):
    rng = np.random.default_rng(seed)
    hq, hk = heads
    q, k, v = (rng.standard_normal((1, hq, 2, 3)), rng.standard_normal((1, hk, 3, 3)),
               rng.standard_normal((1, hk, 3, 2)))

    def ours(q, k, v):
        return scaled_dot_product_attention(q, k, v, enable_gqa=True)

    assert minidl.gradcheck(ours, [minidl.tensor(x, requires_grad=True) for x in (q, k, v)])
    def theirs(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)

    check_function_parity(ours, theirs, [q, k, v])


def test_sdpa_fully_masked_row_gives_zeros_and_finite_grads():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 3, 4)) for _ in range(3))
    mask = np.ones((3, 3), dtype=bool)
    mask[1] = False  # query 1 may attend to nothing
    inputs = [q, k, v, mask]
    check_function_parity(lambda q, k, v, m: scaled_dot_product_attention(q, k, v, attn_mask=m),
                          lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m),
                          inputs)
    tensors = [minidl.tensor(x, requires_grad=True) for x in (q, k, v)]
    out = scaled_dot_product_attention(*tensors, attn_mask=minidl.tensor(mask))
    assert np.all(out.numpy()[:, 1] == 0)
    out.sum().backward()
    assert all(np.isfinite(t.grad.numpy()).all() for t in tensors)


def test_sdpa_dropout_keeps_or_scales_the_weights():
    minidl.manual_seed(0)
    q, k = minidl.randn(1, 64, 8), minidl.randn(1, 64, 8)
    identity = minidl.tensor(np.eye(64, dtype=np.float32)[None])
    plain = scaled_dot_product_attention(q, k, identity).numpy()  # the weights themselves
    dropped = scaled_dot_product_attention(q, k, identity, dropout_p=0.25).numpy()
    kept = dropped != 0
    assert 0.65 < kept.mean() < 0.85
    np.testing.assert_allclose(dropped[kept], plain[kept] / 0.75, rtol=1e-5)


def test_sdpa_errors():
    q, k, v = minidl.randn(2, 3, 4), minidl.randn(2, 5, 4), minidl.randn(2, 5, 6)
    with pytest.raises(RuntimeError, match="attn_mask should not be set when is_causal"):
        scaled_dot_product_attention(q, k, v, attn_mask=minidl.ones(3, 5, dtype=minidl.bool),
                                     is_causal=True)
    with pytest.raises(ValueError, match=r"expected query \(\.\.\., L, E\).*key \(2, 5, 3\)"):
        scaled_dot_product_attention(q, minidl.randn(2, 5, 3), v)
    with pytest.raises(ValueError, match=r"attn_mask of shape \(3, 4\) does not broadcast"):
        scaled_dot_product_attention(q, k, v, attn_mask=minidl.zeros(3, 4))
    with pytest.raises(TypeError, match="attn_mask of dtype bool or float32.*got float64"):
        scaled_dot_product_attention(q, k, v, attn_mask=minidl.zeros(3, 5, dtype=minidl.float64))
    with pytest.raises(TypeError, match="one dtype"):
        scaled_dot_product_attention(q, k, v.double())


# ----- MultiheadAttention -----------------------------------------------------------------------

def mha_case(rng, batch_first, batched, cross, kdim, vdim, attn_mask, padding, heads, E=2):
    """Inputs and the call for one MHA configuration (masks use MHA's True = ignore)."""
    N, L = 2, 3
    S = 4 if cross else L
    lead = lambda T: ((N, T) if batch_first else (T, N)) if batched else (T,)  # noqa: E731
    query = rng.standard_normal(lead(L) + (E,))
    key = rng.standard_normal(lead(S) + (kdim or E,)) if cross else query
    value = rng.standard_normal(lead(S) + (vdim or E,)) if cross else query
    masks = {}
    if attn_mask != "none":
        dims, kind = attn_mask.split("-")
        shape = (L, S) if dims == "2d" else ((N if batched else 1) * heads, L, S)
        masks["attn_mask"] = random_mask(rng, shape, kind)
    if padding != "none":
        masks["key_padding_mask"] = random_mask(rng, (N, S) if batched else (S,), padding)
    for name, mask in masks.items():  # MHA's bool masks say where to ignore
        masks[name] = ~mask if mask.dtype == bool else mask
    return query, key, value, masks


MASKS = ["none", "2d-bool", "2d-float", "3d-bool", "3d-float"]


@given(batch_first=st.booleans(), batched=st.booleans(),
       cross=st.sampled_from(["self", "kv", "qkv"]),
       dims=st.sampled_from([(None, None), (3, 5), (4, 2)]), bias=st.booleans(),
       attn_mask=st.sampled_from(MASKS), padding=st.sampled_from(["none", "bool", "float"]),
       need_weights=st.booleans(), average=st.booleans(), heads=st.sampled_from([1, 2]),
       seed=st.integers(0, 2**16))
def test_mha_gradcheck_and_parity(batch_first, batched, cross, dims, bias, attn_mask, padding,
                                  need_weights, average, heads, seed):
    rng = np.random.default_rng(seed)
    kdim, vdim = dims if cross == "qkv" else (None, None)
    query, key, value, masks = mha_case(rng, batch_first, batched, cross != "self", kdim, vdim,
                                        attn_mask, padding, heads)
    names = list(masks)
    if cross == "kv":
        value = key
    inputs = [query] + ([] if cross == "self" else [key] if cross == "kv" else [key, value])
    inputs += [masks[n] for n in names]
    count = len(inputs) - len(names)

    def call(module, *xs):
        q, k, v = (xs[0], xs[0], xs[0]) if cross == "self" else (xs[0], xs[1], xs[count - 1])
        return module(q, k, v, need_weights=need_weights, average_attn_weights=average,
                      **dict(zip(names, xs[count:])))

    def make(nn):
        return nn.MultiheadAttention(2, heads, bias=bias, kdim=kdim, vdim=vdim,
                                     batch_first=batch_first)

    assert gradcheck_module(make(minidl.nn.attention), inputs, call=call)
    check_module_parity(make(minidl.nn.attention), make(torch.nn), inputs, call=call)
    assert gradgradcheck_module(make(minidl.nn.attention), inputs, call=call)
    with sdpa_kernel(SDPBackend.MATH):
        check_module_hvp_parity(make(minidl.nn.attention), make(torch.nn), inputs, call=call)


@given(batch_first=st.booleans(), need_weights=st.booleans(), bool_mask=st.booleans(),
       padding=st.booleans(), seed=st.integers(0, 2**16))
def test_mha_causal_hint_with_mask(batch_first, need_weights, bool_mask, padding, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 5, 4) if batch_first else (5, 2, 4))
    causal = np.triu(np.ones((5, 5), dtype=bool), 1)
    mask = causal if bool_mask else np.where(causal, -np.inf, 0.0)
    inputs = [x, mask] + ([~random_mask(rng, (2, 5), "bool")] if padding else [])

    def call(module, x, mask, pad=None):
        return module(x, x, x, attn_mask=mask, key_padding_mask=pad, is_causal=True,
                      need_weights=need_weights)

    def make(nn):
        return nn.MultiheadAttention(4, 2, batch_first=batch_first)

    check_module_parity(make(minidl.nn.attention), make(torch.nn), inputs, call=call)


def test_mha_eval_mode_matches_torch_fast_path():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 8)).astype(np.float32)
    theirs = torch.nn.MultiheadAttention(8, 2, dropout=0.3, batch_first=True).eval()
    ours = MultiheadAttention(8, 2, dropout=0.3, batch_first=True).eval()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    with torch.no_grad():  # PyTorch's fused path runs here
        expected, weights = theirs(*(torch.tensor(x),) * 3)
    output, our_weights = ours(*(minidl.tensor(x),) * 3)
    assert_close(output, expected, what="output", scale=5)
    assert_close(our_weights, weights, what="weights", scale=5)


def test_mha_dropout_in_training_drops_returned_weights():
    minidl.manual_seed(0)
    layer = MultiheadAttention(8, 2, dropout=0.5, batch_first=True)
    x = minidl.randn(4, 16, 8)
    _, dropped = layer(x, x, x, average_attn_weights=False)
    layer.eval()
    _, plain = layer(x, x, x, average_attn_weights=False)
    kept = dropped.numpy() != 0
    assert 0.4 < kept.mean() < 0.6
    np.testing.assert_allclose(dropped.numpy()[kept], plain.numpy()[kept] * 2, rtol=1e-5)
    np.testing.assert_allclose(plain.numpy().sum(-1), 1, rtol=1e-5)


@pytest.mark.parametrize("kdim", [None, 6])
def test_mha_parameters_init_and_state_dict_keys(kdim):
    minidl.manual_seed(0)
    ours, theirs = MultiheadAttention(8, 2, kdim=kdim), torch.nn.MultiheadAttention(8, 2, kdim=kdim)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for name, value in theirs.state_dict().items():
        assert tuple(ours.state_dict()[name].shape) == tuple(value.shape), name
    assert np.all(ours.in_proj_bias.numpy() == 0) and np.all(ours.out_proj.bias.numpy() == 0)
    weight = ours.in_proj_weight if kdim is None else ours.k_proj_weight
    bound = math.sqrt(6 / sum(weight.shape))
    values = weight.numpy()
    assert np.abs(values).max() <= bound and np.abs(values).max() > 0.8 * bound


def test_mha_errors():
    layer = MultiheadAttention(8, 2)
    x = minidl.randn(5, 3, 8)
    message = r"MultiheadAttention\(embed_dim=8.*query expected input of shape \(\.\.\., 8\), got"
    with pytest.raises(ValueError, match=message):
        layer(minidl.randn(5, 3, 6), x, x)
    with pytest.raises(ValueError, match=r"attn_mask of shape \(5, 5\) or \(6, 5, 5\), got \(5, 4"):
        layer(x, x, x, attn_mask=minidl.zeros(5, 4))
    with pytest.raises(ValueError, match=r"key_padding_mask of shape \(3, 5\), got \(5, 3\)"):
        layer(x, x, x, key_padding_mask=minidl.zeros(5, 3, dtype=minidl.bool))
    with pytest.raises(ValueError, match="same sequence length"):
        layer(x, minidl.randn(4, 3, 8), minidl.randn(5, 3, 8))
    with pytest.raises(ValueError, match="all 3-D .* or all 2-D"):
        layer(x, minidl.randn(5, 8), minidl.randn(5, 8))
    with pytest.raises(RuntimeError, match="is_causal is a hint that needs attn_mask"):
        layer(x, x, x, is_causal=True)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        MultiheadAttention(10, 3)
    with pytest.raises(NotImplementedError, match="add_bias_kv"):
        MultiheadAttention(8, 2, add_bias_kv=True)
