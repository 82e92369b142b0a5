"""``gradcheck`` and ``gradgradcheck``: autograd's first and second derivatives against central
finite differences (as PyTorch's)."""
from __future__ import annotations

import numpy as np

from minidl import backend
from minidl.autograd.engine import grad
from minidl.autograd.grad_mode import enable_grad, no_grad
from minidl.tensors import Tensor


class GradcheckError(AssertionError):
    """Raised when an analytic gradient and its finite-difference estimate disagree."""


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3, seed: int = 0) -> bool:
    """Check the gradients of ``fn(*inputs)`` with respect to every input that requires grad.

    The outputs (a Tensor or a tuple of them) are contracted with fixed random weights ``r`` to a
    scalar L = Σ ⟨outputᵢ, rᵢ⟩, so every output and every element of it takes part. Then for each
    element x_k of each input: numeric dL/dx_k = (L(x + eps e_k) - L(x - eps e_k)) / (2 eps), which
    must match autograd's within ``atol + rtol * |numeric|``. Inputs must be float64.

    Returns True, or raises :class:`GradcheckError` naming the input, the worst element's index and
    both values.
    """
    return _check(fn, inputs, eps, atol, rtol, seed, "gradcheck", lambda i: f"gradient of input {i}")


def gradgradcheck(fn, inputs, grad_outputs=None, eps: float = 1e-6, atol: float = 1e-5,
                  rtol: float = 1e-3, seed: int = 0) -> bool:
    """Check the second derivatives of ``fn(*inputs)``, as ``torch.autograd.gradgradcheck``.

    The first derivative is the vector-Jacobian product g(x, v) = vᵀ ∂fn/∂x, built by
    ``autograd.grad(..., create_graph=True)``; it is then gradchecked as a function of both the
    inputs and v (``grad_outputs``, random float64 by default). So every second derivative
    ∂²(vᵀfn)/∂x∂x and the first derivative's dependence on v are compared with finite differences.

    Raises :class:`GradcheckError` naming the input (or grad_output) and the worst element.
    """
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    with enable_grad():
        outputs = _differentiable_outputs(fn(*inputs))
    if grad_outputs is None:
        rng = np.random.default_rng(seed + 1)
        grad_outputs = [Tensor(backend.to_device(rng.standard_normal(o.shape), o.device), True)
                        for o in outputs]
    grad_outputs = tuple(grad_outputs) if isinstance(grad_outputs, (tuple, list)) else (grad_outputs,)
    count = len(inputs)

    def first_derivative(*args):
        with enable_grad():
            outputs = _differentiable_outputs(fn(*args[:count]))
            wrt = [args[i] for i in checked]
            return grad(outputs, wrt, args[count:], create_graph=True, materialize_grads=True)

    def label(i):
        return (f"second derivative wrt input {i}" if i < count
                else f"first derivative's dependence on grad_output {i - count}")

    return _check(first_derivative, inputs + grad_outputs, eps, atol, rtol, seed, "gradgradcheck",
                  label)


def _differentiable_outputs(outputs) -> list:
    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    return [o for o in outputs if isinstance(o, Tensor) and o.requires_grad]


def _check(fn, inputs, eps, atol, rtol, seed, op: str, label) -> bool:
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError(f"{op}: no input requires grad")
    for i in checked:
        if inputs[i].dtype != np.float64:
            raise ValueError(f"{op}: input {i} has dtype {inputs[i].dtype}; finite differences "
                             "need float64 (use .double())")
    rng = np.random.default_rng(seed)
    weights = None

    def contracted_loss():
        nonlocal weights
        outputs = fn(*inputs)
        outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        outputs = [o for o in outputs if isinstance(o, Tensor) and o.dtype.kind == "f"]
        if weights is None:
            weights = [rng.standard_normal(o.shape) for o in outputs]
        total = None
        for output, weight in zip(outputs, weights):
            xp = backend.get_array_module(output._data)
            term = (output * Tensor(xp.asarray(weight, dtype=output.dtype))).sum()
            total = term if total is None else total + term
        return total

    for i in checked:
        inputs[i].grad = None
    loss = contracted_loss()
    if not loss.requires_grad:
        raise GradcheckError(f"{op}: the output does not depend on any input that requires grad")
    loss.backward()
    for i in checked:
        x = inputs[i]
        analytic = backend.to_numpy(x.grad._data) if x.grad is not None else np.zeros(x.shape)
        numeric = _numeric_gradient(contracted_loss, x, eps)
        error = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
        if error.size and error.max() > 0:
            worst = np.unravel_index(int(error.argmax()), error.shape)
            raise GradcheckError(
                f"{op}: {label(i)} (shape {tuple(x.shape)}) is wrong at index "
                f"{tuple(int(k) for k in worst)}: analytic {analytic[worst]:.8g}, numeric "
                f"{numeric[worst]:.8g} (atol={atol}, rtol={rtol})")
    return True


def _numeric_gradient(loss_fn, x: Tensor, eps: float) -> np.ndarray:
    """Central differences of ``loss_fn`` with respect to each element of ``x`` (perturbed in place)."""
    host = np.array(backend.to_numpy(x._data), dtype=np.float64, order="C")  # reshape(-1) must be a view
    gradient = np.zeros(x.shape)
    flat = host.reshape(-1)
    with no_grad():
        for k in range(flat.size):
            original = flat[k]
            flat[k] = original + eps
            x._data = backend.to_device(host.copy(), x.device)
            plus = loss_fn().item()
            flat[k] = original - eps
            x._data = backend.to_device(host.copy(), x.device)
            minus = loss_fn().item()
            flat[k] = original
            gradient.reshape(-1)[k] = (plus - minus) / (2 * eps)
    x._data = backend.to_device(host, x.device)
    return gradient
