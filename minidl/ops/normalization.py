"""Normalisation layers' functional forms."""
from __future__ import annotations

from minidl.tensors import Tensor


def layer_norm(input: Tensor, normalized_shape, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """y = (x - E[x]) / sqrt(Var[x] + eps) · weight + bias over the last len(normalized_shape) dims.

    Composed from mean/var/sqrt, so its gradient comes from theirs.
    """
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    count = len(normalized_shape)
    if tuple(input.shape[input.ndim - count:]) != normalized_shape:
        raise RuntimeError(f"layer_norm: expected input with trailing shape {normalized_shape}, got "
                           f"{tuple(input.shape)}")
    dims = tuple(range(-count, 0))
    centered = input - input.mean(dim=dims, keepdim=True)
    variance = (centered * centered).mean(dim=dims, keepdim=True)
    output = centered / (variance + eps).sqrt()
    if weight is not None:
        output = output * weight
    if bias is not None:
        output = output + bias
    return output
