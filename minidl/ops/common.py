"""Helpers shared by the ops: broadcasting reduction and dimension checks."""
from __future__ import annotations


def meta(value):
    """(shape, dtype) of an array argument, None for a Python scalar (which gets no gradient)."""
    return (value.shape, value.dtype) if hasattr(value, "shape") else None


def reduce_like(xp, grad, target_meta):
    """Sum ``grad`` over the axes broadcasting added or stretched, giving ``target_meta``'s shape.

    For z = f(x, y) with broadcasting, dL/dx is the sum of dL/dz over every axis along which x was
    repeated. Returns None when the target was a scalar (no gradient).
    """
    if target_meta is None:
        return None
    shape, dtype = target_meta
    if grad.shape != shape:
        lead = grad.ndim - len(shape)
        stretched = tuple(lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
        grad = grad.sum(axis=tuple(range(lead)) + stretched, keepdims=True).reshape(shape)
    return grad if grad.dtype == dtype else xp.astype(grad, dtype)


def normalize_dim(dim: int, ndim: int, op: str) -> int:
    """A non-negative axis for ``dim`` (negative counts from the end), or a clear error."""
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise IndexError(f"{op}: dim {dim} is out of range for a tensor with {ndim} dimensions "
                         f"(expected a dim in [{-max(ndim, 1)}, {max(ndim, 1) - 1}])")
    return dim % max(ndim, 1)


def normalize_dims(dim, ndim: int, op: str) -> tuple:
    """All axes for ``dim=None`` or ``()``, else the non-negative axes of an int or a sequence."""
    if dim is None or (isinstance(dim, (tuple, list)) and len(dim) == 0):
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    axes = tuple(normalize_dim(d, ndim, op) for d in dims)
    if ndim == 0:
        return ()
    if len(set(axes)) != len(axes):
        raise ValueError(f"{op}: dim {dim} names an axis twice")
    return axes


def expand_reduced(xp, grad, shape: tuple, axes: tuple, keepdim: bool):
    """Put the reduced ``axes`` back as size-1 axes (unless keepdim), ready to broadcast to ``shape``."""
    if not keepdim and grad.ndim > 0 and axes:  # a 0-d grad (full reduction) broadcasts as it is
        grad = xp.expand_dims(grad, axes)
    return grad


class quiet:
    """Silence NumPy's divide/invalid warnings where the result is masked or meant (0/0 -> nan)."""

    def __init__(self, xp):
        errstate = getattr(xp, "errstate", None)  # CuPy has none
        self.state = errstate(divide="ignore", invalid="ignore") if errstate else None

    def __enter__(self):
        if self.state is not None:
            self.state.__enter__()

    def __exit__(self, *exc_info):
        if self.state is not None:
            self.state.__exit__(*exc_info)
