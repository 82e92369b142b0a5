"""Which ONNX value every traced tensor is, and the view of one op that its converter reads.

A tensor an op receives is a value made by an earlier op, a model input, a parameter or buffer
(an initializer named by its state_dict key), or a constant. Each value keeps its shape in every
run of the trace (``minidl/onnx/trace.py``), so a number that changes between the runs (a batch
size inside a reshape) can be found again as a dim of some value and computed at run time.
"""
from __future__ import annotations

import numpy as np

from minidl import backend
from minidl.onnx.graph import ExportError, Graph
from minidl.tensors import Tensor


class Values:
    """The ONNX name of each tensor and array of the first run, and every value's shapes per run.

    ``parameters`` maps id(tensor) and id(array) of each parameter and buffer to its name.
    """

    def __init__(self, graph: Graph, parameters: dict):
        self.graph = graph
        self.parameters = parameters
        self._by_tensor: dict = {}  # id(tensor) -> (name, tensor, version, op that made it)
        self._by_array: dict = {}  # id(array) -> the same record
        self._stored: set = set()  # parameters already written as initializers
        self._constants: dict = {}  # id(array) of a constant Tensor or array -> its name
        self.shapes: dict = {}  # name -> (shape in run 0, shape in run 1, ...)
        self.order: list = []  # names of the values that have shapes, oldest first

    def bind(self, name: str | None, tensors: tuple, version: int = 0, made_by: str = "") -> None:
        """``tensors`` (the same tensor in every run) is the ONNX value ``name``; None for an
        output its converter does not export (MaxPool's indices): reading it is an error."""
        record = (name, tensors[0], version, made_by)
        self._by_tensor[id(tensors[0])] = record
        self._by_array[id(tensors[0]._data)] = record
        if name is not None:
            self.shapes[name] = tuple(tuple(t.shape) for t in tensors)
            self.order.append(name)

    def name_of(self, values: tuple, op: str, dtype=None, version: int | None = None) -> str | None:
        """The ONNX value of an op's argument, given as it was in every run (a Tensor, an array,
        a number or None); a constant unless it is a traced value, an input or a parameter.
        ``version``: the Tensor's in-place version when the op read it (None: not checked)."""
        value = values[0]
        if value is None:
            return None
        array = value._data if isinstance(value, Tensor) else value
        record = self._by_tensor.get(id(value)) or self._by_array.get(id(array))
        if record is not None:
            name, _, made_at, made_by = record
            if name is None:
                raise ExportError(f"export: {op} reads an output of {made_by} that is not "
                                  "exported (MaxPool's indices)")
            if version is not None and version != made_at:
                raise ExportError(f"export: a tensor that {op} reads was written in place after "
                                  "it was made (an in-place op such as add_ or x[i] = v), which "
                                  "export cannot follow; use the out-of-place op")
            return name
        parameter = self.parameters.get(id(value)) or self.parameters.get(id(array))
        if parameter is not None:
            if parameter not in self._stored:
                self._stored.add(parameter)
                self.graph.initializer(parameter, array)
            return parameter
        if hasattr(array, "shape"):  # one initializer however many ops read the same array
            if id(array) not in self._constants:
                self._constants[id(array)] = self._constant(values, op, dtype)
            return self._constants[id(array)]
        return self._constant(values, op, dtype)

    def _constant(self, values: tuple, op: str, dtype) -> str:
        """A value that is none of the above is a constant: it must be the same in every run."""
        arrays = [backend.to_numpy(v._data if isinstance(v, Tensor) else v) if hasattr(v, "shape")
                  else np.asarray(v) for v in values]
        first = arrays[0]
        if any(a.shape != first.shape or not np.array_equal(a, first, equal_nan=True)
               for a in arrays[1:]):
            raise ExportError(
                f"export: {op} reads a value computed outside minidl's traced ops that changes "
                "with the inputs (it differs on a second run with other input values and "
                "dynamic sizes): a comparison (x > 0, ids == pad), argmax, a bool mask, a tensor "
                "made by arange or zeros from a dynamic size, .numpy() or a random draw. A graph "
                "can only hold it as a constant; compute it with ops (a mask as a float tensor "
                "added to the scores, positions sliced from a buffer: table[:x.shape[1]]) or "
                "pass it to the model as an input")
        if dtype is None and not hasattr(values[0], "shape"):
            raise ExportError(f"export: {op}: no dtype for the number {values[0]!r}")
        return self.graph.const(first, first.dtype if dtype is None else dtype)

    def dim(self, sizes: tuple, prefer: tuple, op: str) -> str:
        """A 1-element int64 vector that is ``sizes[r]`` in run r: the run-time size of a dim of
        a value (the op's own inputs first, then the newest values) with exactly those sizes."""
        for name in (*prefer, *reversed(self.order)):
            shapes = self.shapes.get(name)
            if shapes is None:
                continue
            for axis, per_run in enumerate(zip(*shapes)):
                if per_run == sizes:
                    return self.graph.shape_slice(name, axis)
        raise ExportError(f"export: {op} uses a size that changes with the dynamic axes "
                          f"({' then '.join(map(str, sizes))} in the two runs) and is no dim of "
                          "any tensor, so it cannot be computed at run time")

    def vector(self, entries: list, prefer: tuple, op: str) -> str:
        """An int64 vector from ``entries``: an int is a constant, a tuple (one int per run) a
        size that changes with the dynamic axes, found with ``dim``."""
        parts, run = [], []
        for entry in entries:
            if isinstance(entry, tuple):
                if run:
                    parts.append(self.graph.ints(run))
                    run = []
                parts.append(self.dim(entry, prefer, op))
            else:
                run.append(int(entry))
        if run or not parts:
            parts.append(self.graph.ints(run))
        return parts[0] if len(parts) == 1 else self.graph.op("Concat", *parts, axis=0)


