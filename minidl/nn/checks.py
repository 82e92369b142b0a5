"""Input checks that layers share, so a wrong input gets an error naming the layer and both shapes."""
from __future__ import annotations

from minidl.tensors import Tensor


def check_input(layer: str, input, *patterns, like: Tensor | None = None) -> None:
    """Raise unless ``input``'s shape matches one of ``patterns``.

    A pattern is a tuple of ints (that exact size) and names (any size), e.g. ``("N", 3, "H", "W")``;
    a leading ``"..."`` allows any number of leading dims, e.g. ``("...", 20)``.
    With ``like`` (a weight), the dtype and device must match it too.

    Example message: ``Conv2d(3, 16, kernel_size=(3, 3)) expected input of shape (N, 3, H, W),
    got (8, 1, 28, 28)``.
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"{layer} expected a Tensor input, got {type(input).__name__}")
    shape = tuple(input.shape)
    fits = any(_matches(p, shape) for p in patterns)
    if patterns and not fits:
        expected = " or ".join("(" + ", ".join(str(e) for e in p) + ("," if len(p) == 1 else "") + ")"
                               for p in patterns)
        raise ValueError(f"{layer} expected input of shape {expected}, got {shape}")
    if like is not None and (input.dtype != like.dtype or input.device != like.device):
        raise TypeError(f"{layer} expected input of dtype {like.dtype} on {like.device} (like its "
                        f"weights), got dtype {input.dtype} on {input.device}")


def _matches(pattern: tuple, shape: tuple) -> bool:
    if pattern and pattern[0] == "...":
        pattern = pattern[1:]
        shape = shape[len(shape) - len(pattern):] if len(shape) >= len(pattern) else None
    return (shape is not None and len(pattern) == len(shape)
            and all(isinstance(e, str) or e == n for e, n in zip(pattern, shape)))
