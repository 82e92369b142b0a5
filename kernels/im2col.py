"""im2col / col2im for 1-, 2- and 3-d windows: the gather that turns a convolution into one GEMM.

One formula defines both, for every spatial dim i (``o`` a position of the output grid, ``k`` a
kernel offset)::

    col[n, c, k..., o...] = x[n, c, (o*s - p + k*d)...]   (0 where an index falls outside x)

col2im is its adjoint: each col entry is added back to the pixel it was read from, so overlapping
windows accumulate. Padding enters only as the low-side offset ``p``; the output grid size is given
explicitly, so asymmetric padding ("same" with an even kernel) and a transposed convolution's
``output_padding`` need no special case.

Layouts: ``x`` (N, C, *size) and ``col`` (C, *kernel_size, N, *output_size), both C-contiguous. The
batch sits between kernel and output dims so that ``col.reshape(C·prod(kernel), N·prod(output))`` is
the right operand of ONE GEMM for the whole batch: a few large GEMMs keep BLAS busy where a loop of
N small ones spends its time starting threads.

The NumPy reference loops over kernel offsets (any number of dims) copying one strided slice each.
The Numba and CUDA kernels promote 1- and 2-d windows to 3-d (leading dims of size 1), so a single
loop nest serves all three ranks.
"""

from __future__ import annotations

import itertools

import numpy as np
from numba import njit, prange

from .dispatch import is_gpu, pick


def im2col(
    x, kernel_size: tuple, stride: tuple, padding: tuple, dilation: tuple, output_size: tuple
):
    """Gather sliding windows: (N, C, *size) -> (C, *kernel_size, N, *output_size)."""
    # CPU: the reference's one strided slice copy per kernel offset beats the Numba loop (measured:
    # 3 ms vs 5 ms for a (64, 32, 14, 14) input and a 3x3 window), so both modes use it
    implementation = pick(x, im2col_reference, im2col_reference, im2col_cupy)
    return implementation(x, kernel_size, stride, padding, dilation, output_size)


def col2im(col, size: tuple, stride: tuple, padding: tuple, dilation: tuple):
    """Scatter-add windows back: (C, *kernel_size, N, *output_size) -> (N, C, *size)."""
    return pick(col, col2im_reference, col2im_numba, col2im_cupy)(
        col, size, stride, padding, dilation
    )


def _check_steps(stride, dilation) -> None:
    """Raise unless every stride and dilation is >= 1: col2im's Numba and CUDA loops index by
    o·s + k·d and stay inside the planes only then."""
    if min(stride) < 1 or min(dilation) < 1:
        raise ValueError(f"col2im: expected strides and dilations >= 1, got stride "
                         f"{tuple(stride)} and dilation {tuple(dilation)}")


# ----- NumPy reference (also CuPy array code on GPU) ----------------------------------------------


def _array_module(array):
    if is_gpu(array):
        import cupy

        return cupy
    return np


def _pads(size, kernel_size, stride, padding, dilation, output_size) -> list:
    """(low, high) zero padding per dim that makes every window of the output grid fit."""
    return [
        (p, max(0, (o - 1) * s + (k - 1) * d + 1 - p - n))
        for n, k, s, p, d, o in zip(size, kernel_size, stride, padding, dilation, output_size)
    ]


def _windows(kernel_size, stride, dilation, output_size):
    """For each kernel offset: the offset and the strided slices of the padded input it reads."""
    for offset in itertools.product(*(range(k) for k in kernel_size)):
        yield (
            offset,
            tuple(
                slice(j * d, j * d + (o - 1) * s + 1, s)
                for j, d, o, s in zip(offset, dilation, output_size, stride)
            ),
        )


def _batch_first(col, dims: int):
    """A view of col (C, *K, N, *O) with axes (N, C, *K, *O)."""
    return col.transpose(
        (1 + dims, 0) + tuple(range(1, 1 + dims)) + tuple(range(2 + dims, 2 + 2 * dims))
    )


