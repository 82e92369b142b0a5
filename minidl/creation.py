"""Making tensors: ``tensor`` with PyTorch's dtype inference, and the factories."""
from __future__ import annotations

import numbers

import numpy as np

from minidl import backend, random
from minidl.tensors import Tensor

float16, float32, float64 = np.dtype("float16"), np.dtype("float32"), np.dtype("float64")
int8, int16, int32, int64 = np.dtype("int8"), np.dtype("int16"), np.dtype("int32"), np.dtype("int64")
uint8, bool_ = np.dtype("uint8"), np.dtype("bool")
_default_dtype = float32


def get_default_dtype() -> np.dtype:
    return _default_dtype


def set_default_dtype(dtype) -> None:
    """The dtype Python floats and the float factories produce (float32 unless changed)."""
    global _default_dtype
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"set_default_dtype: expected a floating point dtype, got {dtype}")
    _default_dtype = dtype


def _inferred_dtype(data) -> np.dtype | None:
    """PyTorch's rule: NumPy arrays keep their dtype; Python floats -> default, ints -> int64."""
    if hasattr(data, "dtype"):
        return None
    array = np.asarray(data)
    if array.dtype.kind == "f":
        return _default_dtype
    if array.dtype.kind in "iu":
        return int64
    return None


def tensor(data, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """A new tensor holding a copy of ``data`` (a number, nested list, NumPy/CuPy array or Tensor)."""
    if isinstance(data, Tensor):
        data = data._data
    dtype = np.dtype(dtype) if dtype is not None else _inferred_dtype(data)
    target = backend.Device(device) if device is not None else backend.device_of(data)
    xp = backend.array_module(target)
    array = xp.array(backend.to_device(data, target) if hasattr(data, "dtype") else data, dtype=dtype)
    return Tensor(array).requires_grad_(requires_grad) if requires_grad else Tensor(array)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor that shares memory with ``array`` (no copy)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    return Tensor(array)


def _size(size: tuple) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        return tuple(size[0])
    return tuple(size)


def _new(array_fn, size, dtype, device, requires_grad, **kwargs) -> Tensor:
    xp = backend.array_module(device or "cpu")
    result = Tensor(array_fn(xp)(_size(size), dtype=np.dtype(dtype or _default_dtype), **kwargs))
    return result.requires_grad_(requires_grad) if requires_grad else result


def zeros(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _new(lambda xp: xp.zeros, size, dtype, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _new(lambda xp: xp.ones, size, dtype, device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return _new(lambda xp: xp.empty, size, dtype, device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    if dtype is None and isinstance(fill_value, bool):
        dtype = bool_
    elif dtype is None and isinstance(fill_value, numbers.Integral):
        dtype = int64
    return _new(lambda xp: xp.full, (size,), dtype, device, requires_grad, fill_value=fill_value)


def zeros_like(input: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    return zeros(input.shape, dtype=dtype or input.dtype, device=input.device, requires_grad=requires_grad)


def ones_like(input: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    return ones(input.shape, dtype=dtype or input.dtype, device=input.device, requires_grad=requires_grad)


def full_like(input: Tensor, fill_value, dtype=None) -> Tensor:
    return full(input.shape, fill_value, dtype=dtype or input.dtype, device=input.device)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Values from ``start`` up to (not including) ``end``; int64 unless a bound is a float."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        integral = all(isinstance(v, numbers.Integral) for v in (start, end, step))
        dtype = int64 if integral else _default_dtype
    xp = backend.array_module(device or "cpu")
    result = Tensor(xp.arange(start, end, step).astype(dtype))
    return result.requires_grad_(requires_grad) if requires_grad else result


def linspace(start, end, steps: int, dtype=None, device=None) -> Tensor:
    xp = backend.array_module(device or "cpu")
    return Tensor(xp.linspace(start, end, steps, dtype=dtype or _default_dtype))


def eye(n: int, m: int | None = None, dtype=None, device=None) -> Tensor:
    xp = backend.array_module(device or "cpu")
    return Tensor(xp.eye(n, m, dtype=dtype or _default_dtype))


def randn(*size, dtype=None, device=None, requires_grad: bool = False, generator=None) -> Tensor:
    """Standard normal samples from the (seeded) default generator."""
    xp = backend.array_module(device or "cpu")
    draw = random.generator_for(xp, generator).standard_normal(_size(size))
    result = Tensor(draw.astype(dtype or _default_dtype))
    return result.requires_grad_(requires_grad) if requires_grad else result


def rand(*size, dtype=None, device=None, requires_grad: bool = False, generator=None) -> Tensor:
    """Uniform samples in [0, 1) from the (seeded) default generator."""
    xp = backend.array_module(device or "cpu")
    draw = random.generator_for(xp, generator).random(_size(size))
    result = Tensor(draw.astype(dtype or _default_dtype))
    return result.requires_grad_(requires_grad) if requires_grad else result


def randint(low: int, high: int | None = None, size=(), dtype=None, device=None, generator=None) -> Tensor:
    """Integers in [low, high); ``randint(high, size)`` means low = 0, as PyTorch's."""
    if isinstance(high, (tuple, list)):  # randint(high, size)
        low, high, size = 0, low, high
    elif high is None:
        low, high = 0, low
    xp = backend.array_module(device or "cpu")
    draw = random.generator_for(xp, generator).integers(low, high, size=tuple(size))
    return Tensor(xp.asarray(draw, dtype=dtype or int64))


def multinomial(input: Tensor, num_samples: int, replacement: bool = False, *,
                generator=None) -> Tensor:
    """Draw ``num_samples`` category indices per row of the non-negative weights ``input`` (C,)
    or (N, C), as ``torch.multinomial`` (without replacement each index at most once per row)."""
    weights = np.asarray(backend.to_numpy(input._data), dtype=np.float64)
    rows = weights.reshape(-1, weights.shape[-1]) if weights.ndim else weights.reshape(1, 1)
    if weights.ndim not in (1, 2) or not np.isfinite(rows).all() or (rows < 0).any():
        raise RuntimeError("multinomial: expected a 1-d or 2-d tensor of finite, non-negative "
                           f"weights, got shape {tuple(input.shape)}")
    if (rows.sum(axis=1) <= 0).any():
        raise RuntimeError("multinomial: every row of weights needs a positive sum")
    if not replacement and num_samples > rows.shape[1]:
        raise RuntimeError(f"multinomial: cannot sample {num_samples} > {rows.shape[1]} "
                           "categories without replacement")
    rng = random.generator_for(np, generator)
    if replacement:
        draws = np.stack([rng.choice(row.size, num_samples, p=row / row.sum()) for row in rows])
    else:  # Gumbel top-k: the k largest log w + Gumbel noise; zero weights come last, as PyTorch
        with np.errstate(divide="ignore"):
            keys = np.log(rows) + rng.gumbel(size=rows.shape)  # (N, C)
        draws = np.argsort(-keys, axis=1, kind="stable")[:, :num_samples]  # (N, num_samples)
    draws = draws.reshape(input.shape[:-1] + (num_samples,)).astype(np.int64)
    return Tensor(backend.array_module(input.device).asarray(draws))


def randperm(n: int, dtype=None, device=None, generator=None) -> Tensor:
    xp = backend.array_module(device or "cpu")
    return Tensor(xp.asarray(random.generator_for(xp, generator).permutation(n), dtype=dtype or int64))


def randn_like(input: Tensor, dtype=None) -> Tensor:
    return randn(input.shape, dtype=dtype or input.dtype, device=input.device)


def rand_like(input: Tensor, dtype=None) -> Tensor:
    return rand(input.shape, dtype=dtype or input.dtype, device=input.device)
