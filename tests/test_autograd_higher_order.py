"""Second-order autograd semantics against PyTorch: create_graph, autograd.grad, retain_graph,
inputs=, allow_unused, hooks, custom Functions, autograd.functional and gradgradcheck's errors."""
import numpy as np
import pytest
import torch
from helpers import Cube, assert_close

import minidl
from minidl.autograd import Function, FusedFunction, functional

RNG = np.random.default_rng(0)
X = RNG.standard_normal(4)
W = RNG.standard_normal((3, 4))


def leaves(m, *arrays):
    """Fresh leaves that require grad, in engine ``m`` (minidl or torch)."""
    return [m.tensor(a.copy(), requires_grad=True) for a in arrays]


def cubic(m, x, w):
    """A scalar with non-zero third derivatives in x and mixed ones in (x, w)."""
    return ((w @ x).tanh() * (x * x).sum()).sum()


def test_create_graph_leaves_grads_with_a_graph_and_higher_order_grads_accumulate():
    results = []
    for m in (minidl, torch):
        x, w = leaves(m, X, W)
        cubic(m, x, w).backward(create_graph=True)
        first = x.grad
        assert first.requires_grad
        x.grad = None
        first.sum().backward(retain_graph=True)  # accumulates d(Σ ∂f/∂x)/dx and .../dw
        second_x, second_w = x.grad.detach().clone(), w.grad.detach().clone()
        first.sum().backward()  # once more: twice the value
        results.append((first, second_x, second_w, x.grad, w.grad))
    for ours, theirs in zip(*results):
        assert_close(ours, theirs, np.float64)


def test_third_derivative_matches_torch():
    results = []
    for m in (minidl, torch):
        (x,) = leaves(m, X)
        y = (x.tanh() * x.exp()).sum()
        (g,) = m.autograd.grad(y, [x], create_graph=True)
        (h,) = m.autograd.grad(g.sum(), [x], create_graph=True)
        (t,) = m.autograd.grad(h.sum(), [x])
        results.append((g, h, t))
    for ours, theirs in zip(*results):
        assert_close(ours, theirs, np.float64)


def test_grad_leaves_dot_grad_alone_and_retain_graph_defaults_to_create_graph():
    x = minidl.tensor(X, requires_grad=True)
    y = (x.exp() * x).sum()
    (g,) = minidl.autograd.grad(y, x, create_graph=True)
    assert x.grad is None and g.requires_grad
    (again,) = minidl.autograd.grad(y, x)  # the graph was retained because create_graph was on
    np.testing.assert_allclose(again.numpy(), g.detach().numpy())
    with pytest.raises(RuntimeError, match="second time"):
        minidl.autograd.grad(y, x)  # ... and freed by the one before, which did not retain it
    assert x.grad is None


def test_grad_with_grad_outputs_and_several_outputs_matches_torch():
    results = []
    v = RNG.standard_normal(3)
    for m in (minidl, torch):
        x, w = leaves(m, X, W)
        z = w @ x
        grads = m.autograd.grad([z, (x * x).sum()], [x, w], [m.tensor(v), None])
        results.append(grads)
    for ours, theirs in zip(*results):
        assert_close(ours, theirs, np.float64)


def test_unused_input_is_an_error_unless_allow_unused():
    x, unused = minidl.tensor(X, requires_grad=True), minidl.tensor(X, requires_grad=True)
    y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="input 1 .* was not used"):
        minidl.autograd.grad(y, [x, unused], retain_graph=True)
    gx, gu = minidl.autograd.grad(y, [x, unused], allow_unused=True, retain_graph=True)
    assert gu is None and np.allclose(gx.numpy(), 2)
    _, zeros = minidl.autograd.grad(y, [x, unused], materialize_grads=True)
    assert np.array_equal(zeros.numpy(), np.zeros(4))


def test_grad_of_an_input_that_does_not_require_grad_is_an_error():
    x = minidl.tensor(X)
    with pytest.raises(RuntimeError, match="does not require grad"):
        minidl.autograd.grad((minidl.tensor(X, requires_grad=True) * x).sum(), [x])


def test_backward_inputs_accumulates_only_into_the_named_tensors_leaf_or_not():
    results = []
    for m in (minidl, torch):
        x, w = leaves(m, X, W)
        hidden = w @ x
        hidden.retain_grad()
        loss = (hidden.tanh() * 3).sum()
        loss.backward(inputs=[w, hidden])
        assert x.grad is None
        results.append((w.grad, hidden.grad))
    for ours, theirs in zip(*results):
        assert_close(ours, theirs, np.float64)


def test_grad_of_a_non_leaf_input():
    results = []
    for m in (minidl, torch):
        (x,) = leaves(m, X)
        hidden = x.exp()
        y = (hidden * hidden).sum()
        results.append(m.autograd.grad(y, [hidden, x]))
    for ours, theirs in zip(*results):
        assert_close(ours, theirs, np.float64)


