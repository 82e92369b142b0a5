"""Scaled dot-product attention (F.scaled_dot_product_attention), the core that multi-head
attention (``minidl/ops/multihead_attention.py``) calls.

The attention core, softmax(Q Kᵀ · scale + M) V with its mask and dropout, is one Function with a
hand-written backward, for speed: one node instead of the composed graph's four to six (scaling,
matmul, where or add, softmax, dropout, matmul), the softmax shifting the score buffer in place and
exponentiating it into one more (the shifted scores are freed after the forward), no other
(..., L, S) temporaries beyond the probabilities and their gradient, and results laid out like the inputs
so MultiheadAttention's head split and merge stay views. Everything around it (grouped-query head
repetition, the projections, the head split and merge) is composed from existing ops.

For long sequences the core is ``BlockedAttention`` instead: the blocked ("flash") kernel of
``kernels/attention.py`` streams over key blocks with an online softmax, keeping O(L) numbers per
query row instead of the (..., L, S) scores, and skips the blocks above a causal diagonal.
``attend`` takes it from ``BLOCKED_MIN_KEYS`` keys on (the crossovers measured in
benchmarks/results/flash_attention.md) whenever nothing needs the weights: no dropout, no
``need_weights``, no gradient for the mask.
"""
from __future__ import annotations

import math

import numpy as np

from minidl import backend, random
from minidl.autograd import FusedFunction
from minidl.kernels.attention import flash_attention_backward, flash_attention_forward
from minidl.kernels.cross_entropy import softmax_exp
from minidl.kernels.dropout import dropout_mask_reference
from minidl.ops.common import meta, reduce_like
from minidl.ops.shape import expand, reshape, unsqueeze
from minidl.tensors import Tensor

# from this many keys on the blocked kernel is faster than the materialised one (measured; with a
# causal mask it skips half the blocks)
BLOCKED_MIN_KEYS = {"causal": 512, "full": 1024}


class ScaledDotProductAttention(FusedFunction):
    """O = W V, W = P ⊙ D, P = softmax(S), S = Q Kᵀ·scale + M (D: dropout's kept/(1-p), else 1);
    gV = Wᵀ gO, gW = gO Vᵀ (+ the weights' own grad), gP = gW ⊙ D, gS = P ⊙ (gP - Σ_j gP ⊙ P),
    gQ = gS K·scale, gK = gSᵀ Q·scale, gM = gS (each summed over the batch dims it broadcast on).

    Hand-written for speed (see the module docstring). ``mask`` is None, a bool array (True =
    take part) or a float array (added); a row whose keys are all masked gets P = 0, so a zero
    output and zero gradients (as PyTorch's SDPA), not 0/0. With ``weights`` the forward also
    returns W (MultiheadAttention's need_weights). Differentiable again through ``composed``,
    which replays the forward with the same mask and dropout draw.
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
        probs = _softmax(xp, scores)
        keep = None
        if dropout_p > 0:
            keep = dropout_mask_reference(random.generator_for(xp), probs.shape, dropout_p,
                                          probs.dtype)  # (..., L, S), 0 or 1/(1-p)
        attended = probs if keep is None else probs * keep
        ctx.save_for_backward(q_scaled, k, v, probs)
        ctx.scale, ctx.mask, ctx.mask_meta, ctx.keep = scale, mask, meta(mask), keep
        ctx.input_metas = meta(q), meta(k), meta(v)
        output = _matmul_like(xp, attended, v, q)  # (..., L, Ev)
        return (output, attended) if weights else output

    @staticmethod
    def backward(ctx, gy, g_weights=None):
        q_scaled, k, v, probs = ctx.saved_tensors
        xp, needs, keep = ctx.xp, ctx.needs_input_grad, ctx.keep
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


    @staticmethod
    def composed(state, xp, q, k, v, mask, *, scale, dropout_p, weights):
        mask = state.mask if mask is None else mask  # a bool mask is an array, not an input
        output, attended = _composed(xp, q, k, v, mask, scale, state.keep)
        return (output, attended) if weights else output


class BlockedAttention(FusedFunction):
    """O = softmax(S) V, S = Q Kᵀ·scale + M (M: the mask, or -inf above a causal diagonal), by
    the blocked kernel: an online softmax over key blocks that saves each row's log-sum-exp
    (lse) instead of P; gQ, gK, gV as ScaledDotProductAttention's, each block's P recomputed as
    exp(S - lse) (the math is in kernels/attention.py).

    Hand-written for speed and memory (see the module docstring). ``mask`` is None, a bool array
    or a float array that gets no gradient; ``causal`` skips the key blocks after a query block.
    Differentiable again through ``composed``: the materialised attention, as a graph.
    """

    @staticmethod
    def forward(ctx, q, k, v, mask, scale: float, causal: bool):
        ctx.input_metas = meta(q), meta(k), meta(v)
        batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
        q, k, v = (_broadcast_batch(ctx.xp, x, batch) for x in (q, k, v))  # (*batch, L|S, E|Ev)
        out, lse = flash_attention_forward(q, k, v, mask, scale, causal)  # (*batch, L, Ev), (*batch, L)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.scale, ctx.causal, ctx.mask = scale, causal, mask
        return out

    @staticmethod
    def backward(ctx, gy):
        q, k, v, out, lse = ctx.saved_tensors
        grads = flash_attention_backward(q, k, v, out, lse, gy, ctx.mask, ctx.scale, ctx.causal)
        return tuple(reduce_like(ctx.xp, g, m) if need else None
                     for g, m, need in zip(grads, ctx.input_metas, ctx.needs_input_grad)) + (None,)

    @staticmethod
    def composed(state, xp, q, k, v, mask, *, scale, causal):
        mask = state.mask if mask is None else mask
        if causal:
            mask = _causal_mask(backend.get_array_module(q._data), q.shape[-2], k.shape[-2])
        return _composed(xp, q, k, v, mask, scale, None)[0]


def _composed(xp, q, k, v, mask, scale: float, keep) -> tuple:
    """(output, weights) of softmax(Q Kᵀ·scale + M) ⊙ D, times V, as ops on Tensors (xp: the
    Tensor namespace); a dead row's weights are 0, not 0/0."""
    scores = xp.matmul(q * scale, xp.swapaxes(k, -1, -2))  # (..., L, S)
    if mask is not None and mask.dtype == bool:
        scores = xp.where(mask, scores, -np.inf)
    elif mask is not None:
        scores = scores + mask
    exps = xp.exp(scores - _row_peak(backend.get_array_module(scores._data), scores._data))
    total = xp.sum(exps, axis=-1, keepdims=True)
    probs = exps / (total + (total._data == 0))  # a dead row: 0 / 1
    attended = probs if keep is None else probs * keep
    return xp.matmul(attended, v), attended


