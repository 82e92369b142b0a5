"""The multi-head attention forward (F.multi_head_attention_forward): projections, head split and
merge, and the masks, around the fused attention core of ``minidl/ops/attention.py``.

Composed from existing ops (linear, shape views); its gradients come from their backward rules
and the core's.
"""
from __future__ import annotations

import math

from minidl import backend
from minidl.ops.attention import attend
from minidl.ops.linalg import linear
from minidl.ops.shape import permute, reshape, split, squeeze, unsqueeze
from minidl.tensors import Tensor


def multi_head_attention_forward(query: Tensor, key: Tensor, value: Tensor, embed_dim_to_check: int,
                                 num_heads: int, in_proj_weight, in_proj_bias, bias_k, bias_v,
                                 add_zero_attn: bool, dropout_p: float, out_proj_weight: Tensor,
                                 out_proj_bias, training: bool = True, key_padding_mask=None,
                                 need_weights: bool = True, attn_mask=None,
                                 use_separate_proj_weight: bool = False, q_proj_weight=None,
                                 k_proj_weight=None, v_proj_weight=None, static_k=None,
                                 static_v=None,
                                 average_attn_weights: bool = True, is_causal: bool = False, *,
                                 batch_first: bool = False) -> tuple:
    """Multi-head attention, as ``F.multi_head_attention_forward``: heads_h = SDPA(Q W_qₕ, K W_kₕ,
    V W_vₕ), output = concat(heads) W_oᵀ + b_o.

    Args: as PyTorch's. ``bias_k``, ``bias_v``, ``static_k``, ``static_v`` must be None and
    ``add_zero_attn`` False (NotImplementedError otherwise). Masks follow ``nn.MultiheadAttention``:
    in a bool ``key_padding_mask`` or ``attn_mask`` True means *ignore*; float masks are added.
    ``is_causal`` is a hint that needs ``attn_mask`` (as PyTorch); the mask is what is used.
    ``batch_first`` (keyword only, a minidl extension) takes and returns (N, L, E) instead of
    (L, N, E), without the two transposes PyTorch's module does around the functional form.

    Shape:
        query (L, N, E) or (L, E), key (S, N, kdim) or (S, kdim), value (S, N, vdim) or (S, vdim);
        key_padding_mask (N, S) or (S,); attn_mask (L, S) or (N·num_heads, L, S).
        Returns output (L, N, E) or (L, E), and weights (N, L, S) averaged over heads, or
        (N, num_heads, L, S) when ``average_attn_weights`` is False (no N when unbatched), or None
        when ``need_weights`` is False. In training mode with dropout the weights are returned
        after dropout, as PyTorch.
    """
    unsupported = (bias_k, bias_v, static_k, static_v)
    if add_zero_attn or any(x is not None for x in unsupported):
        raise NotImplementedError("multi_head_attention_forward: bias_k, bias_v, add_zero_attn, "
                                  "static_k and static_v are not implemented")
    dims = ((q_proj_weight.shape[1], k_proj_weight.shape[1], v_proj_weight.shape[1])
            if use_separate_proj_weight else (embed_dim_to_check,) * 3)
    batched = _check_mha_shapes(query, key, value, dims, num_heads, key_padding_mask, attn_mask,
                                batch_first)
    if not batched:
        query, key, value = _add_batch_dim(query, key, value, 0 if batch_first else 1)
        key_padding_mask = None if key_padding_mask is None else key_padding_mask[None]
    if is_causal and attn_mask is None:
        raise RuntimeError("multi_head_attention_forward: is_causal is a hint that needs attn_mask "
                           "(e.g. Transformer.generate_square_subsequent_mask(L))")
    if use_separate_proj_weight:
        q, k, v = _project_separately(query, key, value, q_proj_weight, k_proj_weight,
                                      v_proj_weight, in_proj_bias)
    else:
        q, k, v = _project_packed(query, key, value, in_proj_weight, in_proj_bias)
    q, k, v = (_split_heads(x, num_heads, batch_first) for x in (q, k, v))  # (N, H, L|S, D)
    mask = _merge_masks(attn_mask, key_padding_mask, q.shape, k.shape[-2], query.dtype)
    attended, weights = attend(q, k, v, mask, None, dropout_p if training else 0.0,
                                need_weights)  # (N, H, L, D), (N, H, L, S) or None
    output = _merge_heads(attended, batch_first)  # (L, N, E) or (N, L, E)
    output = _project(output, out_proj_weight, out_proj_bias)
    if not batched:
        output = squeeze(output, 0 if batch_first else 1)
    if not need_weights:
        return output, None
    if average_attn_weights:
        weights = weights.mean(dim=1)  # (N, L, S)
    return output, (weights if batched else squeeze(weights, 0))


def _add_batch_dim(query, key, value, axis: int) -> tuple:
    """Unbatched inputs get a batch dim of 1 at ``axis``; shared inputs stay shared (one GEMM)."""
    batched_query = unsqueeze(query, axis)
    batched_key = batched_query if key is query else unsqueeze(key, axis)
    return batched_query, batched_key, batched_key if value is key else unsqueeze(value, axis)


def _project(x: Tensor, weight: Tensor, bias) -> Tensor:
    """x Wᵀ + b over the last dim as one 2-D GEMM (NumPy runs (A, B, E) @ (E, F) as A GEMMs)."""
    rows = reshape(x, (x.shape[0] * x.shape[1], x.shape[-1]))  # (A·B, E), also when A·B = 0
    return reshape(linear(rows, weight, bias), x.shape[:-1] + (weight.shape[0],))  # (A, B, F)