def im2col_reference(x, kernel_size, stride, padding, dilation, output_size):
    xp = _array_module(x)
    N, C, *size = x.shape
    pads = _pads(size, kernel_size, stride, padding, dilation, output_size)
    padded = xp.pad(x, [(0, 0), (0, 0)] + pads)  # (N, C, *padded size)
    col = xp.empty((C, *kernel_size, N, *output_size), dtype=x.dtype)
    view = _batch_first(col, len(size))  # (N, C, *K, *O)
    for offset, window in _windows(kernel_size, stride, dilation, output_size):
        view[(slice(None), slice(None)) + offset] = padded[(Ellipsis,) + window]  # (N, C, *O)
    return col


def col2im_reference(col, size, stride, padding, dilation):
    xp = _array_module(col)
    dims = len(size)
    C, kernel_size, N, output_size = (
        col.shape[0],
        col.shape[1 : 1 + dims],
        col.shape[1 + dims],
        col.shape[2 + dims :],
    )
    pads = _pads(size, kernel_size, stride, padding, dilation, output_size)
    padded = xp.zeros(
        (N, C) + tuple(n + lo + hi for n, (lo, hi) in zip(size, pads)), dtype=col.dtype
    )
    view = _batch_first(col, dims)  # (N, C, *K, *O)
    for offset, window in _windows(kernel_size, stride, dilation, output_size):
        # within one offset the windows' pixels are distinct, so a plain += accumulates correctly
        padded[(Ellipsis,) + window] += view[(slice(None), slice(None)) + offset]
    return padded[(Ellipsis,) + tuple(slice(lo, lo + n) for n, (lo, _) in zip(size, pads))].copy()


# ----- Numba (CPU) --------------------------------------------------------------------------------


def _as_3d(values: tuple, fill: int) -> tuple:
    """A per-dim tuple padded at the front to 3 dims (a 2-d window is a 3-d one of depth 1)."""
    if len(values) > 3:
        raise ValueError(f"im2col/col2im: the Numba and CUDA kernels take 1 to 3 spatial dims, "
                         f"got {len(values)}: {tuple(values)}")
    return (fill,) * (3 - len(values)) + tuple(int(v) for v in values)


def im2col_numba(x, kernel_size, stride, padding, dilation, output_size):
    N, C, *size = x.shape
    x3 = np.ascontiguousarray(x).reshape((N, C) + _as_3d(size, 1))  # (N, C, D, H, W)
    col = np.empty((C,) + _as_3d(kernel_size, 1) + (N,) + _as_3d(output_size, 1), dtype=x.dtype)
    _im2col_loop(x3, col, _as_3d(stride, 1), _as_3d(padding, 0), _as_3d(dilation, 1))
    return col.reshape((C, *kernel_size, N, *output_size))


def col2im_numba(col, size, stride, padding, dilation):
    _check_steps(stride, dilation)
    dims = len(size)
    C, kernel_size, N, output_size = (
        col.shape[0],
        col.shape[1 : 1 + dims],
        col.shape[1 + dims],
        col.shape[2 + dims :],
    )
    col3 = np.ascontiguousarray(col).reshape(
        (C,) + _as_3d(kernel_size, 1) + (N,) + _as_3d(output_size, 1)
    )
    pads = _pads(size, kernel_size, stride, padding, dilation, output_size)
    # accumulate into the padded planes, where every window fits: the loop needs no bounds checks
    padded = np.zeros(
        (N, C) + _as_3d([n + lo + hi for n, (lo, hi) in zip(size, pads)], 1), dtype=col.dtype
    )  # (N, C, Dp, Hp, Wp)
    _col2im_loop(col3, padded, _as_3d(stride, 1), _as_3d(dilation, 1))
    inside = tuple(slice(lo, lo + n) for n, (lo, _) in zip(size, pads))
    return padded.reshape((N, C) + padded.shape[5 - dims :])[(Ellipsis,) + inside].copy()


