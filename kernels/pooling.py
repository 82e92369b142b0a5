"""Pooling kernels on planes: max pooling (with argmax) and average pooling, forward and backward.

Every kernel sees the input as independent planes ``(B, D, H, W)`` (B = batch · channels; 1-d and
2-d pooling pass size-1 leading spatial dims) and takes the geometry as 3-tuples:
``kernel``, ``stride``, ``padding``, ``dilation`` and the output size ``(OD, OH, OW)``. Output
position o covers input positions ``o·stride - padding + k·dilation`` for k < kernel.

Max pooling returns the max and its flat index ``(d·H + h)·W + w`` in the unpadded plane (PyTorch's
``return_indices``); ties go to the first element in scan order and NaN propagates, as in PyTorch.
Average pooling divides by PyTorch's divisor: with ``count_include_pad`` the window clipped to the
padded extent ``[-padding, size + padding)``, otherwise the window clipped to the input.

The backward of max pooling takes the argmax from the caller (it is also the op's returned
``indices``, so it may have been changed since): every version raises an IndexError for an index
outside its plane instead of writing there. The Numba loop counts such indices where it reads them;
only when it found one does array code look for the first to name in the error.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .dispatch import array_module, cuda_kernel, cupy, launch, pick
from .scatter import index_add_reference
from .windows import offset_slices, pads_to_fit


def max_pool_forward(x, kernel, stride, padding, dilation, out_size):
    """(y, index), both ``(B, OD, OH, OW)``; index is int64."""
    fn = pick(x, max_pool_forward_reference, max_pool_forward_numba, max_pool_forward_cupy)
    return fn(x, kernel, stride, padding, dilation, out_size)


def max_pool_backward(gy, index, in_size):
    """gx ``(B, D, H, W)``: each gy element added at its argmax (overlapping windows add up)."""
    return pick(gy, max_pool_backward_reference, max_pool_backward_numba, max_pool_backward_cupy)(
        gy, index, in_size
    )


def check_argmax(gy, index, in_size) -> None:
    """Raise unless ``index`` is an integer array shaped like ``gy`` (B, OD, OH, OW) and
    ``in_size`` a (D, H, W)."""
    if gy.ndim != 4 or len(in_size) != 3:
        raise ValueError(f"max_pool backward: expected gy (B, OD, OH, OW) and in_size (D, H, W), "
                         f"got shapes {gy.shape} and {tuple(in_size)}")
    if index.dtype.kind not in "iu":
        raise TypeError(f"max_pool backward: expected an integer index, got {index.dtype}")
    if index.shape != gy.shape:
        raise ValueError(f"max_pool backward: expected index of gy's shape {gy.shape}, got "
                         f"{index.shape}")


def check_argmax_range(xp, index, in_size) -> None:
    """Raise an IndexError naming the first ``index`` outside the (D, H, W) plane."""
    plane = int(np.prod(in_size))
    bad = (index < 0) | (index >= plane)
    if bad.any():
        value = int(index.reshape(-1)[int(xp.flatnonzero(bad)[0])])
        raise IndexError(f"max_pool backward: invalid max index {value} for input planes of size "
                         f"{'x'.join(map(str, in_size))} ({plane} elements)")


# Average pooling's CPU path is the reference (cpu=None): its strided slice sums and a Numba loop
# measured within noise of each other, neither ahead at every shape (benchmarks/results/kernels.md,
# "Removed"), so the loop was removed.
def avg_pool_forward(x, kernel, stride, padding, out_size, count_include_pad):
    """y ``(B, OD, OH, OW)``: the window sums over PyTorch's divisor."""
    fn = pick(x, avg_pool_forward_reference, gpu=avg_pool_forward_cupy)
    return fn(x, kernel, stride, padding, out_size, count_include_pad)


def avg_pool_backward(gy, kernel, stride, padding, in_size, count_include_pad):
    """gx ``(B, D, H, W)``: each gy element spread evenly (gy / divisor) over its window."""
    fn = pick(gy, avg_pool_backward_reference, gpu=avg_pool_backward_cupy)
    return fn(gy, kernel, stride, padding, in_size, count_include_pad)


# ----- NumPy references: a loop over kernel offsets, each a strided slice of the padded planes -----
def _padded(xp, x, padding, kernel, stride, dilation, out_size, fill):
    """Planes ``x`` (B, D, H, W) inside a border of ``fill`` where every window fits."""
    border = pads_to_fit(x.shape[1:], kernel, stride, padding, dilation, out_size)
    return xp.pad(x, [(0, 0)] + border, constant_values=fill)  # (B, Dp, Hp, Wp)


