"""Autograd semantics: accumulation, graph shapes, grad modes, freeing, hooks, custom Functions, errors."""
import numpy as np
import pytest
import torch
from helpers import Cube

import minidl
from minidl.autograd import Function


def test_gradients_accumulate_across_backward_calls():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3 + 2, 3 + 4])


def test_diamond_graph_sums_both_paths():
    # y = a*b + a/b reaches a twice; dy/da = b + 1/b
    a = minidl.tensor(2.0, requires_grad=True)
    b = minidl.tensor(4.0, requires_grad=True)
    y = a * b + a / b
    y.backward()
    assert a.grad.item() == pytest.approx(4 + 0.25)
    assert b.grad.item() == pytest.approx(2 - 2 / 16)


def test_tensor_reused_many_times_in_one_op():
    x = minidl.tensor([1.5, -2.0], requires_grad=True)
    (x * x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 * np.array([1.5, -2.0]) ** 2, rtol=1e-6)


def test_broadcast_gradient_is_reduced_to_the_input_shape():
    x = minidl.randn(3, 1, requires_grad=True)
    y = minidl.randn(4, requires_grad=True)
    (x + y).sum().backward()
    assert x.grad.shape == (3, 1) and y.grad.shape == (4,)
    np.testing.assert_allclose(x.grad.numpy(), np.full((3, 1), 4.0))
    np.testing.assert_allclose(y.grad.numpy(), np.full(4, 3.0))


def test_no_grad_builds_no_graph_as_context_and_decorator():
    x = minidl.randn(3, requires_grad=True)
    with minidl.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None

    @minidl.no_grad()
    def double(t):
        return t * 2

    assert not double(x).requires_grad
    assert (x * 2).requires_grad  # switched back on after both
    with minidl.no_grad():
        with minidl.enable_grad():
            assert (x * 2).requires_grad


def test_set_grad_enabled_takes_effect_at_once_and_restores_in_with():
    x = minidl.randn(2, requires_grad=True)
    with minidl.set_grad_enabled(False):
        assert not (x + 1).requires_grad
    assert (x + 1).requires_grad


def test_graph_is_freed_and_second_backward_raises():
    x = minidl.randn(3, requires_grad=True)
    y = (x.exp() * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = minidl.randn(3, requires_grad=True)
    y = (x.exp() * 2).sum()
    y.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first, rtol=1e-6)


def test_backward_on_non_scalar_needs_a_gradient():
    x = minidl.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="only for scalar outputs"):
        (x * 2).backward()
    (x * 2).backward(minidl.ones(3))
    np.testing.assert_allclose(x.grad.numpy(), np.full(3, 2.0))
    with pytest.raises(RuntimeError, match=r"grad has shape \(2,\)"):
        (x * 2).backward(minidl.ones(2))


def test_backward_without_grad_requirement_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        minidl.randn(3).sum().backward()


def test_detach_cuts_the_graph():
    x = minidl.randn(3, requires_grad=True)
    y = x.detach()
    assert not y.requires_grad and y.is_leaf
    assert np.shares_memory(x.numpy(), y.numpy())
    (x * 2 + y).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(3, 2.0))


def test_chain_of_100000_ops_does_not_hit_the_recursion_limit():
    x = minidl.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.backward()
    assert x.grad.item() == 1.0


def test_leaf_and_grad_fn_bookkeeping():
    x = minidl.randn(2, requires_grad=True)
    y = x * 2
    assert x.is_leaf and not y.is_leaf
    assert "MulBackward" in repr(y.grad_fn)
    with pytest.raises(RuntimeError, match="only floating point"):
        minidl.tensor([1, 2]).requires_grad_()


def test_retain_grad_and_hooks():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    y.retain_grad()
    seen = []
    y.register_hook(lambda g: seen.append(g.numpy().copy()))
    handle = x.register_hook(lambda g: g * 10)  # replaces the leaf's gradient
    (y * y).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), 2 * np.array([3.0, 6.0]))
    np.testing.assert_allclose(seen[0], [6.0, 12.0])
    np.testing.assert_allclose(x.grad.numpy(), 10 * 3 * np.array([6.0, 12.0]))
    handle.remove()
    x.grad = None
    (x * 1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0])


