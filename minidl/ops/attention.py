"""Attention: scaled dot-product attention and the multi-head attention forward (the F.* forms).

The attention core, softmax(Q Kᵀ · scale + M) V with its mask and dropout, is one Function with a
hand-written backward, for speed: one node instead of the composed graph's four to six (scaling,
matmul, where or add, softmax, dropout, matmul), the softmax done in place on the score buffer, no
(..., L, S) temporaries beyond the scores and their gradient, and results laid out like the inputs
so MultiheadAttention's head split and merge stay views. Everything around it (grouped-query head
repetition, the projections, the head split and merge) is composed from existing ops.
"""
from __future__ import annotations

import math

import numpy as np

from minidl import backend, random
from minidl.autograd import Function
from minidl.kernels.dropout import dropout_mask_reference
from minidl.ops.common import meta, reduce_like
from minidl.ops.linalg import linear
from minidl.ops.shape import expand, permute, reshape, split, squeeze, unsqueeze
from minidl.tensors import Tensor


class ScaledDotProductAttention(Function):
    """O = W V, W = P ⊙ D, P = softmax(S), S = Q Kᵀ·scale + M (D: dropout's kept/(1-p), else 1);
    gV = Wᵀ gO, gW = gO Vᵀ (+ the weights' own grad), gP = gW ⊙ D, gS = P ⊙ (gP - Σ_j gP ⊙ P),
    gQ = gS K·scale, gK = gSᵀ Q·scale, gM = gS (each summed over the batch dims it broadcast on).

    Hand-written for speed (see the module docstring). ``mask`` is None, a bool array (True =
    take part) or a float array (added); a row whose keys are all masked gets P = 0, so a zero
    output and zero gradients (as PyTorch's SDPA), not 0/0. With ``weights`` the forward also
    returns W (MultiheadAttention's need_weights).
    """

    @staticmethod
    def forward(ctx, q, k, v, mask, scale: float, dropout_p: float, weights: bool):
        xp = ctx.xp
        q_scaled = q * q.dtype.type(scale)  # (..., L, E): cheaper than scaling the L×S scores
        scores = q_scaled @ k.swapaxes(-1, -2)  # (..., L, S), a fresh buffer the softmax reuses
        if mask is not None and mask.dtype == bool:
            xp.copyto(scores, -xp.inf, where=~mask)
        elif mask is not None:
            scores += mask
        probs = _softmax_in_place(xp, scores)
        keep = None
        if dropout_p > 0:
            keep = dropout_mask_reference(random.generator_for(xp), probs.shape, dropout_p,
                                          probs.dtype)  # (..., L, S), 0 or 1/(1-p)
        attended = probs if keep is None else probs * keep
        ctx.save_for_backward(q_scaled, k, v, probs, keep)
        ctx.scale, ctx.mask_meta = scale, meta(mask)
        ctx.input_metas = meta(q), meta(k), meta(v)
        output = _matmul_like(xp, attended, v, q)  # (..., L, Ev)
        return (output, attended) if weights else output

    @staticmethod
    def backward(ctx, gy, g_weights=None):
        q_scaled, k, v, probs, keep = ctx.saved_tensors
        xp, needs = ctx.xp, ctx.needs_input_grad
        attended = probs if keep is None else probs * keep
        gv = _matmul_like(xp, attended.swapaxes(-1, -2), gy, v)  # (..., S, Ev)
        gs = gy @ v.swapaxes(-1, -2)  # (..., L, S) gW, then gP, then gS in place
        if g_weights is not None:
            gs += g_weights
        if keep is not None:
            gs *= keep
        gs -= xp.einsum("...ij,...ij->...i", gs, probs)[..., None]  # (..., L, 1) Σ_j gP ⊙ P
        gs *= probs
        gq = _matmul_like(xp, gs, k, q_scaled)  # (..., L, E); q_scaled is laid out as q
        gq *= gq.dtype.type(ctx.scale)
        gk = _matmul_like(xp, gs.swapaxes(-1, -2), q_scaled, k)  # (..., S, E)
        q_meta, k_meta, v_meta = ctx.input_metas
        return (reduce_like(xp, gq, q_meta) if needs[0] else None,
                reduce_like(xp, gk, k_meta) if needs[1] else None,
                reduce_like(xp, gv, v_meta) if needs[2] else None,
                reduce_like(xp, gs, ctx.mask_meta) if needs[3] else None)


def _matmul_like(xp, a, b, like):
    """a @ b, stored in the memory order of ``like`` when it has the product's shape.

    MultiheadAttention's heads are permuted views of (N, L, H·D) projections: a gradient (or output)
    laid out the same way permutes and reshapes back to (N, L, H·D) as a view instead of a copy.
    """
    shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1])
    return xp.matmul(a, b, out=xp.empty_like(like) if like.shape == shape else None)


