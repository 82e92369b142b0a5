"""``Tensor``: an array from the backend plus what autograd needs (grad, requires_grad, its node).

This module imports no op: the operators and op methods (``x + y``, ``x.sum()``, ``x.T``,
``x.to(...)``) are defined in ``minidl/ops/tensor_methods.py`` beside the ops they call, and
installed onto Tensor when ``minidl.ops`` loads, so the dependency runs one way (ops -> tensors).
"""
from __future__ import annotations

import numpy as np

from minidl import backend


# How many in-place writes the process has made: a node remembers the clock at its forward, so
# its backward knows in O(1) that nothing it saved can have changed when the clock has not moved.
WRITE_CLOCK = [0]
_LEGACY_DATA = frozenset((list, tuple, int))  # what Tensor(data) converts (a set: one hash lookup)


class Tensor:
    """A multi-dimensional array that records the ops applied to it when it requires grad.

    Create tensors with :func:`minidl.tensor` and the factories (``zeros``, ``randn``, ...).
    ``.array`` is the backend array (``numpy.ndarray`` on CPU, ``cupy.ndarray`` on CUDA);
    ``.data`` is, as in PyTorch, a Tensor sharing that memory outside the graph.
    """

    __slots__ = ("_data", "_requires_grad", "grad", "_ctx", "_output_index", "_hooks",
                 "_retains_grad", "_writes", "_written_at", "__weakref__")
    __array_priority__ = 1000  # ndarray <op> Tensor defers to Tensor's reflected operators

    def __init__(self, data, requires_grad: bool = False):
        if type(data) in _LEGACY_DATA:  # PyTorch's legacy constructor: Tensor([1., 2.])
            data = _legacy_data(data)
        self._data = data
        self._requires_grad = requires_grad
        self.grad: Tensor | None = None
        self._ctx = None  # the FunctionCtx that produced this tensor; None for a leaf
        self._output_index = 0
        self._hooks = None
        self._retains_grad = False

    @classmethod
    def _wrap(cls, array, requires_grad: bool) -> Tensor:
        """A Tensor around an op's result array: ``__init__`` without the legacy-data check
        (every op's output passes here, so it is kept to the slot stores)."""
        tensor = cls.__new__(cls)
        tensor._data = array
        tensor._requires_grad = requires_grad
        tensor.grad = None
        tensor._ctx = None
        tensor._output_index = 0
        tensor._hooks = None
        tensor._retains_grad = False
        return tensor

    # ----- attributes -------------------------------------------------------------------------
    @property
    def array(self):
        """The backend array that holds the values (NumPy or CuPy), for kernels and NumPy code."""
        return self._data

    @property
    def data(self) -> Tensor:
        """The values as a Tensor outside the graph, sharing this one's memory (PyTorch's
        ``.data``): ``p.data.add_(...)`` updates ``p`` and is seen by no backward and no version
        counter (use ``with no_grad()`` for updates autograd should check)."""
        return Tensor(self._data)

    @data.setter
    def data(self, value) -> None:
        """Replace the values (a Tensor or an array), keeping this tensor's identity and graph."""
        self._data = value._data if isinstance(value, Tensor) else value

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
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def is_cpu(self) -> bool:
        return self.device.type == "cpu"

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
        array = np.asarray(backend.to_numpy(self._data))  # a 0-d result may be a NumPy scalar
        return array if dtype is None else array.astype(dtype)

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor(self._data)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        self.requires_grad = requires_grad
        return self

    def contiguous(self) -> Tensor:
        return self

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
            if self._ctx._watched is None:
                self._ctx._watched = {}
            self._ctx._watched[self._output_index] = self

    # ----- in-place (no graph; for initialisation and optimizers) ------------------------------
    def _check_inplace(self, op: str) -> None:
        from minidl.autograd import is_grad_enabled

        if self._requires_grad and self._ctx is None and is_grad_enabled():
            raise RuntimeError(f"{op}: a leaf tensor that requires grad is being used in an in-place "
                               "operation; wrap it in minidl.no_grad()")

    @property
    def _version(self) -> int:
        """In-place writes so far (PyTorch's ``tensor._version``); unset slots until the first."""
        return getattr(self, "_writes", 0)

    def _mark_modified(self) -> None:
        """An in-place write happened: a new version, and (for an op's output) a note on its node,
        so a backward that saved the old value raises instead of using the new one."""
        WRITE_CLOCK[0] += 1
        self._writes, self._written_at = self._version + 1, WRITE_CLOCK[0]
        node = self._ctx
        if node is not None:
            if node._modified_outputs is None:
                node._modified_outputs = {}
            node._modified_outputs[self._output_index] = self._version

    def zero_(self) -> Tensor:
        self._check_inplace("zero_")
        self._data[...] = 0
        self._mark_modified()
        return self

    def fill_(self, value) -> Tensor:
        self._check_inplace("fill_")
        self._data[...] = value
        self._mark_modified()
        return self

    def copy_(self, source) -> Tensor:
        self._check_inplace("copy_")
        array = source._data if isinstance(source, Tensor) else source
        xp = backend.get_array_module(self._data)
        self._data[...] = xp.asarray(backend.to_device(array, self.device), dtype=self.dtype)
        self._mark_modified()
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

class _HookHandle:
    """Returned by ``register_hook``; ``remove()`` takes the hook away."""

    def __init__(self, hooks: list, hook):
        self.hooks, self.hook = hooks, hook

    def remove(self) -> None:
        if self.hook in self.hooks:
            self.hooks.remove(self.hook)


def _legacy_data(data):
    """``Tensor([1., 2.])``: a float32 array, as PyTorch's legacy ``torch.Tensor(data)``."""
    if type(data) is int:
        raise TypeError(f"Tensor({data}, ...): PyTorch's uninitialised-size form is not supported; "
                        f"use minidl.empty({data}, ...), or minidl.tensor(data) for values")
    return np.asarray(data, dtype=np.float32)