@njit(cache=True, parallel=True)
def _im2col_loop(x, col, stride, padding, dilation):
    # parallel over (channel, kernel offset, image): each task fills its own (OD, OH, OW) block
    N, C, D, H, W = x.shape
    KD, KH, KW, _, OD, OH, OW = col.shape[1:]
    for task in prange(C * KD * KH * KW * N):
        n = task % N
        kw = task // N % KW
        kh = task // (N * KW) % KH
        kd = task // (N * KW * KH) % KD
        c = task // (N * KW * KH * KD)
        for od in range(OD):
            i = od * stride[0] - padding[0] + kd * dilation[0]
            for oh in range(OH):
                j = oh * stride[1] - padding[1] + kh * dilation[1]
                inside = 0 <= i < D and 0 <= j < H
                for ow in range(OW):
                    k = ow * stride[2] - padding[2] + kw * dilation[2]
                    if inside and 0 <= k < W:
                        col[c, kd, kh, kw, n, od, oh, ow] = x[n, c, i, j, k]
                    else:
                        col[c, kd, kh, kw, n, od, oh, ow] = 0


@njit(cache=True, parallel=True)
def _col2im_loop(col, padded, stride, dilation):
    # parallel over channels: a task adds into its own channel of every image, so no races. Per
    # image, all kernel offsets add into one padded plane while it sits in L1; the padded target
    # needs no bounds checks, and unit stride along W makes the inner loop a contiguous add
    C, KD, KH, KW, N, OD, OH, OW = col.shape
    SD, SH, SW = stride
    DD, DH, DW = dilation
    for c in prange(C):
        for n in range(N):
            plane = padded[n, c]  # (Dp, Hp, Wp)
            for kd in range(KD):
                for kh in range(KH):
                    for kw in range(KW):
                        source = col[c, kd, kh, kw, n]  # (OD, OH, OW)
                        for od in range(OD):
                            for oh in range(OH):
                                target = plane[od * SD + kd * DD, oh * SH + kh * DH]  # (Wp,)
                                row = source[od, oh]  # (OW,)
                                if SW == 1:
                                    start = kw * DW
                                    for ow in range(OW):
                                        target[start + ow] += row[ow]
                                else:
                                    for ow in range(OW):
                                        target[ow * SW + kw * DW] += row[ow]


# ----- CuPy (GPU) ---------------------------------------------------------------------------------

# geometry, int64[20], 1-/2-d promoted to 3-d:
# N, C, size[3], kernel[3], out[3], stride[3], pad[3], dil[3]
_GEOMETRY = r"""
struct Geometry { long long N, C, size[3], kernel[3], out[3], stride[3], pad[3], dil[3]; };

__device__ Geometry load_geometry(const long long* g) {
    Geometry r;
    r.N = g[0]; r.C = g[1];
    for (int i = 0; i < 3; ++i) {
        r.size[i] = g[2 + i]; r.kernel[i] = g[5 + i]; r.out[i] = g[8 + i];
        r.stride[i] = g[11 + i]; r.pad[i] = g[14 + i]; r.dil[i] = g[17 + i];
    }
    return r;
}
"""

IM2COL_SOURCE = (
    _GEOMETRY
    + r"""
// one thread per col element (c, kd, kh, kw, n, od, oh, ow): a gather, no write conflicts
template <typename T>
__device__ void im2col(const T* x, T* col, const long long* geometry, long long total) {
    Geometry g = load_geometry(geometry);
    long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= total) return;
    long long rest = index, o[3], k[3];
    for (int i = 2; i >= 0; --i) { o[i] = rest % g.out[i]; rest /= g.out[i]; }
    long long n = rest % g.N;
    rest /= g.N;
    for (int i = 2; i >= 0; --i) { k[i] = rest % g.kernel[i]; rest /= g.kernel[i]; }
    long long offset = n * g.C + rest;  // rest is now the channel
    for (int i = 0; i < 3; ++i) {
        long long q = o[i] * g.stride[i] - g.pad[i] + k[i] * g.dil[i];
        if (q < 0 || q >= g.size[i]) { col[index] = T(0); return; }
        offset = offset * g.size[i] + q;
    }
    col[index] = x[offset];
}

extern "C" __global__ void minidl_im2col_float32(
    const float* x, float* col, const long long* g, long long total) {
    im2col(x, col, g, total);
}
extern "C" __global__ void minidl_im2col_float64(
    const double* x, double* col, const long long* g, long long total) {
    im2col(x, col, g, total);
}
"""
)

