"""``Function`` (one differentiable op) and the context that is both its memory and a graph node."""
from __future__ import annotations

import traceback

from minidl import backend
from minidl.autograd.grad_mode import _MODES
from minidl.tensors import WRITE_CLOCK, Tensor


class FunctionCtx:
    """What a Function's forward leaves for its backward; also the node of the graph.

    Public: ``save_for_backward``, ``saved_tensors``, ``needs_input_grad``, ``xp`` (the array
    module of the inputs) and any attribute the forward sets (those live in ``__dict__``, which is
    cleared when the graph is freed). Underscored fields are the graph's own.
    """

    __slots__ = ("xp", "needs_input_grad", "_fn", "_inputs", "_output_meta", "_watched", "_saved",
                 "_raw_outputs", "_released", "_trace", "_options", "_clock", "_modified_outputs",
                 "__dict__")

    def __init__(self, fn: type, xp, needs_input_grad: tuple):
        self.xp = xp
        self.needs_input_grad = needs_input_grad
        self._fn = fn
        self._saved: tuple = ()
        self._trace: list[str] | None = None

    def _record(self, inputs: tuple, options: dict, outputs: tuple, raw: tuple) -> list:
        """Make this context a graph node (only then: an op that records nothing skips this) and
        return its outputs as Tensors that point back to it."""
        self._inputs = inputs  # a Tensor per positional argument, None for a constant
        self._options = options
        self._watched: dict | None = None  # output index -> Tensor with hooks or retain_grad
        self._modified_outputs: dict | None = None  # output index -> version, outputs written since
        self._released = False
        # what forward returned (by identity) and the write clock, when it saved something
        self._raw_outputs, self._clock = (raw, WRITE_CLOCK[0]) if self._saved else ((), 0)
        results, output_meta = [], []
        for index, array in enumerate(outputs):  # a loop, not comprehensions: this runs per op
            result = Tensor._wrap(array, array.dtype.kind in "fc")
            result._ctx, result._output_index = self, index
            results.append(result)
            output_meta.append((array.shape, array.dtype))
        self._output_meta = tuple(output_meta)
        return results

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
        self._raw_outputs = ()
        self._options = {}
        self._released = True


class GraphContext:
    """The view of a node that its backward sees under ``create_graph=True``.

    ``xp`` is the Tensor namespace (NumPy's names, each call a recorded op), ``saved_tensors`` are
    Tensors: a saved input is the input's own Tensor and a saved output is this node's output, so
    the gradient they enter is differentiable with respect to both. Any other saved array (a mask,
    indices) is a constant. Attributes the forward set (``ctx.axis``...) are read from the node.
    """

    def __init__(self, node: FunctionCtx, namespace):
        self._node = node
        self.xp = namespace
        self.needs_input_grad = node.needs_input_grad
        self.saved_tensors = tuple(_saved_tensor(node, array) for array in node._saved)

    def __getattr__(self, name: str):
        return getattr(self._node, name)


