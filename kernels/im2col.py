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
On CPU im2col is that reference (``cpu=None``): a Numba loop measured up to 2x slower right after a
GEMM and was removed (benchmarks/results/kernels.md, "Removed"). col2im's Numba loop and both CUDA
kernels promote 1- and 2-d windows to 3-d (``windows.as_3d``), so one loop nest serves all ranks.
"""

from __future__ import annotations

import itertools

import numpy as np
from numba import njit, prange

from .dispatch import array_module, cuda_kernel, cupy, launch, pick
from .windows import as_3d, offset_slices, pads_to_fit


def im2col(
    x, kernel_size: tuple, stride: tuple, padding: tuple, dilation: tuple, output_size: tuple
):
    """Gather sliding windows: (N, C, *size) -> (C, *kernel_size, N, *output_size)."""
    implementation = pick(x, im2col_reference, gpu=im2col_cupy)
    return implementation(x, kernel_size, stride, padding, dilation, output_size)


def col2im(col, size: tuple, stride: tuple, padding: tuple, dilation: tuple):
    """Scatter-add windows back: (C, *kernel_size, N, *output_size) -> (N, C, *size)."""
    return pick(col, col2im_reference, col2im_numba, col2im_cupy)(
        col, size, stride, padding, dilation
    )


def _col_layout(col, dims: int) -> tuple:
    """(C, kernel_size, N, output_size) of a col (C, *kernel_size, N, *output_size)."""
    return col.shape[0], col.shape[1 : 1 + dims], col.shape[1 + dims], col.shape[2 + dims :]


def _check_steps(stride, dilation) -> None:
    """Raise unless every stride and dilation is >= 1: col2im's Numba and CUDA loops index by
    o·s + k·d and stay inside the planes only then."""
    if min(stride) < 1 or min(dilation) < 1:
        raise ValueError(f"col2im: expected strides and dilations >= 1, got stride "
                         f"{tuple(stride)} and dilation {tuple(dilation)}")


# ----- NumPy reference (also CuPy array code on GPU) ----------------------------------------------


def _batch_first(col, dims: int):
    """A view of col (C, *K, N, *O) with axes (N, C, *K, *O)."""
    return col.transpose(
        (1 + dims, 0) + tuple(range(1, 1 + dims)) + tuple(range(2 + dims, 2 + 2 * dims))
    )


def im2col_reference(x, kernel_size, stride, padding, dilation, output_size):
    xp = array_module(x)
    N, C, *size = x.shape
    pads = pads_to_fit(size, kernel_size, stride, padding, dilation, output_size)
    padded = xp.pad(x, [(0, 0), (0, 0)] + pads)  # (N, C, *padded size)
    col = xp.empty((C, *kernel_size, N, *output_size), dtype=x.dtype)
    view = _batch_first(col, len(size))  # (N, C, *K, *O)
    for offset, window in offset_slices(kernel_size, stride, dilation, output_size):
        view[(slice(None), slice(None)) + offset] = padded[(Ellipsis,) + window]  # (N, C, *O)
    return col


def col2im_reference(col, size, stride, padding, dilation):
    xp = array_module(col)
    C, kernel_size, N, output_size = _col_layout(col, len(size))
    pads = pads_to_fit(size, kernel_size, stride, padding, dilation, output_size)
    padded = xp.zeros(
        (N, C) + tuple(n + lo + hi for n, (lo, hi) in zip(size, pads)), dtype=col.dtype
    )
    view = _batch_first(col, len(size))  # (N, C, *K, *O)
    for offset, window in offset_slices(kernel_size, stride, dilation, output_size):
        # within one offset the windows' pixels are distinct, so a plain += accumulates correctly
        padded[(Ellipsis,) + window] += view[(slice(None), slice(None)) + offset]
    return padded[(Ellipsis,) + tuple(slice(lo, lo + n) for n, (lo, _) in zip(size, pads))].copy()


# ----- Numba (CPU) --------------------------------------------------------------------------------


def col2im_numba(col, size, stride, padding, dilation):
    _check_steps(stride, dilation)
    dims = len(size)
    C, kernel_size, N, output_size = _col_layout(col, dims)
    col3 = np.ascontiguousarray(col).reshape(
        (C,) + as_3d(kernel_size, 1, "col2im") + (N,) + as_3d(output_size, 1, "col2im")
    )  # (C, KD, KH, KW, N, OD, OH, OW)
    pads = pads_to_fit(size, kernel_size, stride, padding, dilation, output_size)
    # accumulate into the padded planes, where every window fits: the loop needs no bounds checks
    padded = np.zeros(
        (N, C) + as_3d([n + lo + hi for n, (lo, hi) in zip(size, pads)], 1, "col2im"),
        dtype=col.dtype,
    )  # (N, C, Dp, Hp, Wp)
    _col2im_loop(col3, padded, as_3d(stride, 1, "col2im"), as_3d(dilation, 1, "col2im"))
    inside = tuple(slice(lo, lo + n) for n, (lo, _) in zip(size, pads))
    return padded.reshape((N, C) + padded.shape[5 - dims :])[(Ellipsis,) + inside].copy()


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


# ----- CuPy (GPU): T is the element type (dispatch.cuda_prelude) --------------------------------

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
extern "C" __global__ void minidl_im2col(const T* x, T* col, const long long* geometry,
                                         long long total) {
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
"""
)

COL2IM_SOURCE = (
    _GEOMETRY
    + r"""
// one thread per image element (n, c, d, h, w): it gathers every col entry read from it, so the
// sum needs no atomics and is deterministic
extern "C" __global__ void minidl_col2im(const T* col, T* x, const long long* geometry,
                                         long long total) {
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
"""
)

CUDA_SOURCES = {"minidl_im2col": IM2COL_SOURCE, "minidl_col2im": COL2IM_SOURCE}


def _launch(name: str, source, target, N: int, C: int, size, kernel_size, output_size, stride,
            padding, dilation) -> None:
    """Run ``name`` from ``source`` into ``target``, one thread per element of ``target``; the
    geometry goes as an int64[20] of 3-d values: N, C, size, kernel, out, stride, pad, dil."""
    xp = cupy()
    per_dim = ((size, 1), (kernel_size, 1), (output_size, 1), (stride, 1), (padding, 0),
               (dilation, 1))  # with as_3d's fill: 1 for sizes and steps, 0 for padding
    promoted = itertools.chain(*(as_3d(values, fill, name) for values, fill in per_dim))
    geometry = xp.asarray(np.array([N, C, *promoted], dtype=np.int64))  # int64[20]
    kernel = cuda_kernel(CUDA_SOURCES[name], name, target.dtype)
    launch(kernel, target.size, source, target, geometry, np.int64(target.size))


def im2col_cupy(x, kernel_size, stride, padding, dilation, output_size):
    xp = cupy()
    N, C, *size = x.shape
    x = xp.ascontiguousarray(x)
    col = xp.empty((C, *kernel_size, N, *output_size), dtype=x.dtype)
    _launch("minidl_im2col", x, col, N, C, size, kernel_size, output_size, stride, padding,
            dilation)
    return col


def col2im_cupy(col, size, stride, padding, dilation):
    xp = cupy()
    _check_steps(stride, dilation)
    C, kernel_size, N, output_size = _col_layout(col, len(size))
    col = xp.ascontiguousarray(col)
    x = xp.empty((N, C, *size), dtype=col.dtype)
    _launch("minidl_col2im", col, x, N, C, size, kernel_size, output_size, stride, padding,
            dilation)
    return x