def max_pool_forward_reference(x, kernel, stride, padding, dilation, out_size):
    xp = array_module(x)
    B, H, W = x.shape[0], x.shape[2], x.shape[3]
    padded = _padded(xp, x, padding, kernel, stride, dilation, out_size, -np.inf)
    inside = _padded(
        xp, xp.ones(x.shape, dtype=bool), padding, kernel, stride, dilation, out_size, False
    )
    y = xp.full((B,) + tuple(out_size), -np.inf, dtype=x.dtype)
    best = xp.full(y.shape, -1, dtype=np.int64)  # kernel offset number of the max so far
    for number, (_, where) in enumerate(offset_slices(kernel, stride, dilation, out_size)):
        window, valid = padded[(Ellipsis,) + where], inside[(Ellipsis,) + where]  # (B, OD, OH, OW)
        # the first valid element always counts (PyTorch's start index), then strictly larger or NaN
        take = valid & ((window > y) | xp.isnan(window) | (best < 0))
        y = xp.where(take, window, y)
        best = xp.where(take, number, best)
    k = np.unravel_index(np.arange(int(np.prod(kernel))), kernel)
    coords = [
        xp.arange(o)[(slice(None),) + (None,) * (2 - i)] * s - p + xp.asarray(k[i] * d)[best]
        for i, (o, s, p, d) in enumerate(zip(out_size, stride, padding, dilation))
    ]
    index = (coords[0] * H + coords[1]) * W + coords[2]
    return y, index.astype(np.int64)


def max_pool_backward_reference(gy, index, in_size):
    xp = array_module(gy)
    check_argmax(gy, index, in_size)
    check_argmax_range(xp, index, in_size)
    B = gy.shape[0]
    gx = xp.zeros((B, int(np.prod(in_size))), dtype=gy.dtype)  # (B, D*H*W)
    plane = int(np.prod(gy.shape[1:]))
    rows = xp.arange(B)[:, None]
    index_add_reference(gx, (rows, index.reshape(B, plane)), gy.reshape(B, plane))
    return gx.reshape((B,) + tuple(in_size))


def _divisor(xp, in_size, kernel, stride, padding, out_size, count_include_pad, dtype):
    """PyTorch's divisor per output ``(OD, OH, OW)``: a product of one window length per dim."""
    lengths = []
    for n, k, s, p, o in zip(in_size, kernel, stride, padding, out_size):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, n + p)
        if not count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, n)
        lengths.append(end - start)
    divisor = lengths[0][:, None, None] * lengths[1][None, :, None] * lengths[2][None, None, :]
    return xp.asarray(divisor, dtype=dtype)


def avg_pool_forward_reference(x, kernel, stride, padding, out_size, count_include_pad):
    xp = array_module(x)
    ones = (1, 1, 1)
    padded = _padded(xp, x, padding, kernel, stride, ones, out_size, 0)
    total = xp.zeros((x.shape[0],) + tuple(out_size), dtype=x.dtype)
    for _, where in offset_slices(kernel, stride, ones, out_size):
        total += padded[(Ellipsis,) + where]  # (B, OD, OH, OW)
    return total / _divisor(
        xp, x.shape[1:], kernel, stride, padding, out_size, count_include_pad, x.dtype
    )


def avg_pool_backward_reference(gy, kernel, stride, padding, in_size, count_include_pad):
    xp = array_module(gy)
    ones, out_size = (1, 1, 1), gy.shape[1:]
    share = gy / _divisor(
        xp, in_size, kernel, stride, padding, out_size, count_include_pad, gy.dtype
    )
    gx = _padded(
        xp,
        xp.zeros((gy.shape[0],) + tuple(in_size), dtype=gy.dtype),
        padding,
        kernel,
        stride,
        ones,
        out_size,
        0,
    )
    for _, where in offset_slices(kernel, stride, ones, out_size):
        gx[(Ellipsis,) + where] += share  # (B, OD, OH, OW)
    D, H, W = in_size
    return gx[
        :, padding[0] : padding[0] + D, padding[1] : padding[1] + H, padding[2] : padding[2] + W
    ]