COL2IM_SOURCE = (
    _GEOMETRY
    + r"""
// one thread per image element (n, c, d, h, w): it gathers every col entry read from it, so the
// sum needs no atomics and is deterministic
template <typename T>
__device__ void col2im(const T* col, T* x, const long long* geometry, long long total) {
    Geometry g = load_geometry(geometry);
    long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= total) return;
    long long rest = index, q[3];
    for (int i = 2; i >= 0; --i) { q[i] = rest % g.size[i]; rest /= g.size[i]; }
    long long c = rest % g.C, n = rest / g.C;
    long long windows = g.kernel[0] * g.kernel[1] * g.kernel[2];
    long long grid = g.out[0] * g.out[1] * g.out[2];
    T sum = T(0);
    for (long long w = 0; w < windows; ++w) {
        long long k[3] = {w / (g.kernel[1] * g.kernel[2]), (w / g.kernel[2]) % g.kernel[1],
                          w % g.kernel[2]};
        long long cell = 0;
        bool hit = true;
        for (int i = 0; i < 3 && hit; ++i) {
            long long t = q[i] + g.pad[i] - k[i] * g.dil[i];  // = o * stride when window o reads q
            hit = t >= 0 && t % g.stride[i] == 0 && t / g.stride[i] < g.out[i];
            cell = cell * g.out[i] + t / g.stride[i];
        }
        if (hit) sum += col[((c * windows + w) * g.N + n) * grid + cell];
    }
    x[index] = sum;
}

extern "C" __global__ void minidl_col2im_float32(
    const float* col, float* x, const long long* g, long long total) {
    col2im(col, x, g, total);
}
extern "C" __global__ void minidl_col2im_float64(
    const double* col, double* x, const long long* g, long long total) {
    col2im(col, x, g, total);
}
"""
)

CUDA_SOURCES = {"minidl_im2col": IM2COL_SOURCE, "minidl_col2im": COL2IM_SOURCE}
_compiled: dict = {}


def _cuda_kernel(op: str, dtype):
    """The compiled ``minidl_<op>_<dtype>`` kernel, built on first use and cached."""
    import cupy

    if np.dtype(dtype).name not in ("float32", "float64"):
        raise TypeError(
            f"{op}: the CUDA kernel supports float32 and float64, got {np.dtype(dtype)}"
        )
    name = f"minidl_{op}_{np.dtype(dtype).name}"
    if name not in _compiled:
        _compiled[name] = cupy.RawKernel(CUDA_SOURCES[f"minidl_{op}"], name)
    return _compiled[name]


def _launch(op: str, source, target, threads_over, geometry: tuple) -> None:
    """Run ``minidl_<op>`` with one thread per element of ``threads_over``."""
    import cupy

    total, threads = threads_over.size, 256
    if total == 0:
        return
    geometry = cupy.asarray(np.array(geometry, dtype=np.int64))
    kernel = _cuda_kernel(op, target.dtype)
    kernel(
        ((total + threads - 1) // threads,), (threads,), (source, target, geometry, np.int64(total))
    )


def _geometry(N, C, size, kernel_size, output_size, stride, padding, dilation) -> tuple:
    return (
        (N, C)
        + _as_3d(size, 1)
        + _as_3d(kernel_size, 1)
        + _as_3d(output_size, 1)
        + _as_3d(stride, 1)
        + _as_3d(padding, 0)
        + _as_3d(dilation, 1)
    )


def im2col_cupy(x, kernel_size, stride, padding, dilation, output_size):
    import cupy

    N, C, *size = x.shape
    x = cupy.ascontiguousarray(x)
    col = cupy.empty((C, *kernel_size, N, *output_size), dtype=x.dtype)
    _launch(
        "im2col",
        x,
        col,
        col,
        _geometry(N, C, size, kernel_size, output_size, stride, padding, dilation),
    )
    return col


def col2im_cupy(col, size, stride, padding, dilation):
    import cupy

    _check_steps(stride, dilation)
    dims = len(size)
    C, kernel_size, N, output_size = (
        col.shape[0],
        col.shape[1 : 1 + dims],
        col.shape[1 + dims],
        col.shape[2 + dims :],
    )
    col = cupy.ascontiguousarray(col)
    x = cupy.empty((N, C, *size), dtype=col.dtype)
    _launch(
        "col2im",
        col,
        x,
        x,
        _geometry(N, C, size, kernel_size, output_size, stride, padding, dilation),
    )
    return x