def _project_packed(query, key, value, weight, bias) -> tuple:
    """Q, K, V from the packed (3E, E) weight: one GEMM for self-attention, two if key is value."""
    E = weight.shape[0] // 3
    if query is key and key is value:
        return split(_project(query, weight, bias), E, dim=-1)  # 3 × (.., .., E) views
    biases = (None,) * 3 if bias is None else split(bias, E)
    if key is value:  # attention over a memory: one GEMM for K and V together
        w_q, w_kv = split(weight, (E, 2 * E))  # (E, E), (2E, E)
        b_kv = None if bias is None else split(bias, (E, 2 * E))[1]
        return (_project(query, w_q, biases[0]),) + split(_project(key, w_kv, b_kv), E, dim=-1)
    w_q, w_k, w_v = split(weight, E)  # 3 × (E, E)
    return (_project(query, w_q, biases[0]), _project(key, w_k, biases[1]),
            _project(value, w_v, biases[2]))


def _project_separately(query, key, value, q_weight, k_weight, v_weight, bias) -> tuple:
    biases = (None,) * 3 if bias is None else split(bias, q_weight.shape[0])
    return (_project(query, q_weight, biases[0]), _project(key, k_weight, biases[1]),
            _project(value, v_weight, biases[2]))


def _split_heads(x: Tensor, num_heads: int, batch_first: bool) -> Tensor:
    """(A, B, E) -> (N, H, T, D): views only (A, B is T, N, or N, T with batch_first)."""
    A, B, E = x.shape
    heads = reshape(x, (A, B, num_heads, E // num_heads))  # (A, B, H, D)
    return permute(heads, (0, 2, 1, 3) if batch_first else (1, 2, 0, 3))  # (N, H, T, D)


def _merge_heads(x: Tensor, batch_first: bool) -> Tensor:
    """(N, H, T, D) -> (N, T, H·D) with batch_first, else (T, N, H·D)."""
    H, D = x.shape[1], x.shape[3]
    ordered = permute(x, (0, 2, 1, 3) if batch_first else (2, 0, 1, 3))  # (N|T, T|N, H, D)
    # a view when x is laid out as the query's projection (the fused Function's output is)
    return reshape(ordered, ordered.shape[:2] + (H * D,))  # (N|T, T|N, H·D)


def _merge_masks(attn_mask, key_padding_mask, heads_shape, S: int, dtype):
    """One mask for the (N, H, L, S) scores from MHA's masks (bool True = ignore, float = added).

    Two bool masks give a bool "take part" array; otherwise a float Tensor to add.
    """
    N, H, L, _ = heads_shape
    masks = []
    if attn_mask is not None:
        masks.append(reshape(attn_mask, (N, H, L, S)) if attn_mask.ndim == 3 else attn_mask)
    if key_padding_mask is not None:
        masks.append(reshape(key_padding_mask, (N, 1, 1, S)))
    if not masks:
        return None
    if all(m.dtype == bool for m in masks):
        ignore = masks[0]._data if len(masks) == 1 else masks[0]._data | masks[1]._data
        return ~ignore
    total = None
    for mask in masks:
        if mask.dtype == bool:
            xp = backend.get_array_module(mask._data)
            mask = Tensor(xp.where(mask._data, -math.inf, 0).astype(dtype))
        total = mask if total is None else total + mask
    return total


def _check_mha_shapes(query, key, value, dims, num_heads, key_padding_mask, attn_mask,
                      batch_first) -> bool:
    """PyTorch's shape rules for MHA's inputs and masks; True when the inputs are batched."""
    op = "multi_head_attention"
    shapes = f"query {tuple(query.shape)}, key {tuple(key.shape)}, value {tuple(value.shape)}"
    if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
        raise ValueError(f"{op}: expected query, key and value all 3-D (batched) or all 2-D "
                         f"(unbatched), got {shapes}")
    batched = query.ndim == 3
    layout = "(N, L, E)" if batch_first else "(L, N, E)"
    seq, batch = (1, 0) if batch_first and batched else (0, 1)
    if tuple(x.shape[-1] for x in (query, key, value)) != dims:
        raise ValueError(f"{op}: expected embedding dims (query, key, value) = {dims}, got "
                         f"{shapes}")
    if key.shape[:-1] != value.shape[:-1] or (batched and key.shape[batch] != query.shape[batch]):
        raise ValueError(f"{op}: expected key and value with the same sequence length and the "
                         f"query's batch size (layout {layout}), got {shapes}")
    if num_heads <= 0 or dims[0] % num_heads:
        raise ValueError(f"{op}: embed_dim {dims[0]} is not divisible by num_heads {num_heads}")
    L, S = query.shape[seq], key.shape[seq]
    N = query.shape[batch] if batched else 1
    if key_padding_mask is not None:
        expected = (N, S) if batched else (S,)
        _check_mask(op, "key_padding_mask", key_padding_mask, (expected,), query.dtype)
    if attn_mask is not None:
        _check_mask(op, "attn_mask", attn_mask, ((L, S), (N * num_heads, L, S)), query.dtype)
    return batched


def _check_mask(op: str, name: str, mask, shapes: tuple, dtype) -> None:
    if not isinstance(mask, Tensor):
        raise TypeError(f"{op}: expected {name} to be a Tensor, got {type(mask).__name__}")
    if tuple(mask.shape) not in shapes:
        raise ValueError(f"{op}: expected {name} of shape {' or '.join(map(str, shapes))}, got "
                         f"{tuple(mask.shape)}")
    if mask.dtype != bool and mask.dtype != dtype:
        raise TypeError(f"{op}: expected {name} of dtype bool or {dtype} (the query's), got "
                        f"{mask.dtype}")