def per_run(values) -> int | tuple:
    """One int when every run saw the same number, else the tuple of them (a dynamic size)."""
    values = tuple(int(v) for v in values)
    return values[0] if len(set(values)) == 1 else values


class Op:
    """One traced op as its converter sees it: ``calls`` holds the op as it ran in every run
    (``calls[0]``, also ``call``, is the one exported). A converter reads its arguments through
    ``input`` (ONNX values), ``static``/``arg``/``option`` (numbers that must not change between
    the runs) and ``per_run``/``sizes`` (numbers that may follow the dynamic axes)."""

    def __init__(self, graph: Graph, values: Values, calls: tuple):
        self.g, self.values, self.calls = graph, values, calls
        self.call = calls[0]
        self.function, self.name = self.call.function, self.call.name

    def input(self, index: int, dtype=None) -> str | None:
        """Positional argument ``index`` as an ONNX value (None stays None); a number becomes a
        constant of ``dtype``."""
        return self.values.name_of(tuple(c.args[index] for c in self.calls), self.name, dtype,
                                   self.call.input_versions[index])

    def option_input(self, key: str, dtype=None) -> str | None:
        """Keyword argument ``key`` (an array: a mask, indices) as an ONNX value."""
        return self.values.name_of(tuple(c.kwargs[key] for c in self.calls), self.name, dtype)

    def static(self, getter, what: str):
        """``getter(call)``, which must be the same in every run (an option, a kernel size)."""
        first, *others = [getter(call) for call in self.calls]
        if any(other != first for other in others):
            raise ExportError(f"export: {self.name}'s {what} changes with the dynamic axes "
                              f"({first} then {others[0]}), which the ONNX op cannot express; "
                              "export with that axis fixed")
        return first

    def arg(self, index: int):
        return self.static(lambda call: call.args[index], f"argument {index}")

    def option(self, key: str):
        return self.static(lambda call: call.kwargs[key], f"option {key!r}")

    def per_run(self, getter) -> tuple:
        return tuple(getter(call) for call in self.calls)

    def shape(self, index: int) -> tuple:
        return tuple(self.call.args[index].shape)

    def shapes(self, index: int) -> tuple:
        """The shape of positional argument ``index`` in every run."""
        return tuple(tuple(call.args[index].shape) for call in self.calls)

    def dtype(self, index: int) -> np.dtype:
        return self.call.args[index].dtype

    def out_dtype(self, index: int = 0) -> np.dtype:
        return self.call.outputs[index].dtype

    def sizes(self, entries_per_run, prefer=()) -> str:
        """The int64 vector whose entries were ``entries_per_run[r]`` in run r (see ``vector``)."""
        return self.values.vector([per_run(column) for column in zip(*entries_per_run)],
                                  prefer, self.name)

    def unsupported(self, why: str) -> ExportError:
        return ExportError(f"export: {self.name}: {why}")