# ----- Numba: one loop nest per kernel, parallel over planes (planes never share memory) -----
def max_pool_forward_numba(x, kernel, stride, padding, dilation, out_size):
    if min(stride) < 1:  # the loop's window arithmetic keeps inside the planes only for stride >= 1
        raise ValueError(f"max_pool forward: expected a stride >= 1, got {tuple(stride)}")
    x = np.ascontiguousarray(x)
    y = np.empty((x.shape[0],) + tuple(out_size), dtype=x.dtype)
    index = np.empty(y.shape, dtype=np.int64)
    B, D, H, W = x.shape
    OD, OH, OW = out_size
    if (
        (tuple(kernel), tuple(stride), tuple(padding), tuple(dilation), D, OD)
        == ((1, 2, 2), (1, 2, 2), (0, 0, 0), (1, 1, 1), 1, 1)
        and 2 * OH <= H
        and 2 * OW <= W
    ):
        _max_pool_2x2_loop(x.reshape(B, H, W), y.reshape(B, OH, OW), index.reshape(B, OH, OW))
    else:
        _max_pool_forward_loop(
            x, y, index, tuple(kernel), tuple(stride), tuple(padding), tuple(dilation)
        )
    return y, index


@njit(cache=True, parallel=True)
def _max_pool_2x2_loop(x, y, index):
    # The common 2x2/stride-2 case, unrolled and without data-dependent branches: on random data
    # the general loop's "is this larger?" branches mispredict about half the time, and this loop
    # measured 4x faster on (2048, 28, 28). A window holding a NaN (rare) takes the exact branch.
    B, W = x.shape[0], x.shape[2]
    OH, OW = y.shape[1:]
    for b in prange(B):
        for oh in range(OH):
            h = 2 * oh
            for ow in range(OW):
                w = 2 * ow
                a0, a1, a2, a3 = x[b, h, w], x[b, h, w + 1], x[b, h + 1, w], x[b, h + 1, w + 1]
                # offsets of the first max of each row pair, then of the larger pair (0/1 flags)
                right01, right23 = np.int64(a1 > a0), np.int64(a3 > a2)
                m01, m23 = max(a0, a1), max(a2, a3)
                lower = np.int64(m23 > m01)
                y[b, oh, ow] = max(m01, m23)
                index[b, oh, ow] = h * W + w + right01 + lower * (W + right23 - right01)
                nan0, nan1, nan2, nan3 = np.isnan(a0), np.isnan(a1), np.isnan(a2), np.isnan(a3)
                if nan0 | nan1 | nan2 | nan3:  # the last NaN wins, as in PyTorch
                    last = 3 if nan3 else (2 if nan2 else (1 if nan1 else 0))
                    y[b, oh, ow] = np.nan
                    index[b, oh, ow] = (h + last // 2) * W + w + last % 2


@njit(cache=True, parallel=True)
def _max_pool_forward_loop(x, y, index, kernel, stride, padding, dilation):
    # kernel offsets outside, outputs inside (as the reference): the inner loop runs over a row of
    # outputs with no bounds checks, 1.5x faster than a window loop per output
    B, D, H, W = x.shape
    OD, OH, OW = y.shape[1:]
    KD, KH, KW = kernel
    SD, SH, SW = stride
    PD, PH, PW = padding
    DD, DH, DW = dilation
    for b in prange(B):
        y[b] = -np.inf
        index[b] = -1
        for kd in range(KD):
            od0, od1 = _outputs_inside(D, OD, SD, PD, kd * DD)
            for kh in range(KH):
                oh0, oh1 = _outputs_inside(H, OH, SH, PH, kh * DH)
                for kw in range(KW):
                    ow0, ow1 = _outputs_inside(W, OW, SW, PW, kw * DW)
                    for od in range(od0, od1):
                        d = od * SD - PD + kd * DD
                        for oh in range(oh0, oh1):
                            h = oh * SH - PH + kh * DH
                            for ow in range(ow0, ow1):
                                w = ow * SW - PW + kw * DW
                                value = x[b, d, h, w]
                                # the first element inside always counts (PyTorch's start index),
                                # then a larger one or a NaN (NaN propagates, as in PyTorch)
                                if (
                                    value > y[b, od, oh, ow]
                                    or np.isnan(value)
                                    or index[b, od, oh, ow] < 0
                                ):
                                    y[b, od, oh, ow] = value
                                    index[b, od, oh, ow] = (d * H + h) * W + w


@njit(cache=True)
def _outputs_inside(n, outputs, s, p, shift):
    """[first, last) outputs o whose input position o·s - p + shift lies in [0, n)."""
    first = max(0, (p - shift + s - 1) // s)
    last = min(outputs, (n - 1 + p - shift) // s + 1)
    return first, last


def max_pool_backward_numba(gy, index, in_size):
    check_argmax(gy, index, in_size)
    B = gy.shape[0]
    gx = np.zeros((B, int(np.prod(in_size))), dtype=gy.dtype)  # (B, D*H*W)
    plane = int(np.prod(gy.shape[1:]))
    bad_indices = _max_pool_backward_loop(
        np.ascontiguousarray(gy).reshape(B, plane),
        np.ascontiguousarray(index).reshape(B, plane),
        gx,
    )
    if bad_indices:
        check_argmax_range(np, index, in_size)
    return gx.reshape((B,) + tuple(in_size))


@njit(cache=True, parallel=True)
def _max_pool_backward_loop(gy, index, gx):
    # Returns the number of indices outside the plane, which are skipped (the caller raises). As
    # an unsigned number a negative index is huge, so one compare checks both ends, and indexing
    # by it skips Numba's test for a negative index: the loop costs what it did unchecked.
    plane = np.uint64(gx.shape[1])
    bad_indices = 0
    for b in prange(gy.shape[0]):
        for o in range(gy.shape[1]):
            at = np.uint64(index[b, o])
            if at < plane:
                gx[b, at] += gy[b, o]
            else:
                bad_indices += 1
    return bad_indices


# ----- CuPy: one thread per output element; T is the element type (dispatch.cuda_prelude) ------
# a grid-stride loop over the ``count`` outputs (b, od, oh, ow), and where each one's window starts
_FOR_EACH_OUTPUT = """
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count;
         i += (long long)blockDim.x * gridDim.x) {
        const long long ow = i % OW, oh = (i / OW) % OH, od = (i / (OW * OH)) % OD,
                        b = i / (OW * OH * OD);
        const long long d0 = od * SD - PD, h0 = oh * SH - PH, w0 = ow * SW - PW;
"""
MAX_POOL_FORWARD_SOURCE = (
    """
extern "C" __global__ void minidl_max_pool_forward(
        const T* x, T* y, long long* index, long long count, int D, int H, int W, int OD, int OH,
        int OW, int KD, int KH, int KW, int SD, int SH, int SW, int PD, int PH, int PW, int DD,
        int DH, int DW) {"""
    + _FOR_EACH_OUTPUT
    + """
        const T* plane = x + b * D * H * W;
        T best = 0;
        long long arg = -1;
        for (int kd = 0; kd < KD; ++kd) {
            long long d = d0 + kd * DD;
            if (d < 0 || d >= D) continue;
            for (int kh = 0; kh < KH; ++kh) {
                long long h = h0 + kh * DH;
                if (h < 0 || h >= H) continue;
                for (int kw = 0; kw < KW; ++kw) {
                    long long w = w0 + kw * DW;
                    if (w < 0 || w >= W) continue;
                    long long at = (d * H + h) * W + w;
                    T value = plane[at];
                    if (arg < 0 || value > best || isnan(value)) { best = value; arg = at; }
                }
            }
        }
        y[i] = best;
        index[i] = arg;
    }
}
"""
)
MAX_POOL_BACKWARD_SOURCE = """
extern "C" __global__ void minidl_max_pool_backward(
        const T* gy, const long long* index, T* gx, long long count, long long plane_out,
        long long plane_in) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count;
         i += (long long)blockDim.x * gridDim.x) {
        atomicAdd(gx + (i / plane_out) * plane_in + index[i], gy[i]);
    }
}
"""
# the average pools' geometry arguments, then each output's window clipped and its divisor
_AVG_ARGUMENTS = """long long count, int D, int H, int W, int OD, int OH, int OW, int KD,
        int KH, int KW, int SD, int SH, int SW, int PD, int PH, int PW, bool count_include_pad) {"""
_AVG_WINDOW = (
    _FOR_EACH_OUTPUT
    + """
        const long long d1 = min(d0 + KD, (long long)D + PD), h1 = min(h0 + KH, (long long)H + PH),
                        w1 = min(w0 + KW, (long long)W + PW);
        const long long padded = (d1 - d0) * (h1 - h0) * (w1 - w0);
        const long long ds = max(d0, 0LL), hs = max(h0, 0LL), ws = max(w0, 0LL);
        const long long de = min(d1, (long long)D), he = min(h1, (long long)H),
                        we = min(w1, (long long)W);
        const T divisor = count_include_pad ? padded : (de - ds) * (he - hs) * (we - ws);
"""
)
AVG_POOL_FORWARD_SOURCE = (
    """
extern "C" __global__ void minidl_avg_pool_forward(const T* x, T* y, """
    + _AVG_ARGUMENTS
    + _AVG_WINDOW
    + """
        const T* plane = x + b * D * H * W;
        T total = 0;
        for (long long d = ds; d < de; ++d)
            for (long long h = hs; h < he; ++h)
                for (long long w = ws; w < we; ++w) total += plane[(d * H + h) * W + w];
        y[i] = total / divisor;
    }
}
"""
)
AVG_POOL_BACKWARD_SOURCE = (
    """
extern "C" __global__ void minidl_avg_pool_backward(const T* gy, T* gx, """
    + _AVG_ARGUMENTS
    + _AVG_WINDOW
    + """
        T* plane = gx + b * D * H * W;
        const T share = gy[i] / divisor;
        for (long long d = ds; d < de; ++d)
            for (long long h = hs; h < he; ++h)
                for (long long w = ws; w < we; ++w) atomicAdd(plane + (d * H + h) * W + w, share);
    }
}
"""
)
CUDA_SOURCES = {
    "minidl_max_pool_forward": MAX_POOL_FORWARD_SOURCE,
    "minidl_max_pool_backward": MAX_POOL_BACKWARD_SOURCE,
    "minidl_avg_pool_forward": AVG_POOL_FORWARD_SOURCE,
    "minidl_avg_pool_backward": AVG_POOL_BACKWARD_SOURCE,
}


def _ints(*tuples):
    return tuple(np.int32(v) for t in tuples for v in t)


def max_pool_forward_cupy(x, kernel, stride, padding, dilation, out_size):
    xp = cupy()
    x = xp.ascontiguousarray(x)
    y = xp.empty((x.shape[0],) + tuple(out_size), dtype=x.dtype)
    index = xp.empty(y.shape, dtype=np.int64)
    geometry = _ints(x.shape[1:], out_size, kernel, stride, padding, dilation)
    launch(cuda_kernel(MAX_POOL_FORWARD_SOURCE, "minidl_max_pool_forward", x.dtype), y.size,
           x, y, index, np.int64(y.size), *geometry)
    return y, index


def max_pool_backward_cupy(gy, index, in_size):
    xp = cupy()
    check_argmax(gy, index, in_size)
    check_argmax_range(xp, index, in_size)
    gy, index = xp.ascontiguousarray(gy), xp.ascontiguousarray(index, dtype=np.int64)
    gx = xp.zeros((gy.shape[0],) + tuple(in_size), dtype=gy.dtype)
    plane_out, plane_in = int(np.prod(gy.shape[1:])), int(np.prod(in_size))
    launch(cuda_kernel(MAX_POOL_BACKWARD_SOURCE, "minidl_max_pool_backward", gy.dtype), gy.size,
           gy, index, gx, np.int64(gy.size), np.int64(plane_out), np.int64(plane_in))
    return gx


def avg_pool_forward_cupy(x, kernel, stride, padding, out_size, count_include_pad):
    xp = cupy()
    x = xp.ascontiguousarray(x)
    y = xp.empty((x.shape[0],) + tuple(out_size), dtype=x.dtype)
    geometry = _ints(x.shape[1:], out_size, kernel, stride, padding)
    launch(cuda_kernel(AVG_POOL_FORWARD_SOURCE, "minidl_avg_pool_forward", x.dtype), y.size,
           x, y, np.int64(y.size), *geometry, np.bool_(count_include_pad))
    return y


def avg_pool_backward_cupy(gy, kernel, stride, padding, in_size, count_include_pad):
    xp = cupy()
    gy = xp.ascontiguousarray(gy)
    gx = xp.zeros((gy.shape[0],) + tuple(in_size), dtype=gy.dtype)
    geometry = _ints(in_size, gy.shape[1:], kernel, stride, padding)
    launch(cuda_kernel(AVG_POOL_BACKWARD_SOURCE, "minidl_avg_pool_backward", gy.dtype), gy.size,
           gy, gx, np.int64(gy.size), *geometry, np.bool_(count_include_pad))
    return gx
