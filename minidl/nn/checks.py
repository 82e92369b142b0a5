"""Input checks that layers share, so a wrong input gets an error naming the layer and both shapes."""
from __future__ import annotations

from minidl import backend
from minidl.tensors import Tensor


def check_input(layer, input, *patterns, like: Tensor | None = None, role: str = "") -> None:
    """Raise unless ``input``'s shape matches one of ``patterns``.

    A pattern is a tuple of ints (that exact size) and names (any size), e.g. ``("N", 3, "H", "W")``;
    a leading ``"..."`` allows any number of leading dims, e.g. ``("...", 20)``.
    With ``like`` (a weight), the dtype and device must match it too. ``layer`` is the Module (or a
    name); its repr is built only for an error message, so a passing check costs almost nothing.
    ``role`` says which input, e.g. ``"query"`` or ``"(h_0)"``.

    Example message: ``Conv2d(3, 16, kernel_size=(3, 3)) expected input of shape (N, 3, H, W),
    got (8, 1, 28, 28)``.
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"{_name(layer, role)} expected a Tensor input, got {type(input).__name__}")
    shape = input._data.shape
    for pattern in patterns:  # a loop, not any(generator): this runs on every layer call
        if _matches(pattern, shape):
            break
    else:
        if patterns:
            expected = " or ".join("(" + ", ".join(str(e) for e in p) + ("," if len(p) == 1 else "")
                                   + ")" for p in patterns)
            raise ValueError(f"{_name(layer, role)} expected input of shape {expected}, got {shape}")
    if like is not None and (input._data.dtype != like._data.dtype or (
            backend.cupy_loaded() and input.device != like.device)):  # NumPy alone: all on the CPU
        raise TypeError(f"{_name(layer, role)} expected input of dtype {like.dtype} on {like.device} (like its "
                        f"weights), got dtype {input.dtype} on {input.device}")


def _matches(pattern: tuple, shape: tuple) -> bool:
    if pattern and pattern[0] == "...":
        pattern = pattern[1:]
        shape = shape[len(shape) - len(pattern):] if len(shape) >= len(pattern) else None
    return (shape is not None and len(pattern) == len(shape)
            and all(isinstance(e, str) or e == n for e, n in zip(pattern, shape)))


def _name(layer, role: str) -> str:
    name = layer if isinstance(layer, str) else repr(layer)
    return f"{name} {role}" if role else name