def test_hooks_match_torch_semantics():
    values = np.array([0.5, -1.0, 2.0])
    results = []
    for m in (minidl, torch):
        x = m.tensor(values, requires_grad=True)
        h = x * x
        h.register_hook(lambda g: g * 2)
        h.retain_grad()
        (h * x).sum().backward()
        results.append((x.grad.numpy().copy(), h.grad.numpy().copy()))
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs)


def test_a_leafs_hook_runs_as_soon_as_its_gradient_is_complete():
    """As PyTorch's AccumulateGrad: the last layer's weight hook fires before the backward of the
    earlier layers runs (what lets DDP's all-reduce overlap the backward), once, with the sum."""
    order = []

    class Marker(Function):
        """y = x, noting when its backward runs."""

        @staticmethod
        def forward(ctx, x):
            return x.copy()

        @staticmethod
        def backward(ctx, gy):
            order.append("first layer's backward")
            return gy

    for engine in (minidl, torch):
        order.clear()
        x = engine.tensor([1.0, 2.0], requires_grad=True)
        w = engine.tensor([3.0, 4.0], requires_grad=True)
        w.register_hook(lambda g: order.append(("w", g.tolist())))
        x.register_hook(lambda g: order.append(("x", g.tolist())))
        middle = Marker.apply(x) if engine is minidl else x * 1
        if engine is torch:
            middle.register_hook(lambda g: order.append("first layer's backward"))
        ((middle * w) * w).sum().backward()  # two edges into w: its hook sees the sum, once
        assert order == [("w", [6.0, 16.0]), "first layer's backward", ("x", [9.0, 16.0])], engine


class WrongCube(Cube):
    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return 2 * x * x * gy


def test_custom_function_is_gradchecked_and_wrong_backward_is_caught():
    x = minidl.randn(4, dtype=minidl.float64, requires_grad=True)
    assert minidl.gradcheck(Cube.apply, [x])
    with pytest.raises(minidl.GradcheckError, match=r"input 0 \(shape \(4,\)\) is wrong at index"):
        minidl.gradcheck(WrongCube.apply, [x])


def test_gradcheck_rejects_float32_and_inputs_without_grad():
    with pytest.raises(ValueError, match="float64"):
        minidl.gradcheck(Cube.apply, [minidl.randn(3, requires_grad=True)])
    with pytest.raises(ValueError, match="no input requires grad"):
        minidl.gradcheck(Cube.apply, [minidl.randn(3, dtype=minidl.float64)])


def test_function_returning_the_wrong_gradient_shape_is_named():
    class Bad(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, gy):
            return gy.sum()

    x = minidl.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"BadBackward returned a gradient of shape \(\) for an input of shape \(3,\)"):
        Bad.apply(x).sum().backward()


def test_anomaly_detection_names_the_op_in_forward_and_backward():
    x = minidl.tensor([-1.0, 4.0], requires_grad=True)
    with minidl.autograd.detect_anomaly(), np.errstate(invalid="ignore", divide="ignore"):
        with pytest.raises(RuntimeError, match="anomaly: Function 'Log' produced NaN or inf in its forward"):
            minidl.log(x)
        y = minidl.tensor([0.0, 4.0], requires_grad=True)
        z = minidl.sqrt(y)  # forward finite (0, 2); backward divides by 0
        with pytest.raises(RuntimeError, match="Function 'Sqrt' produced NaN or inf in its backward"):
            z.sum().backward()
    assert not minidl.autograd.is_anomaly_enabled()
    with np.errstate(invalid="ignore", divide="ignore"):
        assert np.isnan(minidl.log(x).numpy()[0])  # off again: no error


