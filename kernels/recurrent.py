"""LSTM and GRU cell gate math: the pointwise part of one time step, forward and backward.

The recurrence's GEMMs stay with the caller (minidl/ops/recurrent.py); these kernels fuse the
dozen elementwise ops that follow them into one pass. Layouts, all C-contiguous, ``B`` rows::

    xw, hw   (B, G·H)  the two pre-activations x W_ihᵀ + b_ih and h W_hhᵀ + b_hh, gates stacked
                       in PyTorch's order (LSTM i f g o, G = 4; GRU r z n, G = 3)
    gates    (B, G·H)  the activated gates, saved by the forward for the backward
    h, c     (B, H)    hidden and cell state

Every function writes into the ``*_out`` arrays it is given (the caller preallocates the whole
sequence and passes one step's slice) and returns nothing. σ(x) is computed as ½ tanh(x/2) + ½,
which never overflows. The Numba and CUDA kernels index every array by (B, H), so they raise a
ValueError for an array of another shape rather than read or write past it (the Numba loops
compare the shapes before they start, ``_check_shapes`` then names the culprit).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from .dispatch import cuda_kernel, launch, pick


def lstm_cell_forward(xw, hw, c, h_out, c_out, gates_out) -> None:
    """i f g o = σ σ tanh σ (xw + hw);  c' = f c + i g;  h' = o tanh(c')."""
    pick(c, lstm_cell_forward_reference, lstm_cell_forward_numba, lstm_cell_forward_cupy)(
        xw, hw, c, h_out, c_out, gates_out)


def lstm_cell_backward(gates, c, c_new, gh, gc, g_pre_out, gc_out) -> None:
    """gc* = gc + gh o (1 - tanh²c');  g_pre = (gc* g, gc* c, gc* i, gh tanh c') act';  gc = gc* f.

    ``gh``, ``gc`` are the gradients of h' and c'; ``g_pre_out`` gets the gradient of the
    pre-activation xw + hw (B, 4H), act' being σ' = s(1 - s) or tanh' = 1 - t² of each gate;
    ``gc_out`` (the gradient of c) may be the same array as ``gc``.
    """
    pick(c, lstm_cell_backward_reference, lstm_cell_backward_numba, lstm_cell_backward_cupy)(
        gates, c, c_new, gh, gc, g_pre_out, gc_out)


def gru_cell_forward(xw, hw, h, h_out, gates_out) -> None:
    """r z = σ(xw + hw);  n = tanh(xw_n + r hw_n);  h' = (1 - z) n + z h."""
    pick(h, gru_cell_forward_reference, gru_cell_forward_numba, gru_cell_forward_cupy)(
        xw, hw, h, h_out, gates_out)


def gru_cell_backward(gates, hw, h, gh, g_xw_out, g_hw_out, gh_out) -> None:
    """gn = gh (1 - z)(1 - n²);  gz = gh (h - n) z (1 - z);  gr = gn hw_n r (1 - r);  gh_out = gh z.

    ``g_xw_out`` = (gr, gz, gn) and ``g_hw_out`` = (gr, gz, gn r) are the gradients of the two
    pre-activations; ``gh_out`` is the part of h's gradient that skips W_hh (the caller adds
    g_hw W_hh).
    """
    pick(h, gru_cell_backward_reference, gru_cell_backward_numba, gru_cell_backward_cupy)(
        gates, hw, h, gh, g_xw_out, g_hw_out, gh_out)


# ----- NumPy reference (NumPy's ufuncs also run CuPy arrays) ------------------------------------

def _sigmoid(x):
    return 0.5 * np.tanh(0.5 * x) + 0.5


def lstm_cell_forward_reference(xw, hw, c, h_out, c_out, gates_out) -> None:
    H = c.shape[-1]
    pre = xw + hw  # (B, 4H)
    gates_out[:, :2 * H] = _sigmoid(pre[:, :2 * H])
    gates_out[:, 2 * H:3 * H] = np.tanh(pre[:, 2 * H:3 * H])
    gates_out[:, 3 * H:] = _sigmoid(pre[:, 3 * H:])
    i, f, g, o = (gates_out[:, k * H:(k + 1) * H] for k in range(4))  # each (B, H)
    c_out[...] = f * c + i * g
    h_out[...] = o * np.tanh(c_out)


def lstm_cell_backward_reference(gates, c, c_new, gh, gc, g_pre_out, gc_out) -> None:
    H = c.shape[-1]
    i, f, g, o = (gates[:, k * H:(k + 1) * H] for k in range(4))  # each (B, H)
    tanh_c = np.tanh(c_new)
    gc_total = gc + gh * o * (1 - tanh_c * tanh_c)
    g_pre_out[:, :H] = gc_total * g * i * (1 - i)
    g_pre_out[:, H:2 * H] = gc_total * c * f * (1 - f)
    g_pre_out[:, 2 * H:3 * H] = gc_total * i * (1 - g * g)
    g_pre_out[:, 3 * H:] = gh * tanh_c * o * (1 - o)
    gc_out[...] = gc_total * f


def gru_cell_forward_reference(xw, hw, h, h_out, gates_out) -> None:
    H = h.shape[-1]
    gates_out[:, :2 * H] = _sigmoid(xw[:, :2 * H] + hw[:, :2 * H])  # r, z
    r, z = gates_out[:, :H], gates_out[:, H:2 * H]
    gates_out[:, 2 * H:] = np.tanh(xw[:, 2 * H:] + r * hw[:, 2 * H:])
    n = gates_out[:, 2 * H:]
    h_out[...] = (1 - z) * n + z * h


def gru_cell_backward_reference(gates, hw, h, gh, g_xw_out, g_hw_out, gh_out) -> None:
    H = h.shape[-1]
    r, z, n = (gates[:, k * H:(k + 1) * H] for k in range(3))  # each (B, H)
    gn = gh * (1 - z) * (1 - n * n)
    g_xw_out[:, :H] = gn * hw[:, 2 * H:] * r * (1 - r)
    g_xw_out[:, H:2 * H] = gh * (h - n) * z * (1 - z)
    g_xw_out[:, 2 * H:] = gn
    g_hw_out[:, :2 * H] = g_xw_out[:, :2 * H]
    g_hw_out[:, 2 * H:] = gn * r
    gh_out[...] = gh * z


# ----- Numba (CPU) ----------------------------------------------------------------------------
# One batch row at a time, each gate block a 1-d view: LLVM vectorises the inner loops only with
# row views, with error_model="numpy" (no ZeroDivisionError check on each division) and with the
# vectorisable tanh below. Serial on purpose: at B = 32/64, H = 128 a step's gate math takes
# 10-30 µs, less than what prange's thread hand-off cost here (measured slower, 2 cores).

# Each loop returns False, having touched nothing, when an array's shape does not fit (B, H).
def lstm_cell_forward_numba(xw, hw, c, h_out, c_out, gates_out) -> None:
    if not _lstm_forward_loop(xw, hw, c, h_out, c_out, gates_out):
        _check_shapes("lstm_cell_forward", 4, xw=xw, hw=hw, c=c, h_out=h_out, c_out=c_out,
                      gates_out=gates_out)


def lstm_cell_backward_numba(gates, c, c_new, gh, gc, g_pre_out, gc_out) -> None:
    if not _lstm_backward_loop(gates, c, c_new, gh, gc, g_pre_out, gc_out):
        _check_shapes("lstm_cell_backward", 4, gates=gates, c=c, c_new=c_new, gh=gh, gc=gc,
                      g_pre_out=g_pre_out, gc_out=gc_out)


def gru_cell_forward_numba(xw, hw, h, h_out, gates_out) -> None:
    if not _gru_forward_loop(xw, hw, h, h_out, gates_out):
        _check_shapes("gru_cell_forward", 3, xw=xw, hw=hw, h=h, h_out=h_out, gates_out=gates_out)


def gru_cell_backward_numba(gates, hw, h, gh, g_xw_out, g_hw_out, gh_out) -> None:
    if not _gru_backward_loop(gates, hw, h, gh, g_xw_out, g_hw_out, gh_out):
        _check_shapes("gru_cell_backward", 3, gates=gates, hw=hw, h=h, gh=gh, g_xw_out=g_xw_out,
                      g_hw_out=g_hw_out, gh_out=gh_out)


# the arrays with the gates stacked, (B, G·H); every other array of a cell is (B, H)
_STACKED = {"xw", "hw", "gates", "gates_out", "g_pre_out", "g_xw_out", "g_hw_out"}


def _check_shapes(op: str, gate_count: int, **arrays) -> tuple:
    """(B, H), the shape of the first state array; raise a ValueError naming the first array that
    is not (B, G·H) (the ``_STACKED`` ones) or (B, H) (the others)."""
    state = next(name for name in arrays if name not in _STACKED)
    if arrays[state].ndim != 2:
        raise ValueError(f"{op}: expected {state} of shape (B, H), got {arrays[state].shape}")
    B, H = arrays[state].shape
    for name, array in arrays.items():
        shape = (B, gate_count * H) if name in _STACKED else (B, H)
        if array.shape != shape:
            raise ValueError(f"{op}: expected {name} of shape {shape} for {state} of shape "
                             f"{(B, H)}, got {array.shape}")
    return B, H


def _tanh_scalar(x):
    """tanh inside the Numba loops; compiled per dtype by the overload below."""
    return math.tanh(x)


@overload(_tanh_scalar)
def _tanh_compiled(x):
    # libm's scalar tanh costs ~4x NumPy's SIMD one; in float32 a rational function (Eigen's
    # ptanh_float, max error 4e-7) vectorises. float64 keeps libm, for gradcheck's precision.
    if x == types.float32:
        return lambda x: _tanh_float32(x)
    return lambda x: math.tanh(x)


@njit(cache=True, error_model="numpy")
def _tanh_float32(x):
    """tanh(x) ≈ x P(x²) / Q(x²) on [-7.9, 7.9] (beyond, ±1 in float32), Horner's rule."""
    x = min(max(x, np.float32(-7.9053111)), np.float32(7.9053111))
    x2 = x * x
    p = x2 * np.float32(-2.76076847742355e-16) + np.float32(2.00018790482477e-13)
    p = x2 * p + np.float32(-8.60467152213735e-11)
    p = x2 * p + np.float32(5.12229709037114e-08)
    p = x2 * p + np.float32(1.48572235717979e-05)
    p = x2 * p + np.float32(6.37261928875436e-04)
    p = x2 * p + np.float32(4.89352455891786e-03)
    q = x2 * np.float32(1.19825839466702e-06) + np.float32(1.18534705686654e-04)
    q = x2 * q + np.float32(2.26843463243900e-03)
    q = x2 * q + np.float32(4.89352518554385e-03)
    return x * p / q


# float32 constants: a float64 literal would promote float32 math to float64 (exact for both)
_HALF, _ONE = np.float32(0.5), np.float32(1.0)


@njit(cache=True, error_model="numpy")
def _sigmoid_scalar(x):
    return _HALF * _tanh_scalar(_HALF * x) + _HALF


@njit(cache=True, error_model="numpy")
def _lstm_forward_loop(xw, hw, c, h_out, c_out, gates_out):
    # Every gate block a view indexed from 0: LLVM left a loop over range(2 * H, 3 * H) scalar
    # (measured 4x slower than range(H) over the view); one pass keeps each gate in a register.
    B, H = c.shape
    if not (xw.shape == hw.shape == gates_out.shape == (B, 4 * H)
            and h_out.shape == c_out.shape == (B, H)):
        return False
    for b in range(B):
        x, w, a = xw[b], hw[b], gates_out[b]  # (4H,) each
        xi, xf, xg, xo = x[:H], x[H:2 * H], x[2 * H:3 * H], x[3 * H:]  # (H,) each
        wi, wf, wg, wo = w[:H], w[H:2 * H], w[2 * H:3 * H], w[3 * H:]
        i, f, g, o = a[:H], a[H:2 * H], a[2 * H:3 * H], a[3 * H:]
        c_prev, c_new, h_new = c[b], c_out[b], h_out[b]
        for j in range(H):
            i_j = _sigmoid_scalar(xi[j] + wi[j])
            f_j = _sigmoid_scalar(xf[j] + wf[j])
            g_j = _tanh_scalar(xg[j] + wg[j])
            o_j = _sigmoid_scalar(xo[j] + wo[j])
            c_j = f_j * c_prev[j] + i_j * g_j
            i[j], f[j], g[j], o[j], c_new[j] = i_j, f_j, g_j, o_j, c_j
            h_new[j] = o_j * _tanh_scalar(c_j)
    return True


@njit(cache=True, error_model="numpy")
def _lstm_backward_loop(gates, c, c_new, gh, gc, g_pre_out, gc_out):
    B, H = c.shape
    if not (gates.shape == g_pre_out.shape == (B, 4 * H)
            and c_new.shape == gh.shape == gc.shape == gc_out.shape == (B, H)):
        return False
    for b in range(B):
        a, g_pre = gates[b], g_pre_out[b]  # (4H,) each
        i, f, g, o = a[:H], a[H:2 * H], a[2 * H:3 * H], a[3 * H:]
        gi, gf, gg, go = g_pre[:H], g_pre[H:2 * H], g_pre[2 * H:3 * H], g_pre[3 * H:]
        c_prev, c_next, gh_b, gc_b, gc_prev = c[b], c_new[b], gh[b], gc[b], gc_out[b]  # (H,) each
        for j in range(H):
            tanh_c = _tanh_scalar(c_next[j])
            gc_total = gc_b[j] + gh_b[j] * o[j] * (_ONE - tanh_c * tanh_c)
            gi[j] = gc_total * g[j] * i[j] * (_ONE - i[j])
            gf[j] = gc_total * c_prev[j] * f[j] * (_ONE - f[j])
            gg[j] = gc_total * i[j] * (_ONE - g[j] * g[j])
            go[j] = gh_b[j] * tanh_c * o[j] * (_ONE - o[j])
            gc_prev[j] = gc_total * f[j]
    return True


@njit(cache=True, error_model="numpy")
def _gru_forward_loop(xw, hw, h, h_out, gates_out):
    B, H = h.shape
    if not (xw.shape == hw.shape == gates_out.shape == (B, 3 * H) and h_out.shape == (B, H)):
        return False
    for b in range(B):
        x, w, a = xw[b], hw[b], gates_out[b]  # (3H,) each
        for k in range(2 * H):
            a[k] = _sigmoid_scalar(x[k] + w[k])
        r, z, n = a[:H], a[H:2 * H], a[2 * H:]
        x_n, w_n, h_prev, h_new = x[2 * H:], w[2 * H:], h[b], h_out[b]  # (H,) each
        for j in range(H):
            n[j] = _tanh_scalar(x_n[j] + r[j] * w_n[j])
            h_new[j] = (_ONE - z[j]) * n[j] + z[j] * h_prev[j]
    return True


@njit(cache=True, error_model="numpy")
def _gru_backward_loop(gates, hw, h, gh, g_xw_out, g_hw_out, gh_out):
    B, H = h.shape
    if not (gates.shape == hw.shape == g_xw_out.shape == g_hw_out.shape == (B, 3 * H)
            and gh.shape == gh_out.shape == (B, H)):
        return False
    for b in range(B):
        a, g_x, g_w = gates[b], g_xw_out[b], g_hw_out[b]  # (3H,) each
        r, z, n = a[:H], a[H:2 * H], a[2 * H:]
        w_n, h_prev, gh_b, gh_prev = hw[b, 2 * H:], h[b], gh[b], gh_out[b]  # (H,) each
        for j in range(H):
            gn = gh_b[j] * (_ONE - z[j]) * (_ONE - n[j] * n[j])
            gr = gn * w_n[j] * r[j] * (_ONE - r[j])
            gz = gh_b[j] * (h_prev[j] - n[j]) * z[j] * (_ONE - z[j])
            g_x[j], g_x[H + j], g_x[2 * H + j] = gr, gz, gn
            g_w[j], g_w[H + j], g_w[2 * H + j] = gr, gz, gn * r[j]
            gh_prev[j] = gh_b[j] * z[j]
    return True


# ----- CuPy (GPU) -------------------------------------------------------------------------------
# One thread per (row b, unit j); each writes only its own elements, so no synchronisation. T is
# the element type (dispatch.cuda_prelude).

_DEVICE_HELPERS = r"""
__device__ T minidl_sigmoid(T x) {
    return T(0.5) * tanh(T(0.5) * x) + T(0.5);
}
"""

LSTM_FORWARD_SOURCE = _DEVICE_HELPERS + r"""
extern "C" __global__ void minidl_lstm_cell_forward(
        const T* xw, const T* hw, const T* c, T* h_out, T* c_out, T* gates_out, long long B,
        long long H) {
    long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= B * H) return;
    long long b = index / H, j = index % H, row = b * 4 * H;
    T i = minidl_sigmoid(xw[row + j] + hw[row + j]);
    T f = minidl_sigmoid(xw[row + H + j] + hw[row + H + j]);
    T g = tanh(xw[row + 2 * H + j] + hw[row + 2 * H + j]);
    T o = minidl_sigmoid(xw[row + 3 * H + j] + hw[row + 3 * H + j]);
    T c_new = f * c[index] + i * g;
    gates_out[row + j] = i; gates_out[row + H + j] = f;
    gates_out[row + 2 * H + j] = g; gates_out[row + 3 * H + j] = o;
    c_out[index] = c_new;
    h_out[index] = o * tanh(c_new);
}
"""

LSTM_BACKWARD_SOURCE = r"""
extern "C" __global__ void minidl_lstm_cell_backward(
        const T* gates, const T* c, const T* c_new, const T* gh, const T* gc, T* g_pre_out,
        T* gc_out, long long B, long long H) {
    long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= B * H) return;
    long long b = index / H, j = index % H, row = b * 4 * H;
    T i = gates[row + j], f = gates[row + H + j];
    T g = gates[row + 2 * H + j], o = gates[row + 3 * H + j];
    T tanh_c = tanh(c_new[index]);
    T gc_total = gc[index] + gh[index] * o * (T(1) - tanh_c * tanh_c);
    g_pre_out[row + j] = gc_total * g * i * (T(1) - i);
    g_pre_out[row + H + j] = gc_total * c[index] * f * (T(1) - f);
    g_pre_out[row + 2 * H + j] = gc_total * i * (T(1) - g * g);
    g_pre_out[row + 3 * H + j] = gh[index] * tanh_c * o * (T(1) - o);
    gc_out[index] = gc_total * f;  // gc_out may alias gc: this thread alone reads and writes it
}
"""

GRU_FORWARD_SOURCE = _DEVICE_HELPERS + r"""
extern "C" __global__ void minidl_gru_cell_forward(
        const T* xw, const T* hw, const T* h, T* h_out, T* gates_out, long long B, long long H) {
    long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= B * H) return;
    long long b = index / H, j = index % H, row = b * 3 * H;
    T r = minidl_sigmoid(xw[row + j] + hw[row + j]);
    T z = minidl_sigmoid(xw[row + H + j] + hw[row + H + j]);
    T n = tanh(xw[row + 2 * H + j] + r * hw[row + 2 * H + j]);
    gates_out[row + j] = r; gates_out[row + H + j] = z; gates_out[row + 2 * H + j] = n;
    h_out[index] = (T(1) - z) * n + z * h[index];
}
"""

GRU_BACKWARD_SOURCE = r"""
extern "C" __global__ void minidl_gru_cell_backward(
        const T* gates, const T* hw, const T* h, const T* gh, T* g_xw_out, T* g_hw_out,
        T* gh_out, long long B, long long H) {
    long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= B * H) return;
    long long b = index / H, j = index % H, row = b * 3 * H;
    T r = gates[row + j], z = gates[row + H + j], n = gates[row + 2 * H + j];
    T gn = gh[index] * (T(1) - z) * (T(1) - n * n);
    T gr = gn * hw[row + 2 * H + j] * r * (T(1) - r);
    T gz = gh[index] * (h[index] - n) * z * (T(1) - z);
    g_xw_out[row + j] = gr; g_xw_out[row + H + j] = gz; g_xw_out[row + 2 * H + j] = gn;
    g_hw_out[row + j] = gr; g_hw_out[row + H + j] = gz; g_hw_out[row + 2 * H + j] = gn * r;
    gh_out[index] = gh[index] * z;
}
"""

CUDA_SOURCES = {
    "minidl_lstm_cell_forward": LSTM_FORWARD_SOURCE,
    "minidl_lstm_cell_backward": LSTM_BACKWARD_SOURCE,
    "minidl_gru_cell_forward": GRU_FORWARD_SOURCE,
    "minidl_gru_cell_backward": GRU_BACKWARD_SOURCE,
}


def _launch(op: str, gate_count: int, **arrays) -> None:
    """Run ``minidl_<op>`` with one thread per (b, j), after checking what it indexes by."""
    B, H = _check_shapes(op, gate_count, **arrays)
    arrays = tuple(arrays.values())
    if any(a.dtype != arrays[0].dtype for a in arrays):
        raise TypeError(f"{op}: the CUDA kernel needs arrays of one dtype, got "
                        f"{[str(a.dtype) for a in arrays]}")
    if any(not a.flags.c_contiguous for a in arrays):
        raise ValueError(f"{op}: the CUDA kernel needs C-contiguous arrays")
    kernel = cuda_kernel(CUDA_SOURCES[f"minidl_{op}"], f"minidl_{op}", arrays[0].dtype)
    launch(kernel, B * H, *arrays, np.int64(B), np.int64(H))


def lstm_cell_forward_cupy(xw, hw, c, h_out, c_out, gates_out) -> None:
    _launch("lstm_cell_forward", 4, xw=xw, hw=hw, c=c, h_out=h_out, c_out=c_out,
            gates_out=gates_out)


def lstm_cell_backward_cupy(gates, c, c_new, gh, gc, g_pre_out, gc_out) -> None:
    _launch("lstm_cell_backward", 4, gates=gates, c=c, c_new=c_new, gh=gh, gc=gc,
            g_pre_out=g_pre_out, gc_out=gc_out)


def gru_cell_forward_cupy(xw, hw, h, h_out, gates_out) -> None:
    _launch("gru_cell_forward", 3, xw=xw, hw=hw, h=h, h_out=h_out, gates_out=gates_out)


def gru_cell_backward_cupy(gates, hw, h, gh, g_xw_out, g_hw_out, gh_out) -> None:
    _launch("gru_cell_backward", 3, gates=gates, hw=hw, h=h, gh=gh, g_xw_out=g_xw_out,
            g_hw_out=g_hw_out, gh_out=gh_out)
