"""Blocked ("flash") attention: softmax(Q Kᵀ·scale + M) V without the (..., L, S) scores.

For one query row q_i the keys are visited in blocks; a running max m_i, sum l_i and output
accumulator a_i absorb each block of scores s_ij = q_i·k_j·scale + M_ij (the online softmax)::

    m' = max(m, max_j s_ij),   l' = l·e^(m - m') + Σ_j e^(s_ij - m'),
    a' = a·e^(m - m') + Σ_j e^(s_ij - m') v_j,        o_i = a_i / l_i,   lse_i = m_i + log l_i

The backward recomputes each block's probabilities from the saved lse (p_ij = e^(s_ij - lse_i)),
so it keeps O(L) numbers per row, not L×S: with δ_i = gO_i·o_i (= Σ_j gP_ij p_ij),
gP_ij = gO_i·v_j, gS_ij = p_ij (gP_ij - δ_i), gQ = gS K·scale, gK = gSᵀ Q·scale, gV = Pᵀ gO.
A causal mask (query i sees keys j <= i) skips every block above the diagonal. A row whose keys
are all masked has l = 0: its output is 0 and lse = +inf, so its p (and gradients) are 0.

Arrays: q (..., L, E), k (..., S, E), v (..., S, Ev) of one batch shape; the mask is None, bool
(True = take part) or float (added), broadcastable to (..., L, S) and never broadcast out: the
compiled versions read it through per-batch offsets and strides (``_mask_plan``).

Versions: the NumPy reference (blocks of all batch entries at once; it runs on CuPy arrays too),
Numba (forward parallel over batch × query blocks; backward parallel over the batch, as every
query block adds to the same dK and dV; block products by ``np.dot``, i.e. SciPy's BLAS, and
cross_entropy's vectorised exp), and CUDA (one warp per query row, or per key row for dK and dV;
head dims up to 256, else the reference). Measured against the materialised op in
benchmarks/results/flash_attention.md.
"""
from __future__ import annotations

import importlib.util

import numpy as np
from numba import njit, prange
from numba.extending import overload
from numba.np.numpy_support import as_dtype

from .cross_entropy import _EXP  # the vectorised exp loops per dtype (exp_nonpositive's)
from .dispatch import array_module, cuda_kernel, cupy, launch, pick

BLOCK_Q = 64  # query rows per block
BLOCK_K = 128  # keys per block at most; Numba takes fewer for wide heads (_key_block)
# OpenBLAS runs a GEMM of m·n·k <= 2^18 on the calling thread; a larger one inside Numba's threads
# starts its own as well (measured 2x slower with 128 × 128 × 32 blocks and 2 BLAS threads)
_ONE_THREAD_GEMM = 1 << 18
# Numba's np.dot calls SciPy's BLAS; without SciPy the reference (NumPy's matmul) runs instead
_NUMBA = importlib.util.find_spec("scipy") is not None


def flash_attention_forward(q, k, v, mask, scale: float, causal: bool):
    """(out (..., L, Ev), lse (..., L)): the attention and each row's log Σ_j e^(s_ij)."""
    _check_operands("forward", q, k, v, mask)
    cpu = flash_attention_forward_numba if _NUMBA else None
    return pick(q, flash_attention_forward_reference, cpu, flash_attention_forward_cupy)(
        q, k, v, mask, scale, causal)


def flash_attention_backward(q, k, v, out, lse, gy, mask, scale: float, causal: bool):
    """(gq, gk, gv) like q, k, v, from the forward's out and lse and the output gradient gy."""
    _check_operands("backward", q, k, v, mask)
    cpu = flash_attention_backward_numba if _NUMBA else None
    return pick(q, flash_attention_backward_reference, cpu, flash_attention_backward_cupy)(
        q, k, v, out, lse, gy, mask, scale, causal)


