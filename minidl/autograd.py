"""Reverse-mode automatic differentiation: ``Function``, its context, grad modes, the graph walk.

A deliberate choice: ``Function.forward`` and ``Function.backward`` see backend arrays (NumPy or
CuPy), not Tensors. The graph is recorded once, by ``Function.apply``, around the forward; backward
is plain array math, so no graph is ever built while differentiating (no double backward). Built-in
ops and a student's own op use exactly this mechanism.
"""
from __future__ import annotations

import functools
import traceback

from minidl import backend
from minidl.tensors import Tensor


class _GradMode:
    enabled = True


class _AnomalyMode:
    enabled = False


def is_grad_enabled() -> bool:
    return _GradMode.enabled


class _GradModeSwitch:
    """Set grad mode on entering, restore it on leaving; also a decorator."""

    mode = True

    def __enter__(self):
        self.previous = _GradMode.enabled
        _GradMode.enabled = self.mode
        return self

    def __exit__(self, *exc_info):
        _GradMode.enabled = self.previous

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            previous = _GradMode.enabled
            _GradMode.enabled = self.mode
            try:
                return fn(*args, **kwargs)
            finally:
                _GradMode.enabled = previous
        return wrapper


class no_grad(_GradModeSwitch):
    """Build no graph inside (context manager or decorator)."""

    mode = False


class enable_grad(_GradModeSwitch):
    """Build the graph inside, even within ``no_grad``."""

    mode = True


