"""Fused ops: a hand-written backward on arrays, differentiable again through a composed replay.

A fused op (layer norm, softmax cross-entropy, attention, a recurrent layer) computes its forward
and backward with kernels on arrays, for speed. Its backward is not written with ``ctx.xp``, so
it cannot record a graph itself. Instead the op also states what it computes with ordinary ops,
``composed`` (its differentiable specification, usually a few lines), and under
``create_graph=True`` its backward becomes the node ``FusedGrad``:

* forward: the op's own hand-written backward on arrays, so the first derivative has the same
  values (and code path) with or without ``create_graph``;
* backward, for the gradients gg of that node: ∂⟨gg, J_fᵀ gy⟩ / ∂(gy, inputs), derived by
  autograd from a replay of ``composed``: g = grad(composed(inputs), inputs, gy,
  create_graph=True), then grad(g, (gy, inputs), gg). Under ``create_graph`` that is recorded as
  well, so third and higher derivatives work.

So each op's math exists once as kernels (fast) and once as its forward composed from ops;
nothing is differentiated by hand twice.
"""
from __future__ import annotations

from types import SimpleNamespace

from minidl.autograd.engine import grad
from minidl.autograd.function import Function, GraphContext
from minidl.autograd.grad_mode import enable_grad
from minidl.tensors import Tensor


class FusedFunction(Function):
    """A Function whose ``backward`` runs on arrays only, plus ``composed``: the same forward
    written with ops, ``composed(state, xp, *inputs, **options)``.

    ``inputs`` are the forward's positional arguments as Tensors (None where the forward got a
    non-Tensor), ``options`` its keyword arguments, ``xp`` the Tensor namespace (NumPy's names,
    each call a recorded op) and ``state`` the attributes the forward set on its ctx (random
    draws such as a dropout mask are read from there, so the replay is the same function).
    Returns what the forward returns, as Tensors.
    """

    @staticmethod
    def composed(state, xp, *inputs, **options):
        raise NotImplementedError

    @classmethod
    def _graph_backward(cls, ctx: GraphContext, *grad_outputs):
        node = ctx._node
        wanted = [i for i, need in enumerate(node.needs_input_grad) if need]
        grads = iter(FusedGrad.apply(*grad_outputs, *node._inputs, node=node,
                                     count=len(grad_outputs), wanted=wanted))
        return tuple(next(grads) if need else None for need in node.needs_input_grad)


class FusedGrad(Function):
    """g_inputs = J_fᵀ g_outputs of a fused op f as a node: arguments (g_outputs..., inputs...).

    Forward: f's hand-written backward on arrays (zeros where it gives None for a wanted input).
    Backward: the vector-Jacobian product of that, derived from a replay of ``f.composed``.
    """

    @staticmethod
    def forward(ctx, *args, node, count: int, wanted: list):
        ctx.save_for_backward(*args)
        ctx.fn, ctx.options, ctx.count, ctx.wanted = node._fn, node._options, count, wanted
        ctx.state = SimpleNamespace(**vars(node))  # kept: a graph freed later clears the node's
        grads = node._fn.backward(node, *args[:count])
        grads = grads if isinstance(grads, tuple) else (grads,)
        inputs = args[count:]
        return tuple(ctx.xp.zeros_like(inputs[i]) if grads[i] is None else grads[i]
                     for i in wanted)

    @staticmethod
    def backward(ctx, *ggs):
        graph = isinstance(ctx, GraphContext)  # then the saved values are the graph's Tensors
        values = [_alias(v) if graph else _leaf(v) for v in ctx.saved_tensors]
        grad_outputs, inputs = values[:ctx.count], values[ctx.count:]
        if graph:
            xp = ctx.xp
        else:
            from minidl.ops.tensor_namespace import tensor_namespace  # ops build on autograd
            xp = tensor_namespace(ctx.xp)
        with enable_grad():
            outputs = ctx.fn.composed(ctx.state, xp, *inputs, **ctx.options)
            outputs = outputs if isinstance(outputs, tuple) else (outputs,)
            seeds = [(o, g) for o, g in zip(outputs, grad_outputs)
                     if g is not None and isinstance(o, Tensor) and o.requires_grad]
            first = grad([o for o, _ in seeds], [inputs[i] for i in ctx.wanted],
                         [g for _, g in seeds], create_graph=True, allow_unused=True)
            pairs = [(g, gg if isinstance(gg, Tensor) else Tensor(gg))
                     for g, gg in zip(first, ggs) if g is not None and g.requires_grad]
            targets = [i for i, need in enumerate(ctx.needs_input_grad) if need]
            if not pairs:  # the first derivative does not depend on anything: all zeros
                return (None,) * len(values)
            seconds = grad([g for g, _ in pairs], [values[i] for i in targets],
                           [gg for _, gg in pairs], create_graph=graph, allow_unused=True)
        result = [None] * len(values)
        for i, g in zip(targets, seconds):
            result[i] = g if graph or g is None else g._data
        return tuple(result)


def _alias(value):
    """A graph Tensor's recorded copy: gradients taken with respect to it are the partial
    derivatives through this replay only (g_outputs may themselves depend on the inputs, and a
    gradient with respect to the original Tensor would add those paths a second time)."""
    return value.clone() if isinstance(value, Tensor) and value.requires_grad else value


def _leaf(value):
    """A saved array as a fresh leaf to differentiate with respect to (floats only)."""
    if value is None or not hasattr(value, "dtype"):
        return value
    return Tensor(value, requires_grad=value.dtype.kind in "fc")
