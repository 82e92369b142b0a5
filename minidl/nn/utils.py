"""Gradient clipping (as ``torch.nn.utils.clip_grad_norm_`` and ``clip_grad_value_``).

Both work in place on the ``.grad`` arrays, on NumPy and CuPy alike; no graph is built. The total
norm stays on the gradients' device (no host synchronisation unless ``error_if_nonfinite``).
"""
from __future__ import annotations

import numpy as np

from minidl import backend
from minidl.tensors import Tensor


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Scale the gradients so that their total norm is at most ``max_norm``.

    ``total = ||(||g_1||_p, ..., ||g_n||_p)||_p`` over all gradients together (``p = inf``: the
    largest absolute value), then every gradient is multiplied by
    ``min(1, max_norm / (total + 1e-6))``.

    Args:
        parameters: a Tensor or an iterable of Tensors; those without a gradient are skipped.
        max_norm: the largest total norm allowed.
        norm_type: the order ``p`` of the norm (any float, ``inf`` or ``-inf``). Default: 2.
        error_if_nonfinite: raise if the total norm is nan or inf. Default: False.

    Returns:
        The total norm of the gradients before clipping, a 0-d Tensor (in the gradients' dtype;
        ``tensor(0.)`` when there are none).

    Examples:
        >>> loss.backward()
        >>> clip_grad_norm_(model.parameters(), max_norm=1.0)
        >>> optimizer.step()
    """
    grads = _grad_arrays(parameters)
    norm_type = float(norm_type)
    if not grads:
        return Tensor(np.asarray(0.0, dtype=np.float32))
    xp = backend.get_array_module(grads[0])
    norms = xp.stack([xp.linalg.norm(g.ravel(), norm_type) for g in grads])  # (n,)
    total = xp.linalg.norm(norms, norm_type)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the gradients "
                           f"is {float(total)}, so they cannot be clipped; set "
                           "error_if_nonfinite=False to scale them by it anyway")
    coefficient = xp.minimum(float(max_norm) / (total + 1e-6), 1.0)
    with np.errstate(invalid="ignore"):  # a non-finite norm gives nan gradients, as PyTorch
        for g in grads:
            g *= coefficient.astype(g.dtype)
    return Tensor(xp.asarray(total))


def clip_grad_value_(parameters, clip_value: float) -> None:
    """Clamp every gradient element into ``[-clip_value, clip_value]``, in place.

    Args:
        parameters: a Tensor or an iterable of Tensors; those without a gradient are skipped.
        clip_value: the largest absolute value allowed.

    Examples:
        >>> clip_grad_value_(model.parameters(), clip_value=0.5)
    """
    clip_value = float(clip_value)
    for g in _grad_arrays(parameters):
        backend.get_array_module(g).clip(g, -clip_value, clip_value, out=g)


def _grad_arrays(parameters) -> list:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad._data for p in parameters if p.grad is not None]