def test_hooks_see_the_summed_gradient_once_with_a_graph_and_replace_it():
    results = []
    for m in (minidl, torch):
        (x,) = leaves(m, X)
        seen = []
        x.register_hook(lambda g: seen.append(g.requires_grad) or g * 2)
        (g,) = m.autograd.grad((x * x * x).sum(), x, create_graph=True)
        (h,) = m.autograd.grad(g.sum(), x)  # the hook's doubling is in the graph, and runs again
        results.append((seen, g, h))
    assert results[0][0] == results[1][0] == [True, False]
    for ours, theirs in zip(results[0][1:], results[1][1:]):
        assert_close(ours, theirs, np.float64)


def test_first_order_leaf_grad_accumulates_in_place():
    x = minidl.tensor(X, requires_grad=True)
    (x * 3).sum().backward()
    buffer = x.grad.array
    (x * 2).sum().backward()
    assert x.grad.array is buffer and np.allclose(buffer, 5)


class OpaqueCube(Cube):
    """Its backward calls NumPy directly, so it cannot be differentiated again."""

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return np.multiply(3 * np.asarray(x) ** 2, np.asarray(gy))


def test_a_users_function_is_differentiable_twice():
    x = minidl.tensor(X, requires_grad=True)
    assert minidl.autograd.gradgradcheck(Cube.apply, [x])
    (g,) = minidl.autograd.grad(Cube.apply(x).sum(), x, create_graph=True)
    (h,) = minidl.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(h.numpy(), 6 * X)


def test_a_backward_that_escapes_ctx_xp_is_an_error_naming_the_op_under_create_graph():
    x = minidl.tensor(X, requires_grad=True)
    (g,) = minidl.autograd.grad(OpaqueCube.apply(x).sum(), x)  # first order works
    np.testing.assert_allclose(g.numpy(), 3 * X * X)
    with pytest.raises(RuntimeError, match="OpaqueCubeBackward.*cannot be differentiated again"):
        minidl.autograd.grad(OpaqueCube.apply(x).sum(), x, create_graph=True)


class FusedCube(FusedFunction):
    """OpaqueCube's array-only backward, made differentiable by stating the forward with ops."""

    forward = staticmethod(Cube.forward)
    backward = staticmethod(OpaqueCube.backward)

    @staticmethod
    def composed(state, xp, x):
        return x * x * x


def test_a_fused_function_keeps_its_array_backward_and_differentiates_through_composed():
    calls = []

    class Counted(FusedCube):
        @staticmethod
        def backward(ctx, gy):
            calls.append(type(gy))
            return OpaqueCube.backward(ctx, gy)

    x = minidl.tensor(X, requires_grad=True)
    assert minidl.autograd.gradgradcheck(Counted.apply, [x])
    (g,) = minidl.autograd.grad(Counted.apply(x).sum(), x, create_graph=True)
    assert calls[-1] is np.ndarray  # the first derivative ran on arrays, also under create_graph
    (h,) = minidl.autograd.grad(g.sum(), x, create_graph=True)
    (t,) = minidl.autograd.grad(h.sum(), x)  # third order: the replay is recorded too
    np.testing.assert_allclose(g.numpy(), 3 * X * X)
    np.testing.assert_allclose(h.numpy(), 6 * X)
    np.testing.assert_allclose(t.numpy(), np.full_like(X, 6.0))


@pytest.mark.parametrize("op", ["layer_norm", "cross_entropy", "conv1d", "max_pool1d", "lstm"])
def test_third_derivatives_of_fused_and_kernel_ops_match_torch(op):
    """d³/dx³ of Σ u·op(x) through the kernels' backward Functions and FusedGrad's replay."""
    rng = np.random.default_rng(3)
    arrays = {"layer_norm": (4, 5), "cross_entropy": (4, 5), "conv1d": (2, 2, 6),
              "max_pool1d": (2, 2, 6), "lstm": (3, 2, 2)}
    x_array = rng.standard_normal(arrays[op])
    weight = rng.standard_normal((3, 2, 3))
    target = np.array([0, 2, 4, 1])

    def run(m, x):
        F = minidl.nn.functional if m is minidl else torch.nn.functional
        if op == "layer_norm":
            y = F.layer_norm(x, (5,))
        elif op == "cross_entropy":
            y = F.cross_entropy(x, m.tensor(target))
        elif op == "conv1d":
            y = F.conv1d(x.tanh(), m.tensor(weight))
        elif op == "max_pool1d":
            y = F.max_pool1d(x * x * x, 2)
        else:
            m.manual_seed(0)
            layer = (minidl.nn if m is minidl else torch.nn).LSTM(2, 2).double()
            if m is minidl:
                layer.load_state_dict({k: v.detach().numpy() for k, v in LSTM_STATE.items()})
            else:
                layer.load_state_dict(LSTM_STATE)
            y = layer(x)[0]
        return (y * y * m.tensor(np.cos(np.arange(y.numel())).reshape(tuple(y.shape)))).sum()

    results = []
    for m in (minidl, torch):
        (x,) = leaves(m, x_array)
        (g,) = m.autograd.grad(run(m, x), [x], create_graph=True)
        (h,) = m.autograd.grad(g.sum(), [x], create_graph=True)
        (t,) = m.autograd.grad(h.sum(), [x])
        results.append((g, h, t))
    for order, (ours, theirs) in enumerate(zip(*results), start=1):
        assert_close(ours, theirs, np.float64, f"{op}: derivative of order {order}")


