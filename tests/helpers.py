"""Parity and gradient-check helpers: compare minidl with PyTorch on the same inputs and weights."""
from __future__ import annotations

import numpy as np
import torch

import minidl
from minidl import nn
from minidl.autograd import Function

TOLERANCE = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-7, atol=1e-9)}


def to_numpy(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy(force=True)  # force: torch's lazy zero tensors too
    if isinstance(value, minidl.Tensor):
        return value.numpy()
    return np.asarray(value)


def assert_close(ours, theirs, dtype=np.float32, what: str = "value", scale: float = 1.0) -> None:
    """Elementwise closeness with tolerances for ``dtype`` (``scale`` loosens them for long sums)."""
    a, b = to_numpy(ours), to_numpy(theirs)
    assert a.shape == b.shape, f"{what}: shape {a.shape} (minidl) != {b.shape} (torch)"
    tol = TOLERANCE[np.dtype(dtype).type]
    np.testing.assert_allclose(a, b, rtol=tol["rtol"] * scale, atol=tol["atol"] * scale, err_msg=what)


def flatten_outputs(output) -> list:
    """Tensors of a (nested) output in order: layers may return tuples like (out, (h, c))."""
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in flatten_outputs(item)]
    return [] if output is None else [output]


def check_module_parity(ours: nn.Module, theirs: torch.nn.Module, inputs, dtype=np.float32,
                        call=None, scale: float = 1.0, seed: int = 0) -> None:
    """Same weights (torch's state_dict loaded into ours), same inputs: outputs and all grads match.

    ``inputs`` are NumPy arrays; float ones get gradients checked. ``call(module, *inputs)`` runs
    the forward (default: ``module(*inputs)``). The backward uses the same random output weights.
    """
    call = call or (lambda module, *xs: module(*xs))
    theirs = theirs.to(getattr(torch, np.dtype(dtype).name))
    ours.to(np.dtype(dtype))
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    our_inputs = [minidl.tensor(x.astype(dtype) if x.dtype.kind == "f" else x,
                                requires_grad=x.dtype.kind == "f") for x in inputs]
    their_inputs = [torch.tensor(x.astype(dtype) if x.dtype.kind == "f" else x,
                                 requires_grad=x.dtype.kind == "f") for x in inputs]
    our_out = flatten_outputs(call(ours, *our_inputs))
    their_out = flatten_outputs(call(theirs, *their_inputs))
    assert len(our_out) == len(their_out), f"{len(our_out)} outputs (minidl) != {len(their_out)} (torch)"
    rng = np.random.default_rng(seed)
    our_loss, their_loss = 0, 0
    for index, (a, b) in enumerate(zip(our_out, their_out)):
        assert_close(a, b, dtype, f"output {index}", scale)
        if a.dtype.kind == "f" and a.requires_grad:
            weight = rng.standard_normal(a.shape).astype(dtype)
            our_loss = our_loss + (a * minidl.tensor(weight)).sum()
            their_loss = their_loss + (b * torch.tensor(weight)).sum()
    our_loss.backward()
    their_loss.backward()
    for index, (a, b) in enumerate(zip(our_inputs, their_inputs)):
        if b.grad is not None:
            assert a.grad is not None, f"input {index} got no gradient in minidl"
            assert_close(a.grad, b.grad, dtype, f"grad of input {index}", scale)
    their_params = dict(theirs.named_parameters())
    our_params = dict(ours.named_parameters())
    assert set(our_params) == set(their_params), f"parameter names differ: {set(our_params) ^ set(their_params)}"
    for name, b in their_params.items():
        if b.grad is not None:
            a = our_params[name]
            assert a.grad is not None, f"parameter {name} got no gradient in minidl"
            assert_close(a.grad, b.grad, dtype, f"grad of {name}", scale)


def gradcheck_module(module: nn.Module, inputs, call=None, **tolerances) -> bool:
    """gradcheck in float64 of ``module`` with respect to its float inputs and every parameter."""
    return _check_module(minidl.gradcheck, module, inputs, call, tolerances)


def gradgradcheck_module(module: nn.Module, inputs, call=None, **tolerances) -> bool:
    """gradgradcheck in float64 of ``module`` with respect to its float inputs and every parameter."""
    return _check_module(minidl.autograd.gradgradcheck, module, inputs, call, tolerances)


def _check_module(check, module: nn.Module, inputs, call, tolerances: dict) -> bool:
    call = call or (lambda m, *xs: m(*xs))
    module.double()
    tensors = [minidl.tensor(x.astype(np.float64) if x.dtype.kind == "f" else x,
                             requires_grad=x.dtype.kind == "f") for x in inputs]
    params = [p for p in module.parameters() if p.requires_grad]
    count = len(tensors)
    return check(lambda *args: call(module, *args[:count]), tensors + params, **tolerances)