def _broadcast_batch(xp, x, batch: tuple):
    """x (..., R, C) with its batch dims broadcast to ``batch``: a view, x itself if they are."""
    return x if x.shape[:-2] == batch else xp.broadcast_to(x, batch + x.shape[-2:])


def _causal_mask(xp, L: int, S: int):
    """(L, S) bool: query i attends to keys j <= i (top-left aligned, as PyTorch)."""
    return xp.tril(xp.ones((L, S), dtype=bool))


def _matmul_like(xp, a, b, like):
    """a @ b, stored in the memory order of ``like`` when it has the product's shape.

    MultiheadAttention's heads are permuted views of (N, L, H·D) projections: a gradient (or output)
    laid out the same way permutes and reshapes back to (N, L, H·D) as a view instead of a copy.
    """
    shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1])
    return xp.matmul(a, b, out=xp.empty_like(like) if like.shape == shape else None)


def _row_peak(xp, scores):
    """Each row's max (..., L, 1), the shift that keeps exp finite; 0 for a dead row (all -inf:
    exp(-inf - 0) = 0 everywhere) and for rows without keys (S = 0)."""
    if scores.shape[-1] == 0:
        return xp.zeros(scores.shape[:-1] + (1,), dtype=scores.dtype)
    peak = scores.max(axis=-1, keepdims=True)
    xp.copyto(peak, 0, where=xp.isneginf(peak))
    return peak


def _softmax(xp, scores):
    """softmax over the last dim (``scores`` is shifted in place, the result is a new buffer); an
    all -inf row gives zeros, not 0/0."""
    scores -= _row_peak(xp, scores)
    probs = softmax_exp(scores)  # (..., L, S); the kernel's vectorised exp on CPU
    # (..., L, 1), >= 1 unless the row is dead; a GEMV, as NumPy's sum over a short last axis is
    # several times slower
    total = probs @ xp.ones((probs.shape[-1], 1), dtype=probs.dtype)
    xp.copyto(total, 1, where=total == 0)
    probs *= xp.reciprocal(total)
    return probs


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
    return attend(query, key, value, attn_mask, scale, dropout_p, causal=is_causal)[0]


def attend(query: Tensor, key: Tensor, value: Tensor, mask, scale, dropout_p: float,
           weights: bool = False, causal: bool = False) -> tuple:
    """(output, weights or None), with the default scale 1 / sqrt(E): the blocked kernel when it
    is faster and nothing needs the weights (the module docstring), else the materialised one."""
    scale = 1 / math.sqrt(query.shape[-1]) if scale is None else scale
    mask_grad = isinstance(mask, Tensor) and mask.requires_grad
    blocked = key.shape[-2] >= BLOCKED_MIN_KEYS["causal" if causal else "full"]
    if blocked and not (weights or dropout_p > 0 or mask_grad):
        return BlockedAttention.apply(query, key, value, mask, scale=scale, causal=causal), None
    if causal:
        mask = _causal_mask(backend.get_array_module(query._data), query.shape[-2], key.shape[-2])
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
    mask = attn_mask._data if isinstance(attn_mask, Tensor) else attn_mask
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