torch.manual_seed(0)
LSTM_STATE = torch.nn.LSTM(2, 2).double().state_dict()


def test_gradgradcheck_names_a_wrong_second_derivative():
    class WrongCurvature(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x * x)  # an intermediate: a constant under create_graph
            return x ** 3

        @staticmethod
        def backward(ctx, gy):
            (square,) = ctx.saved_tensors
            return 3 * square * gy  # right at first order, but its x-dependence is lost

    x = minidl.tensor(X, requires_grad=True)
    assert minidl.gradcheck(WrongCurvature.apply, [x])  # first order is right
    with pytest.raises(minidl.autograd.GradcheckError, match="second derivative wrt input 0"):
        minidl.autograd.gradgradcheck(WrongCurvature.apply, [x])


# ----- autograd.functional against torch.autograd.functional --------------------------------------
def scalar_fn(x, w):
    return ((w @ x).tanh() ** 2).sum() + (x ** 3).sum()


def vector_fn(x, w):
    return (w @ x).tanh() * x[:3]


RNG_V3 = RNG.standard_normal(3)
RNG_VS = (RNG.standard_normal(4), RNG.standard_normal((3, 4)))
FUNCTIONAL_CASES = {
    "vjp": lambda m, xs: m.autograd.functional.vjp(vector_fn, xs, m.tensor(RNG_V3)),
    "jvp": lambda m, xs: m.autograd.functional.jvp(vector_fn, xs, tuple(m.tensor(v) for v in RNG_VS)),
    "jacobian": lambda m, xs: m.autograd.functional.jacobian(vector_fn, xs),
    "jacobian[one input]": lambda m, xs: m.autograd.functional.jacobian(lambda x: x.exp() * x.sum(), xs[0]),
    "hessian": lambda m, xs: m.autograd.functional.hessian(scalar_fn, xs),
    "hessian[one input]": lambda m, xs: m.autograd.functional.hessian(lambda x: (x ** 4).sum(), xs[0]),
    "hvp": lambda m, xs: m.autograd.functional.hvp(scalar_fn, xs, tuple(m.tensor(v) for v in RNG_VS)),
    "vhp": lambda m, xs: m.autograd.functional.vhp(scalar_fn, xs, tuple(m.tensor(v) for v in RNG_VS)),
}


def _flat(result):
    if isinstance(result, (tuple, list)):
        return [t for item in result for t in _flat(item)]
    return [result]


def _layout(result):
    """The nesting of tuples and the shapes of the Tensors in a functional result."""
    if isinstance(result, (tuple, list)):
        return tuple(_layout(item) for item in result)
    return tuple(result.shape)


@pytest.mark.parametrize("name", sorted(FUNCTIONAL_CASES))
def test_functional_matches_torch(name):
    ours = FUNCTIONAL_CASES[name](minidl, (minidl.tensor(X), minidl.tensor(W)))
    theirs = FUNCTIONAL_CASES[name](torch, (torch.tensor(X), torch.tensor(W)))
    assert _layout(ours) == _layout(theirs), name
    ours, theirs = _flat(ours), _flat(theirs)
    for a, b in zip(ours, theirs):
        assert not a.requires_grad
        assert_close(a, b, np.float64, name)


def test_functional_create_graph_keeps_the_result_differentiable():
    results = []
    for m in (minidl, torch):
        (x,) = leaves(m, X)
        _, hv = m.autograd.functional.hvp(lambda t: (t ** 4).sum(), x, m.tensor(np.ones(4)),
                                          create_graph=True)
        results.append(m.autograd.grad(hv.sum(), x))
    assert_close(results[0][0], results[1][0], np.float64)


def test_functional_strict_raises_for_an_independent_output():
    with pytest.raises(RuntimeError, match="strict"):
        functional.jacobian(lambda x, y: x * 2, (minidl.tensor(X), minidl.tensor(X)), strict=True)
    jac = functional.jacobian(lambda x, y: x * 2, (minidl.tensor(X), minidl.tensor(X)))
    assert np.array_equal(jac[1].numpy(), np.zeros((4, 4)))


def test_functional_hessian_needs_a_scalar_function():
    with pytest.raises(RuntimeError, match="single Tensor with one element"):
        functional.hessian(lambda x: x * 2, minidl.tensor(X))