def test_mismatched_shapes_dtypes_and_devices_give_clear_errors():
    with pytest.raises(RuntimeError, match=r"matmul: shapes \(2, 3\) and \(2, 3\) cannot be multiplied"):
        minidl.randn(2, 3) @ minidl.randn(2, 3)
    with pytest.raises(RuntimeError, match="matmul: expected both operands to have the same dtype, got float32 and float64"):
        minidl.randn(2, 3) @ minidl.randn(3, 2, dtype=minidl.float64)
    with pytest.raises(RuntimeError, match=r"reshape: shape \(4,\) is invalid for a tensor of shape \(2, 3\)"):
        minidl.randn(2, 3).reshape(4)
    with pytest.raises(IndexError, match="sum: dim 3 is out of range for a tensor with 2 dimensions"):
        minidl.randn(2, 3).sum(dim=3)
    with pytest.raises(RuntimeError, match=r"cat: tensors must have the same shape except in dim 0"):
        minidl.cat([minidl.randn(2, 3), minidl.randn(2, 4)])
    with pytest.raises(ValueError, match="unknown device type 'tpu'"):
        minidl.randn(2).to("tpu")


@pytest.mark.gpu
def test_ops_on_two_devices_name_both():
    with pytest.raises(RuntimeError, match="Add: expected all tensors on the same device, got cpu and cuda:0"):
        minidl.randn(2) + minidl.randn(2, device="cuda")


def test_cuda_request_without_a_device_says_what_is_missing():
    if minidl.cuda_is_available():
        pytest.skip("this machine has a CUDA device; the message is for machines without one")
    with pytest.raises(RuntimeError, match=r'CuPy is not installed: pip install "minidl\[gpu\]"|none was found'):
        minidl.randn(2).to("cuda")


def test_tracing_sees_every_op_with_or_without_grad_and_records_no_graph():
    seen = []
    x = minidl.randn(2, 3)  # requires no grad: the trace still sees the ops
    with minidl.no_grad(), minidl.autograd.tracing(lambda fn, args, kwargs, out: seen.append(
            (fn.__name__, len(args), out))):
        y = (x * 2).sum(axis=1)
    assert [name for name, _, _ in seen] == ["Mul", "Sum"]
    assert seen[-1][2][0] is y and y.grad_fn is None
    x * 2  # outside the context nothing is traced
    assert len(seen) == 2


class _ScaleRecordingWants(Function):
    """z = x * w, recording which input gradients each backward was asked for."""

    asked: list = []

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x * w

    @staticmethod
    def backward(ctx, gz):
        x, w = ctx.saved_tensors
        _ScaleRecordingWants.asked.append(tuple(ctx.needs_input_grad))
        return (gz * w if ctx.needs_input_grad[0] else None,
                gz * x if ctx.needs_input_grad[1] else None)


def test_grad_towards_some_inputs_asks_no_backward_for_the_others():
    """grad(y, [x]) computes no gradient for w (as PyTorch's engine); the node's own
    needs_input_grad is back afterwards, so a later full backward asks for both."""
    _ScaleRecordingWants.asked = []
    x, w = minidl.tensor([1.0, 2.0], requires_grad=True), minidl.tensor([3.0, 4.0], requires_grad=True)
    z = (_ScaleRecordingWants.apply(x, w) * 2).sum()
    (gx,) = minidl.autograd.grad(z, [x], retain_graph=True)
    np.testing.assert_array_equal(gx.numpy(), [6.0, 8.0])
    assert _ScaleRecordingWants.asked == [(True, False)]
    (gx, gw) = minidl.autograd.grad(z, [x, w], retain_graph=True, create_graph=True)
    np.testing.assert_array_equal(gw.numpy(), [2.0, 4.0])
    z.backward()
    assert _ScaleRecordingWants.asked[1:] == [(True, True), (True, True)]
    np.testing.assert_array_equal(w.grad.numpy(), [2.0, 4.0])
    assert x.grad is not None and gx.requires_grad