def _softmax_in_place(xp, scores):
    """softmax over the last dim, overwriting ``scores``; an all -inf row gives zeros, not 0/0."""
    peak = scores.max(axis=-1, keepdims=True)  # (..., L, 1)
    xp.copyto(peak, 0, where=xp.isneginf(peak))  # a dead row: exp(-inf - 0) = 0 everywhere
    scores -= peak
    xp.exp(scores, out=scores)
    # (..., L, 1), >= 1 unless the row is dead; a GEMV, as NumPy's sum over a short last axis is
    # several times slower
    total = scores @ xp.ones((scores.shape[-1], 1), dtype=scores.dtype)
    xp.copyto(total, 1, where=total == 0)
    scores *= xp.reciprocal(total)
    return scores


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask=None,
                                 dropout_p: float = 0.0, is_causal: bool = False, scale=None,
                                 enable_gqa: bool = False) -> Tensor:
    """softmax(Q Kᵀ · scale + M) V, as ``F.scaled_dot_product_attention``.

    Args:
        query: (..., L, E).
        key: (..., S, E).
        value: (..., S, Ev).
        attn_mask: a bool mask (True = the key takes part) or a float mask (added to the scores),
            broadcastable to (..., L, S).
        dropout_p: dropout probability on the attention weights (applied whenever > 0, as PyTorch).
        is_causal: query i attends to keys j <= i (a top-left aligned lower-triangular mask); an
            error together with ``attn_mask``.
        scale: the factor on Q Kᵀ; default 1 / sqrt(E).
        enable_gqa: grouped-query attention: key and value have Hk heads in dim -3, query a
            multiple Hq of them; each key/value head serves Hq / Hk consecutive query heads.

    Shape:
        output (..., L, Ev), its batch dims broadcast from those of query, key and value.

    A query whose keys are all masked gets a zero output (as PyTorch's SDPA), not NaN.

    Examples:
        >>> q, k, v = minidl.randn(2, 4, 5, 8), minidl.randn(2, 4, 7, 8), minidl.randn(2, 4, 7, 3)
        >>> scaled_dot_product_attention(q, k, v, is_causal=True).shape
        (2, 4, 5, 3)
    """
    _check_operands(query, key, value, attn_mask, is_causal, enable_gqa)
    if enable_gqa:
        key, value = _repeat_heads(key, query.shape[-3]), _repeat_heads(value, query.shape[-3])
    if is_causal:
        xp = backend.get_array_module(query.data)
        attn_mask = xp.tril(xp.ones((query.shape[-2], key.shape[-2]), dtype=bool))  # (L, S)
    return _attend(query, key, value, attn_mask, scale, dropout_p)[0]


def _attend(query: Tensor, key: Tensor, value: Tensor, mask, scale, dropout_p: float,
            weights: bool = False) -> tuple:
    """(output, weights or None) from the fused Function, with the default scale 1 / sqrt(E)."""
    scale = 1 / math.sqrt(query.shape[-1]) if scale is None else scale
    result = ScaledDotProductAttention.apply(query, key, value, mask, scale=scale,
                                             dropout_p=dropout_p, weights=weights)
    return result if weights else (result, None)


def _check_operands(query, key, value, attn_mask, is_causal, enable_gqa) -> None:
    op = "scaled_dot_product_attention"
    shapes = f"query {tuple(query.shape)}, key {tuple(key.shape)}, value {tuple(value.shape)}"
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2:
        raise ValueError(f"{op}: query, key and value need at least 2 dims, got {shapes}")
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise ValueError(f"{op}: expected query (..., L, E), key (..., S, E), value (..., S, Ev), "
                         f"got {shapes}")
    if not query.dtype == key.dtype == value.dtype:
        raise TypeError(f"{op}: expected query, key and value of one dtype, got {query.dtype}, "
                        f"{key.dtype} and {value.dtype}")
    if enable_gqa and (min(query.ndim, key.ndim, value.ndim) < 3 or key.shape[-3] != value.shape[-3]
                       or query.shape[-3] % key.shape[-3]):
        raise ValueError(f"{op}: with enable_gqa, key and value need Hk heads in dim -3 and query "
                         f"a multiple of Hk, got {shapes}")
    if attn_mask is None:
        return
    if is_causal:
        raise RuntimeError(f"{op}: explicit attn_mask should not be set when is_causal=True")
    mask = attn_mask.data if isinstance(attn_mask, Tensor) else attn_mask
    if mask.dtype != bool and mask.dtype != query.dtype:
        raise TypeError(f"{op}: expected attn_mask of dtype bool or {query.dtype} (the query's), "
                        f"got {mask.dtype}")
    key_batch = key.shape[:-3] + query.shape[-3:-2] if enable_gqa else key.shape[:-2]  # heads Hq
    batch = np.broadcast_shapes(query.shape[:-2], key_batch)
    scores = batch + (query.shape[-2], key.shape[-2])
    try:
        fits = np.broadcast_shapes(mask.shape, scores) == scores
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"{op}: attn_mask of shape {tuple(mask.shape)} does not broadcast to the "
                         f"scores' shape {scores} (..., L, S)")


def _repeat_heads(x: Tensor, heads: int) -> Tensor:
    """(..., Hk, S, E) -> (..., heads, S, E), each head repeated heads / Hk times in a row."""
    shape = x.shape
    group = heads // shape[-3]
    repeated = expand(unsqueeze(x, -3), shape[:-2] + (group,) + shape[-2:])  # (..., Hk, G, S, E)
    return reshape(repeated, shape[:-3] + (heads,) + shape[-2:])  # (..., Hk·G, S, E)


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
    attended, weights = _attend(q, k, v, mask, None, dropout_p if training else 0.0,
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
    rows = reshape(x, (-1, x.shape[-1]))  # (A·B, E)
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
        ignore = masks[0].data if len(masks) == 1 else masks[0].data | masks[1].data
        return ~ignore
    total = None
    for mask in masks:
        if mask.dtype == bool:
            xp = backend.get_array_module(mask.data)
            mask = Tensor(xp.where(mask.data, -math.inf, 0).astype(dtype))
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
