"""Higher-level derivatives of a function, as ``torch.autograd.functional``: vjp, jvp, jacobian,
hessian, vhp and hvp, all built on ``autograd.grad`` (jvp and hessian need ``create_graph``).

``inputs`` is a Tensor or a tuple of Tensors; results follow its structure (a Tensor for a
Tensor, a tuple for a tuple), and the function's outputs are returned detached unless
``create_graph=True``. Jacobians are computed row by row (one backward per output element), so
``vectorize`` changes nothing here.
"""
from __future__ import annotations

from minidl import backend
from minidl.autograd.engine import grad
from minidl.autograd.grad_mode import enable_grad
from minidl.tensors import Tensor


def vjp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), vᵀ J): the vector-Jacobian product, one backward pass."""
    is_tuple, xs = _prepare(inputs, create_graph)
    with enable_grad():
        out_is_tuple, outputs = _outputs("vjp", func(*xs))
        vs = _vectors("vjp", v, outputs, "output")
        grads = _grad(outputs, xs, vs, create_graph, strict, "vjp")
    return _result(outputs, out_is_tuple, create_graph), _result(grads, is_tuple, create_graph)


def jvp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), J v): the Jacobian-vector product by the double-vjp trick.

    g(u) = uᵀ J is linear in u, so J v = ∂(g(u)·v)/∂u: two backward passes, no forward mode.
    """
    is_tuple, xs = _prepare(inputs, create_graph)
    vs = _vectors("jvp", v, xs, "input")
    with enable_grad():
        out_is_tuple, outputs = _outputs("jvp", func(*xs))
        dummies = [Tensor(backend.get_array_module(o._data).zeros_like(o._data), True) for o in outputs]
        grads = grad(outputs, xs, dummies, create_graph=True, allow_unused=True)
        used = [(g, w) for g, w in zip(grads, vs) if g is not None and g.requires_grad]
        if strict and len(used) < len(xs):
            raise RuntimeError("jvp: strict=True and the output does not depend on every input")
        if used:
            jv = grad([g for g, _ in used], dummies, [w for _, w in used], create_graph=create_graph,
                      allow_unused=True, materialize_grads=True)
        else:
            jv = tuple(_zeros(o) for o in outputs)
    return _result(outputs, out_is_tuple, create_graph), _result(jv, out_is_tuple, create_graph)


def jacobian(func, inputs, create_graph: bool = False, strict: bool = False,
             vectorize: bool = False, strategy: str = "reverse-mode"):
    """∂ func(inputs) / ∂ inputs: for output i and input j a Tensor of shape out_i.shape + in_j.shape.

    A Tensor when both are single; a tuple over the inputs (or outputs) when one is a tuple; a
    tuple of tuples (outputs outer) when both are. ``strategy="forward-mode"`` gives the same
    Jacobian by the same route (minidl has no forward-mode AD; PyTorch's result is identical).
    """
    if strategy not in ("reverse-mode", "forward-mode"):
        raise ValueError(f"jacobian: strategy must be 'reverse-mode' or 'forward-mode', got {strategy!r}")
    is_tuple, xs = _prepare(inputs, create_graph)
    with enable_grad():
        out_is_tuple, outputs = _outputs("jacobian", func(*xs))
        blocks = [[None] * len(xs) for _ in outputs]
        for i, output in enumerate(outputs):
            rows = _jacobian_rows(output, xs, create_graph, strict)
            for j, x in enumerate(xs):
                blocks[i][j] = _stack([row[j] for row in rows]).reshape(output.shape + x.shape)
    blocks = [_result(row, is_tuple, create_graph) for row in blocks]
    return tuple(blocks) if out_is_tuple else blocks[0]


def hessian(func, inputs, create_graph: bool = False, strict: bool = False,
            vectorize: bool = False, outer_jacobian_strategy: str = "reverse-mode"):
    """∂² func / ∂ inputs² of a scalar function: the Jacobian of its gradient.

    One input: a Tensor of shape in.shape + in.shape; a tuple of inputs: a tuple of tuples.
    """
    is_tuple, xs = _prepare(inputs, create_graph)

    def gradient(*args):
        _, outputs = _outputs("hessian", func(*args))
        _check_scalar("hessian", outputs)
        grads = _grad(outputs, args, None, True, strict, "hessian")
        return grads if is_tuple else grads[0]

    return jacobian(gradient, xs if is_tuple else xs[0], create_graph, strict, vectorize,
                    outer_jacobian_strategy)


