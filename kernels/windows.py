"""The geometry of sliding windows, shared by im2col, pooling and the conv and pool ops.

A window op's per-dim arguments (kernel size, stride, padding, dilation) arrive as an int or a
tuple (``ntuple`` makes them a tuple, once); along each spatial dim of length n, output position
o reads the inputs ``o·s - p + k·d`` for kernel offsets k < kernel size, which gives the output
length of ``output_length``. The array-code references pad the input (``pads_to_fit``) and
read, for each kernel offset, one strided slice covering every output position
(``offset_slices``). The compiled and CUDA loops are written for 3 spatial dims: 1- and 2-d
windows are 3-d ones with leading dims of size 1 (``as_3d``).
"""
from __future__ import annotations

import itertools


def ntuple(value, dims: int, name: str, op: str, minimum: int) -> tuple:
    """``value`` as a tuple of ``dims`` ints >= ``minimum`` (an int is repeated), or an error."""
    values = (value,) * dims if isinstance(value, int) else tuple(value)
    if len(values) != dims or not all(isinstance(v, int) and v >= minimum for v in values):
        raise ValueError(f"{op}: expected {name} to be an int or a tuple of {dims} ints, each >= "
                         f"{minimum}, got {value!r}")
    return values


def output_length(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool = False) -> int:
    """PyTorch's output length: floor (or ceil) of (n + 2p - d(k-1) - 1) / s, plus 1.

    With ``ceil_mode`` a last window that would start in the right padding is dropped.
    """
    out = (n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def as_3d(values, fill: int, op: str) -> tuple:
    """A per-dim tuple padded at the front to 3 dims with ``fill`` (1 for sizes and steps, 0 for
    padding): a 2-d window is a 3-d one of depth 1."""
    if len(values) > 3:
        raise ValueError(f"{op}: the compiled and CUDA kernels take 1 to 3 spatial dims, got "
                         f"{len(values)}: {tuple(values)}")
    return (fill,) * (3 - len(values)) + tuple(int(v) for v in values)


def pads_to_fit(size, kernel_size, stride, padding, dilation, output_size) -> list:
    """(before, after) padding per dim that makes every window of the output grid fit: ``padding``
    before, and after as far as the last window reaches past the input (0 if it ends inside)."""
    return [(p, max(0, (o - 1) * s + (k - 1) * d + 1 - p - n))
            for n, k, s, p, d, o in zip(size, kernel_size, stride, padding, dilation, output_size)]


def offset_slices(kernel_size, stride, dilation, output_size):
    """For each kernel offset k, in C order: k and the strided slices of the padded input that it
    reads for all output positions o at once (``o·s + k·d`` along each dim)."""
    for offset in itertools.product(*(range(k) for k in kernel_size)):
        yield offset, tuple(slice(k * d, k * d + (o - 1) * s + 1, s)
                            for k, s, d, o in zip(offset, stride, dilation, output_size))
