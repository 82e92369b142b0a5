"""Elementwise activations: ReLU, erf, and GELU forward/backward fused on top of erf.

ReLU: ``y = max(x, 0)`` (NaN stays NaN), ``gx = 0 where y <= 0 else gy`` (PyTorch's
``threshold_backward`` on the output: a select, so an infinite gy where y <= 0 gives 0, not NaN).
The Numba loops are serial: they are memory-bound, and a parallel launch costs more than the second
core gains (measured: (64, 32, 28, 28) float32 forward 2.1 ms for NumPy's ``maximum``, 1.0 ms
serial, 1.2 ms parallel; benchmarks/results/kernels.md).

NumPy has no erf, so the reference applies Python's ``math.erf`` element by element (slow, exact);
the Numba kernel calls the same libm function in a compiled loop; CuPy ships ``erf`` as a ufunc.

GELU, exact: ``y = x·Φ(x)``, ``Φ(x) = (1 + erf(x/√2))/2``, ``gx = gy·(Φ(x) + x·φ(x))`` with
``φ(x) = e^(-x²/2)/√(2π)``. Tanh form: ``y = x·(1 + t)/2``, ``t = tanh(k(x + 0.044715x³))``,
``k = √(2/π)``, ``gx = gy·((1 + t)/2 + x(1 - t²)·k(1 + 3·0.044715x²)/2)``. The fused kernels make
one pass instead of the array code's six to ten temporaries (measured in benchmarks/kernels.py).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .dispatch import array_module, cuda_kernel, cupy, cupyx, is_gpu, launch, pick

SQRT_HALF = 1 / math.sqrt(2)
INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
TANH_K = math.sqrt(2 / math.pi)
TANH_C = 0.044715
MODES = {"none": 0, "tanh": 1}


def relu_forward(x):
    """max(x, 0), elementwise, same dtype as ``x`` (the GPU runs the reference's array code)."""
    return pick(x, relu_forward_reference, relu_forward_numba if x.dtype.kind == "f" else None)(x)


def relu_backward(gy, y):
    """ReLU's input gradient from its output ``y``: 0 where y <= 0, else gy."""
    return pick(y, relu_backward_reference, relu_backward_numba if y.dtype.kind == "f" else None)(
        gy, y
    )


def erf(x):
    """The error function, elementwise, same dtype as ``x``."""
    return pick(x, erf_reference, erf_numba, erf_cupy)(x)


def gelu_forward(x, approximate: str = "none"):
    """GELU of ``x`` (``approximate`` 'none': exact erf form, 'tanh': the tanh form)."""
    return pick(x, gelu_forward_reference, gelu_forward_numba, gelu_forward_cupy)(x, approximate)


def gelu_backward(gy, x, approximate: str = "none"):
    """``gy·GELU'(x)``, same shape and dtype as ``gy``."""
    return pick(x, gelu_backward_reference, gelu_backward_numba, gelu_backward_cupy)(
        gy, x, approximate
    )


def relu_forward_reference(x):
    return array_module(x).maximum(x, 0)


def relu_backward_reference(gy, y):
    return array_module(y).where(y <= 0, 0, gy).astype(y.dtype, copy=False)


def erf_reference(x):
    if is_gpu(x):
        return erf_cupy(x)  # CuPy's erf is itself array code; nothing simpler to refer to
    return np.vectorize(math.erf, otypes=[x.dtype])(x)


def gelu_forward_reference(x, approximate: str = "none"):
    if approximate == "tanh":
        xp = array_module(x)
        return 0.5 * x * (1 + xp.tanh(TANH_K * (x + TANH_C * x**3)))
    return 0.5 * x * (1 + erf(x * SQRT_HALF))


def gelu_backward_reference(gy, x, approximate: str = "none"):
    xp = array_module(x)
    if approximate == "tanh":
        t = xp.tanh(TANH_K * (x + TANH_C * x**3))
        slope = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * TANH_K * (1 + 3 * TANH_C * x * x)
    else:
        cdf = 0.5 * (1 + erf(x * SQRT_HALF))
        slope = cdf + x * xp.exp(-0.5 * x * x) * INV_SQRT_2PI
    return gy * slope


def relu_forward_numba(x):
    out = np.empty(x.shape, dtype=x.dtype)
    _relu_forward_loop(np.ascontiguousarray(x).reshape(-1), out.reshape(-1))
    return out


def relu_backward_numba(gy, y):
    gx = np.empty(y.shape, dtype=y.dtype)
    gy = np.ascontiguousarray(np.broadcast_to(gy, y.shape), dtype=y.dtype).reshape(-1)
    _relu_backward_loop(gy, np.ascontiguousarray(y).reshape(-1), gx.reshape(-1))
    return gx


@njit(cache=True)
def _relu_forward_loop(x, out):
    zero = x.dtype.type(0)
    for i in range(x.size):
        v = x[i]
        out[i] = zero if v <= zero else v  # NaN <= 0 is false: NaN passes through


@njit(cache=True)
def _relu_backward_loop(gy, y, gx):
    zero = y.dtype.type(0)
    for i in range(y.size):
        gx[i] = zero if y[i] <= zero else gy[i]


def erf_numba(x):
    out = np.empty(x.shape, dtype=x.dtype)
    _erf_loop(np.ascontiguousarray(x).reshape(-1), out.reshape(-1))
    return out


@njit(cache=True, parallel=True)
def _erf_loop(x, out):
    for i in prange(x.size):
        out[i] = math.erf(x[i])


def _constants(dtype):
    """The kernels' constants in the array's dtype, so float32 runs float32 math (erff, expf)."""
    return np.array([0.5, 1.0, SQRT_HALF, INV_SQRT_2PI, TANH_K, TANH_C, 3 * TANH_C], dtype=dtype)


def gelu_forward_numba(x, approximate: str = "none"):
    out = np.empty(x.shape, dtype=x.dtype)
    flat = np.ascontiguousarray(x).reshape(-1)
    _gelu_forward_loop(flat, out.reshape(-1), MODES[approximate], _constants(x.dtype))
    return out


def gelu_backward_numba(gy, x, approximate: str = "none"):
    gx = np.empty(x.shape, dtype=x.dtype)
    gy = np.ascontiguousarray(np.broadcast_to(gy, x.shape), dtype=x.dtype).reshape(-1)
    flat = np.ascontiguousarray(x).reshape(-1)
    _gelu_backward_loop(gy, flat, gx.reshape(-1), MODES[approximate], _constants(x.dtype))
    return gx


@njit(cache=True, parallel=True)
def _gelu_forward_loop(x, out, tanh_form, constants):
    half, one, sqrt_half, _, k, c, _ = constants
    for i in prange(x.size):
        v = x[i]
        if tanh_form:
            out[i] = half * v * (one + math.tanh(k * (v + c * v * v * v)))
        else:
            out[i] = half * v * (one + math.erf(v * sqrt_half))


@njit(cache=True, parallel=True)
def _gelu_backward_loop(gy, x, gx, tanh_form, constants):
    half, one, sqrt_half, inv_sqrt_2pi, k, c, c3 = constants
    for i in prange(x.size):
        v = x[i]
        if tanh_form:
            t = math.tanh(k * (v + c * v * v * v))
            slope = half * (one + t) + half * v * (one - t * t) * k * (one + c3 * v * v)
        else:
            density = math.exp(-half * v * v) * inv_sqrt_2pi
            slope = half * (one + math.erf(v * sqrt_half)) + v * density
        gx[i] = gy[i] * slope


def erf_cupy(x):
    return cupyx().scipy.special.erf(x)


CUDA_SOURCES = {
    # grid-stride loops over n elements, in double; T is the element type (dispatch.cuda_prelude)
    "minidl_gelu_forward": r"""
extern "C" __global__ void minidl_gelu_forward(const T* x, T* y, long long n, int tanh_form) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
       i += (long long)blockDim.x * gridDim.x) {
    double v = x[i];
    double cdf = tanh_form ? 0.5 * (1.0 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)))
                           : 0.5 * (1.0 + erf(v * 0.7071067811865476));
    y[i] = (T)(v * cdf);
  }
}
""",
    "minidl_gelu_backward": r"""
extern "C" __global__ void minidl_gelu_backward(const T* gy, const T* x, T* gx, long long n,
                                                int tanh_form) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
       i += (long long)blockDim.x * gridDim.x) {
    double v = x[i], slope;
    if (tanh_form) {
      double t = tanh(0.7978845608028654 * (v + 0.044715 * v * v * v));
      slope = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * 0.7978845608028654
              * (1.0 + 3 * 0.044715 * v * v);
    } else {
      slope = 0.5 * (1.0 + erf(v * 0.7071067811865476))
              + v * exp(-0.5 * v * v) * 0.3989422804014327;
    }
    gx[i] = (T)(gy[i] * slope);
  }
}
""",
}


def gelu_forward_cupy(x, approximate: str = "none"):
    xp = cupy()
    x = xp.ascontiguousarray(x)
    y = xp.empty_like(x)
    kernel = cuda_kernel(CUDA_SOURCES["minidl_gelu_forward"], "minidl_gelu_forward", x.dtype)
    launch(kernel, x.size, x, y, np.int64(x.size), np.int32(MODES[approximate]))
    return y


def gelu_backward_cupy(gy, x, approximate: str = "none"):
    xp = cupy()
    x = xp.ascontiguousarray(x)
    gy = xp.ascontiguousarray(xp.broadcast_to(gy, x.shape), dtype=x.dtype)
    gx = xp.empty_like(x)
    kernel = cuda_kernel(CUDA_SOURCES["minidl_gelu_backward"], "minidl_gelu_backward", x.dtype)
    launch(kernel, x.size, gy, x, gx, np.int64(x.size), np.int32(MODES[approximate]))
    return gx