class set_grad_enabled(_GradModeSwitch):
    """Turn graph recording on or off: as a call it takes effect at once (as in PyTorch)."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self.previous = _GradMode.enabled
        _GradMode.enabled = self.mode

    def __enter__(self):
        return self  # already switched by __init__; __exit__ restores what was there before it


def is_anomaly_enabled() -> bool:
    return _AnomalyMode.enabled


class set_detect_anomaly:
    """Check every forward and backward for NaN/inf and name the op and where it was created."""

    def __init__(self, mode: bool):
        self.previous = _AnomalyMode.enabled
        _AnomalyMode.enabled = bool(mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        _AnomalyMode.enabled = self.previous


class detect_anomaly(set_detect_anomaly):
    """Context manager: anomaly detection on inside."""

    def __init__(self):
        super().__init__(True)


class FunctionCtx:
    """What a Function's forward leaves for its backward; also the node of the graph.

    Public: ``save_for_backward``, ``saved_tensors``, ``needs_input_grad``, ``xp`` (the array
    module of the inputs) and any attribute the forward sets (those live in ``__dict__``, which is
    cleared when the graph is freed). Underscored fields are the graph's own.
    """

    __slots__ = ("xp", "needs_input_grad", "_fn", "_inputs", "_output_meta", "_watched", "_saved",
                 "_released", "_trace", "__dict__")

    def __init__(self, fn: type, xp, needs_input_grad: tuple):
        self.xp = xp
        self.needs_input_grad = needs_input_grad
        self._fn = fn
        self._inputs: tuple = ()
        self._output_meta: tuple = ()
        self._watched: dict = {}  # output index -> Tensor with hooks or retain_grad
        self._saved: tuple = ()
        self._released = False
        self._trace: list[str] | None = None

    def save_for_backward(self, *arrays) -> None:
        self._saved = arrays

    @property
    def saved_tensors(self) -> tuple:
        return self._saved

    @property
    def name(self) -> str:
        return self._fn.__name__ + "Backward"

    def __repr__(self) -> str:
        return f"<{self.name}>"

    def _release(self) -> None:
        """Free what the forward saved: the graph is used up after one backward."""
        self.__dict__.clear()
        self._saved = ()
        self._released = True


class Function:
    """Base class of every differentiable op, built-in or user-defined (as ``torch.autograd.Function``).

    Subclasses write two static methods on arrays::

        class Square(Function):
            @staticmethod
            def forward(ctx, x):          # x: numpy/cupy array
                ctx.save_for_backward(x)
                return x * x
            @staticmethod
            def backward(ctx, gy):        # one array per output
                (x,) = ctx.saved_tensors
                return 2 * x * gy         # one gradient (or None) per forward argument

    and call ``Square.apply(tensor)``. Tensor arguments must be positional; keyword arguments are
    passed through unchanged.
    """

    @staticmethod
    def forward(ctx: FunctionCtx, *args, **kwargs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx: FunctionCtx, *grad_outputs):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        tensors, arrays, needs_grad, first = [], [], [], None
        for arg in args:  # one pass: this is the per-op overhead of the whole engine
            if isinstance(arg, Tensor):
                if first is None:
                    first = arg
                tensors.append(arg)
                arrays.append(arg._data)
                needs_grad.append(arg._requires_grad)
            else:
                tensors.append(None)
                arrays.append(arg)
                needs_grad.append(False)
        if backend.cupy_loaded():  # with NumPy alone every tensor is on the CPU
            _check_same_device(cls.__name__, [t for t in tensors if t is not None])
        xp = backend.get_array_module(first._data) if first is not None else backend.np
        record = _GradMode.enabled and any(needs_grad)
        ctx = FunctionCtx(cls, xp, tuple(needs_grad))
        outputs = cls.forward(ctx, *arrays, **kwargs)
        several = isinstance(outputs, tuple)
        outputs = outputs if several else (outputs,)
        if xp is backend.np:  # NumPy returns 0-d results as scalars; a Tensor always holds an array
            outputs = tuple(o if type(o) is backend.np.ndarray else backend.np.asarray(o) for o in outputs)
        if _AnomalyMode.enabled:
            ctx._trace = traceback.format_stack()[:-1]
            _check_finite(ctx, outputs, "forward output")
        results = tuple(Tensor(o, record and o.dtype.kind in "fc") for o in outputs)
        if record:
            ctx._inputs = tuple(tensors)
            ctx._output_meta = tuple((o.shape, o.dtype) for o in outputs)
            for index, result in enumerate(results):
                result._ctx, result._output_index = ctx, index
        return results if several else results[0]

def _check_same_device(op: str, tensors: list) -> None:
    devices = {str(t.device) for t in tensors}
    if len(devices) > 1:
        raise RuntimeError(f"{op}: expected all tensors on the same device, got {' and '.join(sorted(devices))}")


def _check_finite(ctx: FunctionCtx, arrays, what: str) -> None:
    for index, array in enumerate(arrays):
        if array is None or array.dtype.kind not in "fc":
            continue
        if not bool(ctx.xp.isfinite(array).all()):
            where = "".join(ctx._trace or ["(no trace)"])
            raise RuntimeError(f"anomaly: Function '{ctx._fn.__name__}' produced NaN or inf in its "
                               f"{what} {index}. The op was created at:\n{where}")


def backward(tensor: Tensor, grad=None, retain_graph: bool = False) -> None:
    """Accumulate d(tensor)/d(leaf) into every leaf's ``.grad`` by walking the graph backwards.

    The walk is iterative (Kahn's algorithm on dependency counts), so graph depth is unbounded.
    """
    if not tensor.requires_grad:
        raise RuntimeError("backward: the tensor does not require grad and has no grad_fn")
    xp = backend.get_array_module(tensor._data)
    if grad is None:
        if tensor._data.size != 1:
            raise RuntimeError(f"backward: grad can be implicitly created only for scalar outputs, "
                               f"got a tensor of shape {tuple(tensor.shape)}; pass grad=")
        grad_array = xp.ones_like(tensor._data)
    else:
        grad_array = grad._data if isinstance(grad, Tensor) else xp.asarray(grad)
        if grad_array.shape != tensor._data.shape:
            raise RuntimeError(f"backward: grad has shape {tuple(grad_array.shape)} but the tensor "
                               f"has shape {tuple(tensor.shape)}")
    if tensor._ctx is None:
        _accumulate_leaf(tensor, grad_array)
        return
    root = tensor._ctx
    dependencies = _count_dependencies(root)
    pending = {root: [None] * len(root._output_meta)}
    pending[root][tensor._output_index] = grad_array
    ready = [root]
    while ready:
        node = ready.pop()
        output_grads = pending.pop(node, None)
        if output_grads is not None:
            _run_node(node, output_grads, pending, retain_graph)
        for parent in node._inputs:
            if parent is not None and parent._ctx is not None:
                dependencies[parent._ctx] -= 1
                if dependencies[parent._ctx] == 0:
                    ready.append(parent._ctx)


def _count_dependencies(root: FunctionCtx) -> dict:
    """How many graph edges point into each node (so a node runs once all its grads arrived)."""
    counts = {root: 0}
    stack = [root]
    while stack:
        node = stack.pop()
        for parent in node._inputs:
            if parent is None or parent._ctx is None:
                continue
            child = parent._ctx
            if child not in counts:
                counts[child] = 0
                stack.append(child)
            counts[child] += 1
    return counts


def _run_node(node: FunctionCtx, output_grads: list, pending: dict, retain_graph: bool) -> None:
    if node._released:
        raise RuntimeError(f"{node.name}: trying to backward through the graph a second time; the "
                           "saved values were freed by the first backward. Pass retain_graph=True "
                           "to the first backward if you need to backward twice.")
    xp = node.xp
    for index, (shape, dtype) in enumerate(node._output_meta):
        if output_grads[index] is None:
            output_grads[index] = xp.zeros(shape, dtype=dtype)
        watched = node._watched.get(index)
        if watched is not None:
            output_grads[index] = _run_hooks(watched, output_grads[index])
            if watched._retains_grad:
                watched.grad = Tensor(output_grads[index].copy())
    input_grads = node._fn.backward(node, *output_grads)
    if not isinstance(input_grads, tuple):
        input_grads = (input_grads,)
    if len(input_grads) != len(node._inputs):
        raise RuntimeError(f"{node.name} returned {len(input_grads)} gradients, expected "
                           f"{len(node._inputs)} (one per forward argument, None for non-tensors)")
    if _AnomalyMode.enabled:
        _check_finite(node, input_grads, "backward gradient")
    if not retain_graph:
        node._release()
    for parent, grad in zip(node._inputs, input_grads):
        if parent is None or grad is None or not parent.requires_grad:
            continue
        if grad.shape != parent._data.shape:
            raise RuntimeError(f"{node.name} returned a gradient of shape {tuple(grad.shape)} for an "
                               f"input of shape {tuple(parent.shape)}")
        if parent._ctx is None:
            _accumulate_leaf(parent, grad)
            continue
        slots = pending.setdefault(parent._ctx, [None] * len(parent._ctx._output_meta))
        previous = slots[parent._output_index]
        slots[parent._output_index] = grad if previous is None else previous + grad


def _run_hooks(tensor: Tensor, grad):
    for hook in tensor._hooks or ():
        replaced = hook(Tensor(grad))
        if replaced is not None:
            grad = replaced._data if isinstance(replaced, Tensor) else replaced
    return grad


def _accumulate_leaf(leaf: Tensor, grad) -> None:
    grad = _run_hooks(leaf, grad)
    xp = backend.get_array_module(grad)
    if leaf.grad is None:
        # a copy: a backward may hand the same array to several inputs, and optimizers update in place
        leaf.grad = Tensor(xp.array(grad, dtype=leaf.dtype, copy=True))
    else:
        leaf.grad = Tensor(leaf.grad._data + grad)