def _check_operands(step: str, q, k, v, mask) -> None:
    """Raise unless q, k, v are (..., L, E), (..., S, E), (..., S, Ev) of one batch shape and
    dtype and the mask broadcasts to (..., L, S): the compiled loops index without checks."""
    op = f"flash_attention {step}"
    batch, (L, E), (S, Ev) = q.shape[:-2], q.shape[-2:], v.shape[-2:]
    if k.shape != batch + (S, E) or v.shape[:-2] != batch or not q.dtype == k.dtype == v.dtype:
        raise ValueError(f"{op}: expected q (..., L, E), k (..., S, E), v (..., S, Ev) of one "
                         f"batch shape and dtype, got {q.shape}, {k.shape}, {v.shape} of "
                         f"{q.dtype}, {k.dtype}, {v.dtype}")
    if mask is None:
        return
    try:
        fits = np.broadcast_shapes(mask.shape, batch + (L, S)) == batch + (L, S)
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"{op}: mask of shape {mask.shape} does not broadcast to {batch + (L, S)}")


# ----- NumPy reference (runs on CuPy arrays too): the definition ---------------------------------
def flash_attention_forward_reference(q, k, v, mask, scale: float, causal: bool):
    xp = array_module(q)
    L, S = q.shape[-2], k.shape[-2]
    mask = _additive(xp, mask, q.dtype, L, S)
    out, lse = xp.empty(q.shape[:-1] + v.shape[-1:], q.dtype), xp.empty(q.shape[:-1], q.dtype)
    for i0 in range(0, L, BLOCK_Q):
        i1 = min(i0 + BLOCK_Q, L)
        q_block = q[..., i0:i1, :] * q.dtype.type(scale)  # (..., n, E)
        peak = xp.full(q_block.shape[:-1] + (1,), -np.inf, q.dtype)  # (..., n, 1): m
        total = xp.zeros_like(peak)  # l
        acc = xp.zeros(q_block.shape[:-1] + v.shape[-1:], q.dtype)  # (..., n, Ev): a
        for j0 in range(0, min(S, i1) if causal else S, BLOCK_K):
            j1 = min(j0 + BLOCK_K, S)
            s = _block_scores_reference(xp, q_block, k[..., j0:j1, :], mask, i0, j0, causal)
            new_peak = xp.maximum(peak, s.max(axis=-1, keepdims=True))
            shift = xp.where(xp.isneginf(new_peak), 0, new_peak)  # a row dead so far: p = 0
            p, rescale = xp.exp(s - shift), xp.exp(peak - shift)  # (..., n, w), (..., n, 1)
            total = total * rescale + p.sum(axis=-1, keepdims=True)
            acc = acc * rescale + p @ v[..., j0:j1, :]
            peak = new_peak
        live = total > 0
        safe = xp.where(live, total, 1)
        out[..., i0:i1, :] = xp.where(live, acc / safe, 0)
        lse[..., i0:i1] = xp.where(live, peak + xp.log(safe), np.inf)[..., 0]
    return out, lse


def flash_attention_backward_reference(q, k, v, out, lse, gy, mask, scale: float, causal: bool):
    xp = array_module(q)
    L, S = q.shape[-2], k.shape[-2]
    mask = _additive(xp, mask, q.dtype, L, S)
    delta = (gy * out).sum(axis=-1, keepdims=True)  # (..., L, 1): δ
    gq, gk, gv = xp.zeros_like(q), xp.zeros_like(k), xp.zeros_like(v)
    for i0 in range(0, L, BLOCK_Q):
        i1 = min(i0 + BLOCK_Q, L)
        q_block, gy_block = q[..., i0:i1, :] * q.dtype.type(scale), gy[..., i0:i1, :]
        for j0 in range(0, min(S, i1) if causal else S, BLOCK_K):
            j1 = min(j0 + BLOCK_K, S)
            keys, values = k[..., j0:j1, :], v[..., j0:j1, :]
            s = _block_scores_reference(xp, q_block, keys, mask, i0, j0, causal)
            p = xp.exp(s - lse[..., i0:i1, None])  # (..., n, w)
            gv[..., j0:j1, :] += p.swapaxes(-1, -2) @ gy_block  # (..., w, Ev)
            gs = p * (gy_block @ values.swapaxes(-1, -2) - delta[..., i0:i1, :])  # (..., n, w)
            gq[..., i0:i1, :] += gs @ keys  # (..., n, E)
            gk[..., j0:j1, :] += gs.swapaxes(-1, -2) @ q_block  # (..., w, E)
    gq *= q.dtype.type(scale)
    return gq, gk, gv