def vhp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), vᵀ H) of a scalar function: a backward through its gradient."""
    is_tuple, xs = _prepare(inputs, create_graph)
    vs = _vectors("vhp", v, xs, "input")
    with enable_grad():
        _, outputs = _outputs("vhp", func(*xs))
        _check_scalar("vhp", outputs)
        grads = _grad(outputs, xs, None, True, strict, "vhp")
        used = [(g, w, x) for g, w, x in zip(grads, vs, xs) if g.requires_grad]
        products = _grad([g for g, _, _ in used], xs, [w for _, w, _ in used], create_graph, strict,
                         "vhp") if used else tuple(_zeros(x) for x in xs)
    return _result(outputs, False, create_graph), _result(products, is_tuple, create_graph)


def hvp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), H v) of a scalar function.

    The Hessian of a twice-differentiable scalar function is symmetric, so H v = (vᵀ H)ᵀ: this is
    :func:`vhp`, one backward fewer than PyTorch's double-backward route to the same numbers.
    """
    return vhp(func, inputs, v, create_graph, strict)


# ----- helpers ------------------------------------------------------------------------------------
def _prepare(inputs, create_graph: bool):
    """(was it a tuple, the inputs as fresh graph roots that require grad)."""
    is_tuple = isinstance(inputs, (tuple, list))
    tensors = tuple(inputs) if is_tuple else (inputs,)
    for index, x in enumerate(tensors):
        if not isinstance(x, Tensor):
            raise TypeError(f"autograd.functional: input {index} is a {type(x).__name__}, expected a Tensor")
    # under create_graph a differentiable input keeps its graph (the result is differentiable in it)
    prepared = tuple(x.reshape(x.shape) if create_graph and x.requires_grad else
                     x.detach().requires_grad_(True) for x in tensors)
    return is_tuple, prepared


def _outputs(op: str, outputs):
    is_tuple = isinstance(outputs, (tuple, list))
    outputs = tuple(outputs) if is_tuple else (outputs,)
    for index, output in enumerate(outputs):
        if not isinstance(output, Tensor):
            raise TypeError(f"{op}: output {index} of func is a {type(output).__name__}, expected a Tensor")
    return is_tuple, outputs


def _vectors(op: str, v, like: tuple, what: str) -> tuple:
    if v is None:
        if len(like) == 1 and like[0].numel() == 1:
            return (Tensor(backend.get_array_module(like[0]._data).ones_like(like[0]._data)),)
        raise RuntimeError(f"{op}: v must be given unless there is one {what} with a single element")
    vs = tuple(v) if isinstance(v, (tuple, list)) else (v,)
    if len(vs) != len(like) or any(a.shape != b.shape for a, b in zip(vs, like)):
        raise RuntimeError(f"{op}: v has shapes {[tuple(a.shape) for a in vs]}, expected the "
                           f"{what} shapes {[tuple(b.shape) for b in like]}")
    return vs


def _check_scalar(op: str, outputs: tuple) -> None:
    if len(outputs) != 1 or outputs[0].numel() != 1:
        raise RuntimeError(f"{op}: func must return a single Tensor with one element, got "
                           f"{[tuple(o.shape) for o in outputs]}")


def _grad(outputs, xs, vs, create_graph: bool, strict: bool, op: str) -> tuple:
    """grad with zeros for unused inputs (an error with ``strict``)."""
    differentiable = [(o, w) for o, w in zip(outputs, vs or [None] * len(outputs)) if o.requires_grad]
    if not differentiable:
        if strict:
            raise RuntimeError(f"{op}: strict=True and the output does not depend on the inputs")
        return tuple(_zeros(x) for x in xs)
    grads = grad([o for o, _ in differentiable], xs,
                 None if vs is None else [w for _, w in differentiable],
                 retain_graph=True, create_graph=create_graph, allow_unused=True)
    if strict and any(g is None for g in grads):
        raise RuntimeError(f"{op}: strict=True and the output does not depend on input "
                           f"{[i for i, g in enumerate(grads) if g is None][0]}")
    return tuple(_zeros(x) if g is None else g for g, x in zip(grads, xs))


def _jacobian_rows(output: Tensor, xs: tuple, create_graph: bool, strict: bool) -> list:
    """One gradient per element of ``output``: row k is ∂ output_k / ∂ inputs."""
    xp = backend.get_array_module(output._data)
    rows = []
    for k in range(output.numel()):
        one_hot = xp.zeros(output.shape, dtype=output.dtype)
        one_hot.reshape(-1)[k] = 1
        rows.append(_grad((output,), xs, (Tensor(one_hot),), create_graph, strict, "jacobian"))
    return rows


def _stack(rows: list) -> Tensor:
    from minidl.ops.shape import stack  # ops build on autograd

    if not rows:  # an output with no elements
        return Tensor(backend.np.zeros((0,)))
    return stack(rows, 0)


def _zeros(like: Tensor) -> Tensor:
    return Tensor(backend.get_array_module(like._data).zeros_like(like._data))


def _result(tensors, is_tuple: bool, create_graph: bool):
    tensors = tuple(t if create_graph else t.detach() for t in tensors)
    return tensors if is_tuple else tensors[0]