def _saved_tensor(node: FunctionCtx, array):
    """A saved array as a Tensor: the input or output it is (by identity), else a constant."""
    for tensor in node._inputs:
        if tensor is not None and tensor._data is array:
            return tensor
    for index, output in enumerate(node._raw_outputs):
        if output is array:
            tensor = Tensor(backend.get_array_module(array).asarray(array), True)
            tensor._ctx, tensor._output_index = node, index  # the node's own output, re-entered
            return tensor
    return Tensor(array) if hasattr(array, "shape") else array  # a constant (or a Python scalar)


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
    passed through unchanged. Written with operators and ``ctx.xp`` functions (NumPy's names),
    the same backward is differentiable again under ``create_graph=True`` (see minidl.autograd).

    ``apply`` on plain arrays (no Tensor among the arguments) runs only ``forward`` and returns its
    arrays: that is how a backward calls another Function (a fused kernel's gradient) and stays
    differentiable, at the cost of one call on the first-order path.
    """

    @staticmethod
    def forward(ctx: FunctionCtx, *args, **kwargs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx: FunctionCtx, *grad_outputs):
        raise NotImplementedError

    @classmethod
    def _graph_backward(cls, ctx, *grad_outputs):
        """The backward under ``create_graph`` (``ctx`` a GraphContext): the same ``backward``."""
        return cls.backward(ctx, *grad_outputs)

    @classmethod
    def apply(cls, *args, **kwargs):
        arrays, first, any_needs_grad = [], None, False
        for arg in args:  # one pass: this is the per-op overhead of the whole engine
            if isinstance(arg, Tensor):
                if first is None:
                    first = arg
                any_needs_grad = any_needs_grad or arg._requires_grad
                arrays.append(arg._data)
            else:
                arrays.append(arg)
        if first is None:
            return cls.forward(FunctionCtx(cls, _array_module_of(args), ()), *args, **kwargs)
        xp = backend.np
        if backend.cupy_loaded():  # with NumPy alone every tensor is on the CPU
            _check_same_device(cls.__name__, [arg for arg in args if isinstance(arg, Tensor)])
            xp = backend.get_array_module(first._data)
        modes = _MODES
        if modes.watched:  # traced or checked for anomalies, recorded or not
            return cls._apply_recording(args, arrays, kwargs, xp, modes)
        if any_needs_grad and modes.grad:
            return cls._apply_recording(args, arrays, kwargs, xp, None)
        # the no-graph path (no_grad, inference, nothing requires grad): forward and wrap, no more
        raw = cls.forward(FunctionCtx(cls, xp, (False,) * len(args)), *arrays, **kwargs)
        if type(raw) is tuple:
            return tuple([Tensor._wrap(_as_array(xp, o), False) for o in raw])
        return Tensor._wrap(_as_array(xp, raw), False)

    @classmethod
    def _apply_recording(cls, args, arrays, kwargs, xp, watched_modes):
        """``apply`` when the op becomes a graph node (``watched_modes`` None: grad mode is on and
        an input requires grad), or is traced or checked for anomalies (the thread's modes)."""
        inputs, needs_grad = [], []
        for arg in args:  # a loop, not comprehensions: this runs per op
            tensor = arg if isinstance(arg, Tensor) else None
            inputs.append(tensor)
            needs_grad.append(tensor is not None and tensor._requires_grad)
        inputs, needs_grad = tuple(inputs), tuple(needs_grad)
        ctx = FunctionCtx(cls, xp, needs_grad)
        raw = cls.forward(ctx, *arrays, **kwargs)
        several = type(raw) is tuple
        outputs = tuple([_as_array(xp, o) for o in raw]) if several else (_as_array(xp, raw),)
        watched = watched_modes is not None
        if watched and watched_modes.anomaly:
            ctx._trace = traceback.format_stack()[:-1]
            check_finite(ctx, outputs, "forward output")
        if not watched or (watched_modes.grad and True in needs_grad):
            results = ctx._record(inputs, kwargs, outputs, raw if several else (raw,))
        else:
            results = [Tensor._wrap(o, False) for o in outputs]
        if watched and watched_modes.tracer is not None:
            watched_modes.tracer(cls, args, kwargs, tuple(results))
        return tuple(results) if several else results[0]


def _as_array(xp, value):
    """NumPy returns 0-d results as scalars; a Tensor always holds an array."""
    if xp is backend.np and type(value) is not backend.np.ndarray:
        return backend.np.asarray(value)
    return value


def _array_module_of(args):
    for arg in args:
        if hasattr(arg, "shape"):
            return backend.get_array_module(arg)
    return backend.np


def _check_same_device(op: str, tensors: list) -> None:
    devices = {str(t.device) for t in tensors}
    if len(devices) > 1:
        raise RuntimeError(f"{op}: expected all tensors on the same device, got {' and '.join(sorted(devices))}")


def check_finite(ctx: FunctionCtx, arrays, what: str) -> None:
    """Anomaly mode: raise naming the op and where it was created if an array holds NaN or inf."""
    for index, array in enumerate(arrays):
        if isinstance(array, Tensor):
            array = array._data
        if array is None or array.dtype.kind not in "fc":
            continue
        if not bool(backend.get_array_module(array).isfinite(array).all()):
            where = "".join(ctx._trace or ["(no trace)"])
            raise RuntimeError(f"anomaly: Function '{ctx._fn.__name__}' produced NaN or inf in its "
                               f"{what} {index}. The op was created at:\n{where}")


def check_saved_versions(node: FunctionCtx) -> None:
    """Raise if a value the forward saved (an input or output, by identity) was written in place
    since: its gradient would be computed from the new values, silently wrong."""
    if WRITE_CLOCK[0] == node._clock:
        return  # no in-place write anywhere since the forward: the common case, in O(1)
    saved = {id(array) for array in node._saved}
    for index, tensor in enumerate(node._inputs):
        if (tensor is not None and getattr(tensor, "_written_at", 0) > node._clock
                and id(tensor._data) in saved):
            raise RuntimeError(_modified_message(node, tensor._data, f"input {index}",
                                                 tensor._version))
    for index, version in (node._modified_outputs or {}).items():
        if id(node._raw_outputs[index]) in saved:
            raise RuntimeError(_modified_message(node, node._raw_outputs[index], f"output {index}",
                                                 version))


def _modified_message(node: FunctionCtx, array, which: str, version: int) -> str:
    return (f"one of the variables needed for gradient computation has been modified by an "
            f"inplace operation: [{array.dtype} {tuple(array.shape)}], which is {which} of "
            f"{node.name}, is at version {version}, written after the forward that saved it. "
            "Hint: the in-place write (fill_, zero_, copy_, an optimizer step...) happened between "
            "the forward and this backward; do it after the backward, or on a clone")