def _additive(xp, mask, dtype, L: int, S: int):
    """The mask as added scores (bool: 0 or -inf) broadcast to (..., L, S) as a view, or None."""
    if mask is None:
        return None
    added = xp.where(mask, 0, -np.inf).astype(dtype) if mask.dtype == bool else mask
    return xp.broadcast_to(added, added.shape[:-2] + (L, S))


def _block_scores_reference(xp, q_block, keys, mask, i0: int, j0: int, causal: bool):
    """s = q_block · keysᵀ (+ the mask's block), -inf where key j > query i when causal."""
    n, w = q_block.shape[-2], keys.shape[-2]
    s = q_block @ keys.swapaxes(-1, -2)  # (..., n, w)
    if mask is not None:
        s = s + mask[..., i0:i0 + n, j0:j0 + w]
    if causal and j0 + w - 1 > i0:  # some key of the block comes after some query
        later = xp.arange(j0, j0 + w)[None, :] > xp.arange(i0, i0 + n)[:, None]  # (n, w)
        s = xp.where(later, -np.inf, s)
    return s


# ----- shared by the compiled versions ------------------------------------------------------------
def _flatten(x):
    """(..., R, C) -> (B, R, C), C-contiguous and writable (Numba types a read-only view apart)."""
    flat = x.reshape((int(np.prod(x.shape[:-2])),) + x.shape[-2:])
    return flat if flat.flags.c_contiguous and flat.flags.writeable else flat.copy()


