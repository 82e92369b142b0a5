"""``Tensor``: an array from the backend plus what autograd needs (grad, requires_grad, its node).

Methods are thin: each calls the op of the same name in ``minidl.ops``, where forward and backward
are written together.
"""
from __future__ import annotations

import numpy as np

from minidl import backend


class Tensor:
    """A multi-dimensional array that records the ops applied to it when it requires grad.

    Create tensors with :func:`minidl.tensor` and the factories (``zeros``, ``randn``, ...).
    ``.data`` is the backend array (``numpy.ndarray`` on CPU, ``cupy.ndarray`` on CUDA).
    """

    __slots__ = ("_data", "_requires_grad", "grad", "_ctx", "_output_index", "_hooks",
                 "_retains_grad", "__weakref__")
    __array_priority__ = 1000  # ndarray <op> Tensor defers to Tensor's reflected operators

    def __init__(self, data, requires_grad: bool = False):
        self._data = data
        self._requires_grad = requires_grad
        self.grad: Tensor | None = None
        self._ctx = None  # the FunctionCtx that produced this tensor; None for a leaf
        self._output_index = 0
        self._hooks = None
        self._retains_grad = False

    # ----- attributes -------------------------------------------------------------------------
    @property
    def data(self):
        return self._data

    @data.setter
    def data(self, array) -> None:
        self._data = array

    @property
    def shape(self) -> tuple:
        return self._data.shape

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def device(self) -> backend.Device:
        return backend.device_of(self._data)

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        if flag and self._data.dtype.kind not in "fc":
            raise RuntimeError(f"only floating point tensors can require gradients, got dtype {self.dtype}")
        if self._ctx is not None and not flag:
            raise RuntimeError("requires_grad can only be turned off on leaf tensors; use .detach()")
        self._requires_grad = bool(flag)

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self):
        return self._ctx

    @property
    def retains_grad(self) -> bool:
        return self._retains_grad

    @property
    def T(self) -> Tensor:
        return _ops.permute(self, tuple(reversed(range(self.ndim))))

    @property
    def mT(self) -> Tensor:
        return _ops.transpose(self, -2, -1)

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return self.ndim

    def numel(self) -> int:
        return int(self._data.size)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    # ----- conversion -------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The data as a host NumPy array: shared memory on CPU (as PyTorch), a copy from a GPU."""
        return backend.to_numpy(self._data)

    def item(self):
        if self._data.size != 1:
            raise RuntimeError(f"item: a tensor with {self._data.size} elements cannot be converted to a scalar")
        return self._data.reshape(()).item()

    def tolist(self):
        return backend.to_numpy(self._data).tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        return bool(self.item())

    def __index__(self) -> int:
        if self._data.dtype.kind not in "iu":
            raise TypeError(f"only integer tensors can be used as an index, got dtype {self.dtype}")
        return int(self.item())

    def __array__(self, dtype=None, copy=None):
        array = backend.to_numpy(self._data)
        return array if dtype is None else array.astype(dtype)

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor(self._data)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        self.requires_grad = requires_grad
        return self

    def clone(self) -> Tensor:
        return _ops.clone(self)

    def contiguous(self) -> Tensor:
        return self

    def to(self, target=None, dtype=None) -> Tensor:
        """Move to a device (``"cpu"``, ``"cuda"``, a ``Device``) and/or cast to a dtype."""
        result = self
        if target is not None and backend.is_device_spec(target):
            result = _ops.to_device(result, backend.Device(target))
        elif target is not None:
            dtype = target
        if dtype is not None:
            result = _ops.to_dtype(result, np.dtype(dtype))
        return result

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self, index: int = 0) -> Tensor:
        return self.to(backend.Device("cuda", index))

    def float(self) -> Tensor:
        return self.to(np.float32)

    def double(self) -> Tensor:
        return self.to(np.float64)

    def half(self) -> Tensor:
        return self.to(np.float16)

    def long(self) -> Tensor:
        return self.to(np.int64)

    def int(self) -> Tensor:
        return self.to(np.int32)

    def bool(self) -> Tensor:
        return self.to(np.bool_)

    def type_as(self, other: Tensor) -> Tensor:
        return self.to(other.dtype)

    # ----- autograd ---------------------------------------------------------------------------
    def backward(self, gradient=None, retain_graph: bool | None = None, create_graph: bool = False,
                 inputs=None) -> None:
        """Accumulate the gradient of this tensor into the ``.grad`` of every leaf it depends on.

        ``create_graph=True`` records the backward too, so the ``.grad`` can be differentiated
        again; ``retain_graph`` defaults to it; ``inputs`` limits which tensors accumulate.
        """
        from minidl.autograd import backward  # autograd imports Tensor; import at call time

        backward(self, gradient, retain_graph, create_graph, inputs)

    def register_hook(self, hook) -> _HookHandle:
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned Tensor replaces it."""
        if not self._requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that doesn't require grad")
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(hook)
        self._watch()
        return _HookHandle(self._hooks, hook)

    def retain_grad(self) -> None:
        """Keep ``.grad`` of this non-leaf tensor after backward."""
        if self._ctx is None:
            return
        self._retains_grad = True
        self._watch()

    def _watch(self) -> None:
        if self._ctx is not None:
            self._ctx._watched[self._output_index] = self

    # ----- in-place (no graph; for initialisation and optimizers) ------------------------------
    def _check_inplace(self, op: str) -> None:
        from minidl.autograd import is_grad_enabled

        if self._requires_grad and self._ctx is None and is_grad_enabled():
            raise RuntimeError(f"{op}: a leaf tensor that requires grad is being used in an in-place "
                               "operation; wrap it in minidl.no_grad()")

    def zero_(self) -> Tensor:
        self._check_inplace("zero_")
        self._data[...] = 0
        return self

    def fill_(self, value) -> Tensor:
        self._check_inplace("fill_")
        self._data[...] = value
        return self

    def copy_(self, source) -> Tensor:
        self._check_inplace("copy_")
        array = source._data if isinstance(source, Tensor) else source
        xp = backend.get_array_module(self._data)
        self._data[...] = xp.asarray(backend.to_device(array, self.device), dtype=self.dtype)
        return self

    # ----- printing ---------------------------------------------------------------------------
    def __repr__(self) -> str:
        body = np.array2string(backend.to_numpy(self._data), separator=", ", prefix="tensor(")
        extras = []
        if self.device.type != "cpu":
            extras.append(f"device='{self.device}'")
        if self._data.dtype not in (np.float32, np.int64, np.bool_):
            extras.append(f"dtype=minidl.{self.dtype}")
        if self._ctx is not None:
            extras.append(f"grad_fn={self._ctx!r}")
        elif self._requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    __hash__ = object.__hash__  # == is elementwise, so hash by identity as PyTorch does

    # ----- operators and op methods: each forwards to minidl.ops --------------------------------
    def __add__(self, other): return _ops.add(self, other)
    def __radd__(self, other): return _ops.add(other, self)
    def __sub__(self, other): return _ops.sub(self, other)
    def __rsub__(self, other): return _ops.sub(other, self)
    def __mul__(self, other): return _ops.mul(self, other)
    def __rmul__(self, other): return _ops.mul(other, self)
    def __truediv__(self, other): return _ops.div(self, other)
    def __rtruediv__(self, other): return _ops.div(other, self)
    def __pow__(self, other): return _ops.pow(self, other)
    def __rpow__(self, other): return _ops.pow(other, self)
    def __matmul__(self, other): return _ops.matmul(self, other)
    def __rmatmul__(self, other): return _ops.matmul(other, self)
    def __neg__(self): return _ops.neg(self)
    def __pos__(self): return self
    def __abs__(self): return _ops.abs(self)
    def __eq__(self, other): return _ops.eq(self, other)
    def __ne__(self, other): return _ops.ne(self, other)
    def __lt__(self, other): return _ops.lt(self, other)
    def __le__(self, other): return _ops.le(self, other)
    def __gt__(self, other): return _ops.gt(self, other)
    def __ge__(self, other): return _ops.ge(self, other)
    def __invert__(self): return _ops.logical_not(self)
    def __and__(self, other): return _ops.logical_and(self, other)
    def __or__(self, other): return _ops.logical_or(self, other)
    def __getitem__(self, index): return _ops.getitem(self, index)

    def add(self, other): return _ops.add(self, other)
    def sub(self, other): return _ops.sub(self, other)
    def mul(self, other): return _ops.mul(self, other)
    def div(self, other): return _ops.div(self, other)
    def pow(self, exponent): return _ops.pow(self, exponent)
    def neg(self): return _ops.neg(self)
    def matmul(self, other): return _ops.matmul(self, other)
    def exp(self): return _ops.exp(self)
    def log(self): return _ops.log(self)
    def sqrt(self): return _ops.sqrt(self)
    def abs(self): return _ops.abs(self)
    def tanh(self): return _ops.tanh(self)
    def sigmoid(self): return _ops.sigmoid(self)
    def relu(self): return _ops.relu(self)
    def clamp(self, min=None, max=None): return _ops.clamp(self, min, max)
    def clip(self, min=None, max=None): return _ops.clamp(self, min, max)
    def maximum(self, other): return _ops.maximum(self, other)
    def minimum(self, other): return _ops.minimum(self, other)
    def masked_fill(self, mask, value): return _ops.masked_fill(self, mask, value)
    def eq(self, other): return _ops.eq(self, other)
    def ne(self, other): return _ops.ne(self, other)
    def lt(self, other): return _ops.lt(self, other)
    def le(self, other): return _ops.le(self, other)
    def gt(self, other): return _ops.gt(self, other)
    def ge(self, other): return _ops.ge(self, other)

    # NumPy's axis/keepdims are accepted too, as PyTorch does: a backward's ``gy.sum(axis=...)``
    # then runs on arrays (first order) and on Tensors (create_graph) alike
    def sum(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        return _ops.sum(self, dim if axis is None else axis, keepdim if keepdims is None else keepdims)
    def mean(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        return _ops.mean(self, dim if axis is None else axis, keepdim if keepdims is None else keepdims)
    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return _ops.var(self, dim, unbiased, keepdim, correction=correction)
    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return _ops.std(self, dim, unbiased, keepdim, correction=correction)
    def max(self, dim=None, keepdim=False): return _ops.max(self, dim, keepdim)
    def min(self, dim=None, keepdim=False): return _ops.min(self, dim, keepdim)
    def amax(self, dim=(), keepdim=False): return _ops.amax(self, dim, keepdim)
    def amin(self, dim=(), keepdim=False): return _ops.amin(self, dim, keepdim)
    def argmax(self, dim=None, keepdim=False): return _ops.argmax(self, dim, keepdim)
    def argmin(self, dim=None, keepdim=False): return _ops.argmin(self, dim, keepdim)
    def logsumexp(self, dim, keepdim=False): return _ops.logsumexp(self, dim, keepdim)
    def softmax(self, dim): return _ops.softmax(self, dim)
    def log_softmax(self, dim): return _ops.log_softmax(self, dim)

    def reshape(self, *shape): return _ops.reshape(self, _shape_args(shape))
    def view(self, *shape): return _ops.reshape(self, _shape_args(shape))
    def view_as(self, other): return _ops.reshape(self, other.shape)
    def flatten(self, start_dim=0, end_dim=-1): return _ops.flatten(self, start_dim, end_dim)
    def permute(self, *dims): return _ops.permute(self, _shape_args(dims))
    def transpose(self, dim0, dim1): return _ops.transpose(self, dim0, dim1)
    def t(self): return _ops.transpose(self, 0, 1) if self.ndim == 2 else self
    def squeeze(self, dim=None): return _ops.squeeze(self, dim)
    def unsqueeze(self, dim): return _ops.unsqueeze(self, dim)
    def expand(self, *sizes): return _ops.expand(self, _shape_args(sizes))
    def expand_as(self, other): return _ops.expand(self, other.shape)
    def broadcast_to(self, size): return _ops.broadcast_to(self, size)
    def split(self, split_size, dim=0): return _ops.split(self, split_size, dim)
    def chunk(self, chunks, dim=0): return _ops.chunk(self, chunks, dim)


class _HookHandle:
    """Returned by ``register_hook``; ``remove()`` takes the hook away."""

    def __init__(self, hooks: list, hook):
        self.hooks, self.hook = hooks, hook

    def remove(self) -> None:
        if self.hook in self.hooks:
            self.hooks.remove(self.hook)


def _shape_args(args: tuple) -> tuple:
    """Accept both ``f(2, 3)`` and ``f((2, 3))``."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return tuple(args)


from minidl import ops as _ops  # noqa: E402  (ops build on Tensor, so they load after it)
