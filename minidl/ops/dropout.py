"""Dropout: zero each element with probability p during training and scale the rest by 1/(1-p)."""
from __future__ import annotations

from minidl import backend, random
from minidl.kernels.dropout import dropout_mask_reference
from minidl.tensors import Tensor


def dropout(input: Tensor, p: float = 0.5, training: bool = True, generator=None) -> Tensor:
    """y = x · m / (1 - p), m ~ Bernoulli(1 - p) (composed: its gradient is gy · m / (1 - p)).

    The mask is minidl.kernels.dropout's array code (a compiled mask measured no faster: the
    draws are serial either way).
    """
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: probability must be in [0, 1], got {p}")
    if not training or p == 0:
        return input
    if p == 1:
        return input * 0.0
    xp = backend.get_array_module(input._data)
    mask = dropout_mask_reference(random.generator_for(xp, generator), input.shape, p, input.dtype)
    return input * Tensor(mask)