def _mask_plan(xp, mask, batch: tuple, L: int, S: int, dtype):
    """(values, offsets, row, col): element (b, i, j) of the added mask broadcast to batch + (L, S)
    is values[offsets[b] + i·row + j·col] (row or col 0 where it broadcasts); values is empty for
    no mask. Nothing the size of the scores is made: values has the mask's own shape."""
    if mask is None:
        return xp.zeros(0, dtype), np.zeros(int(np.prod(batch)), np.int64), 0, 0
    added = xp.ascontiguousarray(xp.where(mask, 0, -np.inf) if mask.dtype == bool else mask,
                                 dtype=dtype)
    view = xp.broadcast_to(added, batch + (L, S))
    steps = [step // added.itemsize for step in view.strides]  # elements, 0 where broadcast
    offsets = sum((index * step for index, step in zip(np.indices(batch, sparse=True), steps)),
                  np.zeros(batch, np.int64))
    return added.reshape(-1), offsets.reshape(-1), steps[-2], steps[-1]


# ----- Numba (CPU) ----------------------------------------------------------------------------------
def flash_attention_forward_numba(q, k, v, mask, scale: float, causal: bool):
    batch, L, S, Ev = q.shape[:-2], q.shape[-2], k.shape[-2], v.shape[-1]
    q3, k3, v3 = _flatten(q), _flatten(k), _flatten(v)  # (B, L|S, E|Ev)
    out, lse = np.empty(q3.shape[:2] + (Ev,), q.dtype), np.empty(q3.shape[:2], q.dtype)
    _forward_loop(q3, k3, v3, *_mask_plan(np, mask, batch, L, S, q.dtype), q.dtype.type(scale),
                  causal, BLOCK_Q, _key_block(q, v), out, lse)
    return out.reshape(batch + (L, Ev)), lse.reshape(batch + (L,))


def flash_attention_backward_numba(q, k, v, out, lse, gy, mask, scale: float, causal: bool):
    batch, L, S = q.shape[:-2], q.shape[-2], k.shape[-2]
    q3, k3, v3 = _flatten(q), _flatten(k), _flatten(v)  # (B, L|S, E|Ev)
    gq, gk, gv = np.zeros_like(q3), np.zeros_like(k3), np.zeros_like(v3)
    lse2 = np.ascontiguousarray(lse.reshape(q3.shape[:2]))  # (B, L)
    _backward_loop(q3, k3, v3, _flatten(out), lse2, _flatten(gy),
                   *_mask_plan(np, mask, batch, L, S, q.dtype),
                   q.dtype.type(scale), causal, BLOCK_Q, _key_block(q, v), gq, gk, gv)
    return gq.reshape(q.shape), gk.reshape(k.shape), gv.reshape(v.shape)


def _key_block(q, v) -> int:
    """Keys per block: BLOCK_K, or fewer so that every block product stays a one-thread GEMM."""
    return max(1, min(BLOCK_K, _ONE_THREAD_GEMM // (BLOCK_Q * max(q.shape[-1], v.shape[-1], 1))))


# reassociation lets LLVM vectorise the row sums and the mask adds; NaN and inf keep their meaning
_FAST = {"reassoc", "contract"}


# each prange body is one call: Numba's parfor passes then have nothing to convert inside it
# (array expressions there made compiling the backward 3x slower than its serial version)
@njit(cache=True, parallel=True)
def _forward_loop(q, k, v, mask, offsets, row, col, scale, causal, block_q, block_k, out, lse):
    B, L = q.shape[:2]
    blocks = -(-L // block_q)
    for task in prange(B * blocks):
        b, i0 = task // blocks, task % blocks * block_q
        _forward_block(q[b], k[b], v[b], mask, offsets[b], row, col, scale, causal, i0,
                       min(i0 + block_q, L), block_k, out[b], lse[b])


@njit(cache=True, fastmath=_FAST)
def _forward_block(q, k, v, mask, offset, row, col, scale, causal, i0, i1, block_k, out, lse):
    """Rows i0:i1 of one batch entry: q (L, E), k (S, E), v (S, Ev), out (L, Ev), lse (L,)."""
    n, S, Ev = i1 - i0, k.shape[0], v.shape[1]
    q_block = q[i0:i1] * scale  # (n, E)
    peak, total = np.full(n, -np.inf, q.dtype), np.zeros(n, q.dtype)  # m, l
    acc = np.zeros((n, Ev), q.dtype)  # a
    scratch = np.empty(n * block_k, q.dtype)
    for j0 in range(0, min(S, i1) if causal else S, block_k):
        j1 = min(j0 + block_k, S)
        s = _block_scores(q_block, k[j0:j1], mask, offset, row, col, i0, j0, causal)  # (n, w)
        for i in range(n):  # fold the block into m, l, a; shift s by the new max
            new_peak = max(peak[i], s[i].max())
            shift = new_peak if new_peak > -np.inf else 0.0  # a row dead so far: p = 0
            rescale = np.exp(peak[i] - shift)
            s[i] -= shift
            peak[i], total[i] = new_peak, total[i] * rescale
            acc[i] *= rescale
        p = scratch[:s.size].reshape(s.shape)
        _exp(s.reshape(-1), p.reshape(-1))
        for i in range(n):
            total[i] += p[i].sum()
        acc += np.dot(p, v[j0:j1])
    for i in range(n):
        live = total[i] > 0  # else every key is masked: out 0, lse +inf
        out[i0 + i] = acc[i] / total[i] if live else np.zeros(Ev, q.dtype)
        lse[i0 + i] = peak[i] + np.log(total[i]) if live else np.inf


@njit(cache=True, parallel=True)
def _backward_loop(q, k, v, out, lse, gy, mask, offsets, row, col, scale, causal, block_q,
                   block_k, gq, gk, gv):
    for b in prange(q.shape[0]):
        _backward_entry(q[b], k[b], v[b], out[b], lse[b], gy[b], mask, offsets[b], row, col,
                        scale, causal, block_q, block_k, gq[b], gk[b], gv[b])


@njit(cache=True, fastmath=_FAST)
def _backward_entry(q, k, v, out, lse, gy, mask, offset, row, col, scale, causal, block_q,
                    block_k, gq, gk, gv):
    """One batch entry (the 2-d slices of q, k, v...); gq, gk, gv start at 0."""
    L, S = q.shape[0], k.shape[0]
    q_scaled = q * scale  # (L, E)
    delta = (gy * out).sum(axis=1)  # (L,): δ_i = gO_i·o_i
    scratch = np.empty(block_q * block_k, q.dtype)
    for j0 in range(0, S, block_k):
        j1 = min(j0 + block_k, S)
        keys, values = k[j0:j1], v[j0:j1]
        for i0 in range(j0 if causal else 0, L, block_q):  # causal: rows i < j0 see none
            i1 = min(i0 + block_q, L)
            s = _block_scores(q_scaled[i0:i1], keys, mask, offset, row, col, i0, j0, causal)
            for i in range(i1 - i0):
                s[i] -= lse[i0 + i]
            p = scratch[:s.size].reshape(s.shape)
            _exp(s.reshape(-1), p.reshape(-1))  # (n, w)
            gv[j0:j1] += np.dot(p.T, gy[i0:i1])
            gs = np.dot(gy[i0:i1], values.T)  # (n, w): gP, then gS in place
            for i in range(i1 - i0):
                gs[i] = p[i] * (gs[i] - delta[i0 + i])
            gk[j0:j1] += np.dot(gs.T, q_scaled[i0:i1])
            gq[i0:i1] += np.dot(gs, keys)
    gq *= scale


@njit(cache=True, fastmath=_FAST)
def _block_scores(q_block, keys, mask, offset, row, col, i0, j0, causal):
    """q_block·keysᵀ (n, w) plus the mask's block, -inf where key j > query i when causal."""
    s = np.dot(q_block, keys.T)
    n, w = s.shape
    if mask.size:
        for i in range(n):
            at = offset + (i0 + i) * row + j0 * col
            for j in range(w):
                s[i, j] += mask[at + j * col]
    if causal and j0 + w - 1 > i0:
        for i in range(n):
            for j in range(max(i0 + i + 1 - j0, 0), w):
                s[i, j] = -np.inf
    return s


def _exp(y, out):
    """out = e^y for 1-d y <= 0 (shifted scores): cross_entropy's vectorised exp."""
    loops, integer = _EXP[y.dtype]
    loops(y, out, out.view(integer))


@overload(_exp)
def _exp_compiled(y, out):
    """In compiled code, the exp loops of y's dtype are chosen once, when the caller is typed."""
    loops, integer = _EXP[np.dtype(as_dtype(y.dtype))]

    def exp(y, out):
        loops(y, out, out.view(integer))

    return exp


# ----- CuPy (GPU): one warp per row; T is the element type (dispatch.cuda_prelude) ----------------
HEAD_MAX = 256  # E and Ev up to this on GPU: each lane keeps HEAD_MAX / 32 sums of a row
_CUDA_COMMON = f"#define HEAD_MAX {HEAD_MAX}\n" + r"""
#define LANES 32
__device__ double minidl_warp_reduce(double value, bool take_max) {  // every lane gets it
    for (int offset = LANES / 2; offset > 0; offset /= 2) {
        double other = __shfl_xor_sync(0xffffffff, value, offset);
        value = take_max ? fmax(value, other) : value + other;
    }
    return value;
}
__device__ double minidl_dot(const T* a, const T* b, int n) {
    double sum = 0.0;
    for (int e = 0; e < n; ++e) sum += (double)a[e] * (double)b[e];
    return sum;
}
// mask: the added values; element (b, i, j) at offsets[b] + i·row + j·col (see _mask_plan)
#define SCORE(qi, kj, i, j) (minidl_dot(qi, kj, E) * scale \
    + (has_mask ? (double)mask[offsets[b] + (i) * row + (j) * col] : 0.0))
#define MASK_ARGS const T* mask, const long long* offsets, long long row, long long col, \
    int has_mask, long long B, int L, int S, int E, int Ev, double scale, int causal
"""

CUDA_SOURCES = {
    # a warp per query row (b, i): the online softmax over tiles of 32 keys
    "minidl_flash_attention_forward": _CUDA_COMMON + r"""
extern "C" __global__ void minidl_flash_attention_forward(
        const T* q, const T* k, const T* v, MASK_ARGS, T* out, T* lse) {
    const long long rows = B * L, r = (blockIdx.x * (long long)blockDim.x + threadIdx.x) / LANES;
    if (r >= rows) return;  // the whole warp
    const int lane = threadIdx.x % LANES, i = r % L;
    const long long b = r / L;
    const int keys = causal ? min(S, i + 1) : S;
    double acc[HEAD_MAX / LANES] = {0.0}, peak = -INFINITY, total = 0.0;
    for (int j0 = 0; j0 < keys; j0 += LANES) {
        const int j = j0 + lane;
        const double s = j < keys ? SCORE(q + r * E, k + (b * S + j) * E, i, j) : -INFINITY;
        const double new_peak = fmax(peak, minidl_warp_reduce(s, true));
        const double shift = new_peak == -INFINITY ? 0.0 : new_peak;  // dead so far: p = 0
        const double rescale = exp(peak - shift), p = exp(s - shift);
        total = total * rescale + minidl_warp_reduce(p, false);
        peak = new_peak;
        for (int c = 0; c < HEAD_MAX / LANES; ++c) acc[c] *= rescale;
        for (int t = 0; t < LANES && j0 + t < keys; ++t) {
            const double pt = __shfl_sync(0xffffffff, p, t);
            for (int c = 0, e = lane; c < HEAD_MAX / LANES; ++c, e += LANES)
                if (e < Ev) acc[c] += pt * (double)v[(b * S + j0 + t) * Ev + e];
        }
    }
    for (int c = 0, e = lane; c < HEAD_MAX / LANES; ++c, e += LANES)
        if (e < Ev) out[r * Ev + e] = (T)(total > 0 ? acc[c] / total : 0.0);
    if (lane == 0) lse[r] = (T)(total > 0 ? peak + log(total) : INFINITY);
}
""",
    # a warp per query row: gQ_i = Σ_j gS_ij k_j·scale, gS_ij = p_ij (gO_i·v_j - δ_i)
    "minidl_flash_attention_backward_query": _CUDA_COMMON + r"""
extern "C" __global__ void minidl_flash_attention_backward_query(
        const T* q, const T* k, const T* v, MASK_ARGS, const T* lse, const T* delta,
        const T* gy, T* gq) {
    const long long rows = B * L, r = (blockIdx.x * (long long)blockDim.x + threadIdx.x) / LANES;
    if (r >= rows) return;
    const int lane = threadIdx.x % LANES, i = r % L;
    const long long b = r / L;
    const int keys = causal ? min(S, i + 1) : S;
    double acc[HEAD_MAX / LANES] = {0.0};
    for (int j0 = 0; j0 < keys; j0 += LANES) {
        const int j = j0 + lane;
        double gs = 0.0;
        if (j < keys) {
            const double p = exp(SCORE(q + r * E, k + (b * S + j) * E, i, j) - (double)lse[r]);
            gs = p * (minidl_dot(gy + r * Ev, v + (b * S + j) * Ev, Ev) - (double)delta[r]);
        }
        for (int t = 0; t < LANES && j0 + t < keys; ++t) {
            const double gst = __shfl_sync(0xffffffff, gs, t);
            for (int c = 0, e = lane; c < HEAD_MAX / LANES; ++c, e += LANES)
                if (e < E) acc[c] += gst * (double)k[(b * S + j0 + t) * E + e];
        }
    }
    for (int c = 0, e = lane; c < HEAD_MAX / LANES; ++c, e += LANES)
        if (e < E) gq[r * E + e] = (T)(acc[c] * scale);
}
""",
    # a warp per key row (b, j): gK_j = Σ_i gS_ij q_i·scale, gV_j = Σ_i p_ij gO_i
    "minidl_flash_attention_backward_key": _CUDA_COMMON + r"""
extern "C" __global__ void minidl_flash_attention_backward_key(
        const T* q, const T* k, const T* v, MASK_ARGS, const T* lse, const T* delta,
        const T* gy, T* gk, T* gv) {
    const long long rows = B * S, r = (blockIdx.x * (long long)blockDim.x + threadIdx.x) / LANES;
    if (r >= rows) return;
    const int lane = threadIdx.x % LANES, j = r % S;
    const long long b = r / S;
    double acc_k[HEAD_MAX / LANES] = {0.0}, acc_v[HEAD_MAX / LANES] = {0.0};
    for (int i0 = causal ? j : 0; i0 < L; i0 += LANES) {  // causal: query i sees key j if i >= j
        const int i = i0 + lane;
        const long long qr = b * L + i;
        double p = 0.0, gs = 0.0;
        if (i < L) {
            p = exp(SCORE(q + qr * E, k + r * E, i, j) - (double)lse[qr]);
            gs = p * (minidl_dot(gy + qr * Ev, v + r * Ev, Ev) - (double)delta[qr]);
        }
        for (int t = 0; t < LANES && i0 + t < L; ++t) {
            const double pt = __shfl_sync(0xffffffff, p, t), gst = __shfl_sync(0xffffffff, gs, t);
            const long long it = b * L + i0 + t;
            for (int c = 0, e = lane; c < HEAD_MAX / LANES; ++c, e += LANES) {
                if (e < E) acc_k[c] += gst * (double)q[it * E + e];
                if (e < Ev) acc_v[c] += pt * (double)gy[it * Ev + e];
            }
        }
    }
    for (int c = 0, e = lane; c < HEAD_MAX / LANES; ++c, e += LANES) {
        if (e < E) gk[r * E + e] = (T)(acc_k[c] * scale);
        if (e < Ev) gv[r * Ev + e] = (T)acc_v[c];
    }
}
""",
}


def flash_attention_forward_cupy(q, k, v, mask, scale: float, causal: bool):
    if max(q.shape[-1], v.shape[-1]) > HEAD_MAX:
        return flash_attention_forward_reference(q, k, v, mask, scale, causal)
    shape, args = _cuda_operands(q, k, v, mask, scale, causal)
    out, lse = cupy().empty(shape + v.shape[-1:], q.dtype), cupy().empty(shape, q.dtype)
    _launch("minidl_flash_attention_forward", q, int(np.prod(shape)), *args, out, lse)
    return out, lse


def flash_attention_backward_cupy(q, k, v, out, lse, gy, mask, scale: float, causal: bool):
    if max(q.shape[-1], v.shape[-1]) > HEAD_MAX:
        return flash_attention_backward_reference(q, k, v, out, lse, gy, mask, scale, causal)
    xp = cupy()
    gy = xp.ascontiguousarray(gy)
    delta = (gy * out).sum(axis=-1)  # (..., L): δ
    shape, args = _cuda_operands(q, k, v, mask, scale, causal)
    gq, gk, gv = xp.empty(q.shape, q.dtype), xp.empty(k.shape, q.dtype), xp.empty(v.shape, q.dtype)
    grads = (xp.ascontiguousarray(lse), delta, gy)
    _launch("minidl_flash_attention_backward_query", q, q[..., 0].size, *args, *grads, gq)
    _launch("minidl_flash_attention_backward_key", q, k[..., 0].size, *args, *grads, gk, gv)
    return gq, gk, gv


def _cuda_operands(q, k, v, mask, scale: float, causal: bool) -> tuple:
    """(q's shape less E, the kernels' leading arguments: q, k, v, then MASK_ARGS)."""
    xp = cupy()
    batch, (L, E), (S, Ev) = q.shape[:-2], q.shape[-2:], v.shape[-2:]
    values, offsets, row, col = _mask_plan(xp, mask, batch, L, S, q.dtype)
    tensors = [xp.ascontiguousarray(x) for x in (q, k, v)]
    sizes = [np.int64(np.prod(batch)), np.int32(L), np.int32(S), np.int32(E), np.int32(Ev)]
    return q.shape[:-1], (*tensors, values, xp.asarray(offsets), np.int64(row), np.int64(col),
                          np.int32(values.size > 0), *sizes, np.float64(scale), np.int32(causal))


def _launch(name: str, like, rows: int, *args) -> None:
    """One warp (32 threads) per row of ``name``, a kernel of CUDA_SOURCES built for like.dtype."""
    launch(cuda_kernel(CUDA_SOURCES[name], name, like.dtype), rows * 32, *args)