class Cube(Function):
    """A user-defined op written with operators only: y = x³, gx = 3x² gy (differentiable twice
    as it is)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return 3 * x * x * gy


def _engine_hvp(m, outputs_of, wrt: list, dtype):
    """First gradients and Hessian-vector products of ``outputs_of()`` with respect to ``wrt`` in
    one engine (``m``): uᵀ ∂²(Σ wᵢ·outᵢ)/∂x² with fixed random w and u. None without outputs."""
    rng = np.random.default_rng(1)
    outputs = [o for o in flatten_outputs(outputs_of()) if o.requires_grad]
    if not outputs:
        return None
    loss = sum((o * m.tensor(rng.standard_normal(tuple(o.shape)).astype(dtype))).sum() for o in outputs)
    grads = m.autograd.grad(loss, wrt, create_graph=True, allow_unused=True)
    # one direction per input, drawn for all (torch marks some constant gradients as requiring grad)
    directions = [rng.standard_normal(tuple(x.shape)).astype(dtype) for x in wrt]
    terms = [(g * m.tensor(u)).sum() for g, u in zip(grads, directions)
             if g is not None and g.requires_grad]
    if not terms:  # every gradient is constant: the second derivatives are all zero
        return grads, [None] * len(wrt)
    return grads, m.autograd.grad(sum(terms), wrt, allow_unused=True)


def _compare_hvps(ours, theirs, names: list, shapes: list, what: str, dtype, scale: float) -> None:
    assert (ours is None) == (theirs is None), f"{what}: differentiable outputs differ"
    if ours is None:
        return
    for order, (a_list, b_list) in enumerate(zip(ours, theirs), start=1):
        for name, shape, a, b in zip(names, shapes, a_list, b_list):
            a = np.zeros(shape) if a is None else to_numpy(a)
            b = np.zeros(shape) if b is None else to_numpy(b)
            assert_close(a, b, dtype, f"{what}: order-{order} gradient of {name}", scale)


def assert_hvp_matches_torch(fn, arrays, what: str, dtype=np.float64, scale: float = 1.0) -> None:
    """``fn(m, *tensors)`` written once for both engines: first grads and HVPs (create_graph) match."""
    results = []
    for m in (minidl, torch):
        inputs = [m.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
        results.append(_engine_hvp(m, lambda: fn(m, *inputs), inputs, dtype))
    _compare_hvps(*results, [f"input {i}" for i in range(len(arrays))], [a.shape for a in arrays],
                  what, dtype, scale)


def check_module_hvp_parity(ours: nn.Module, theirs: torch.nn.Module, inputs, call=None,
                            dtype=np.float64, scale: float = 1.0) -> None:
    """Same weights, same inputs: first gradients and Hessian-vector products (through
    ``create_graph``) with respect to the float inputs and every parameter match PyTorch's."""
    call = call or (lambda module, *xs: module(*xs))
    theirs = theirs.to(getattr(torch, np.dtype(dtype).name))
    ours.to(np.dtype(dtype))
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    param_names = sorted(name for name, p in theirs.named_parameters() if p.requires_grad)
    results = []
    for m, module in ((minidl, ours), (torch, theirs)):
        tensors = [m.tensor(x.astype(dtype) if x.dtype.kind == "f" else x,
                            requires_grad=x.dtype.kind == "f") for x in inputs]
        params = dict(module.named_parameters())
        wrt = [t for t in tensors if t.requires_grad] + [params[n] for n in param_names]
        results.append(_engine_hvp(m, lambda: call(module, *tensors), wrt, dtype))
    names = [f"input {i}" for i, x in enumerate(inputs) if x.dtype.kind == "f"] + param_names
    shapes = [x.shape for x in inputs if x.dtype.kind == "f"] + [
        tuple(dict(theirs.named_parameters())[n].shape) for n in param_names]
    _compare_hvps(*results, names, shapes, "module", dtype, scale)


def assert_same_structure(ours, theirs, requires_grad: bool = False) -> None:
    """``ours`` (minidl) equals ``theirs`` (torch): Tensors of the same dtype, shape and values,
    bitwise (and requires_grad, if asked), in containers of the same types, keys and lengths, and
    equal plain values."""
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, minidl.Tensor), type(ours)
        assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch."), (ours, theirs)
        assert ours.shape == tuple(theirs.shape)
        assert not requires_grad or ours.requires_grad == theirs.requires_grad
        np.testing.assert_array_equal(ours.numpy(), theirs.detach().numpy())
    elif isinstance(theirs, (dict, list, tuple)):
        assert type(ours) is type(theirs), (type(ours), type(theirs))
        assert len(ours) == len(theirs)
        if isinstance(theirs, dict):
            assert list(ours) == list(theirs)
            ours, theirs = list(ours.values()), list(theirs.values())
        for mine, other in zip(ours, theirs, strict=True):
            assert_same_structure(mine, other, requires_grad)
    else:
        assert type(ours) is type(theirs) and ours == theirs, (ours, theirs)

