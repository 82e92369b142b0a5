"""The ONNX graph under construction: nodes, initializers, constants and opset-dependent spellings.

Everything that touches the ``onnx`` package's node builders is here, so the converters read as
plain lists of ONNX ops (``g.op("Conv", x, w, b, strides=...)``) and the rest of minidl.onnx
imports without onnx installed. Generated names start with "/" (``/Conv_3``), so they never meet
a parameter's state_dict name.
"""
from __future__ import annotations

import collections

import numpy as np

from minidl import backend

INSTALL_HINT = 'pip install "minidl[onnx]"'
INT64_MAX, INT64_MIN = np.iinfo(np.int64).max, np.iinfo(np.int64).min


class ExportError(RuntimeError):
    """The model cannot be written as an ONNX graph; the message names the op and why."""


class UnsupportedOperatorError(ExportError):
    """A traced op has no ONNX mapping."""


def import_onnx():
    """The onnx package, or an ImportError that says how to install it."""
    try:
        import onnx
    except ImportError as error:
        raise ImportError(f"minidl.onnx.export needs the onnx package: {INSTALL_HINT}") from error
    return onnx


def tensor_type(dtype) -> int:
    """The ONNX element type (TensorProto.FLOAT ...) of a NumPy dtype."""
    return import_onnx().helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


class Graph:
    """Nodes and initializers in the order they are made; ``op`` adds a node, ``const`` a value.

    ``opset`` decides the few spellings that changed between opsets (``reduce``).
    """

    def __init__(self, opset: int):
        onnx = import_onnx()
        self.helper, self.numpy_helper = onnx.helper, onnx.numpy_helper
        self.opset = opset
        self.nodes: list = []
        self.initializers: list = []
        self._counts = collections.Counter()
        self._constants: dict = {}  # (dtype, shape, bytes) of a small constant -> its name
        self._shape_slices: dict = {}  # (value, axis) -> the name of Shape(value)[axis:axis+1]

    def fresh(self, stem: str) -> str:
        """A new value name ``/<stem>_<k>``."""
        count = self._counts[stem]
        self._counts[stem] += 1
        return f"/{stem}_{count}"

    def op(self, op_type: str, *inputs, outputs: int = 1, **attributes):
        """Add the node ``op_type(*inputs)``; returns its output name (a list when outputs > 1).

        An input None is an omitted optional input; attributes that are None are left out.
        """
        names = [self.fresh(op_type) for _ in range(outputs)]
        inputs = list(inputs)
        while inputs and inputs[-1] is None:
            inputs.pop()
        attributes = {key: value for key, value in attributes.items() if value is not None}
        self.nodes.append(self.helper.make_node(op_type, ["" if i is None else i for i in inputs],
                                                names, name=names[0][1:], **attributes))
        return names[0] if outputs == 1 else names

    def initializer(self, name: str, array) -> str:
        """Store ``array`` (NumPy or CuPy) as the initializer ``name``."""
        array = np.ascontiguousarray(backend.to_numpy(array))
        self.initializers.append(self.numpy_helper.from_array(array, name))
        return name

    def const(self, value, dtype) -> str:
        """A constant initializer holding ``value`` (a number or an array) as ``dtype``.

        Small constants (shapes, axes, scalars) are stored once however often they are asked for.
        """
        array = np.asarray(backend.to_numpy(value) if hasattr(value, "shape") else value,
                           dtype=dtype)
        if array.size > 64:
            return self.initializer(self.fresh("const"), array)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._constants:
            self._constants[key] = self.initializer(self.fresh("const"), array)
        return self._constants[key]

    def ints(self, values) -> str:
        """A constant int64 vector (shapes, axes, pads)."""
        return self.const(np.asarray(list(values), dtype=np.int64).reshape(-1), np.int64)

    def reduce(self, op_type: str, x: str, axes, keepdims: bool) -> str:
        """``op_type`` (ReduceSum, ReduceMean, ReduceMax...) over ``axes``: the axes are an input
        from opset 13 for ReduceSum and from opset 18 for the others, an attribute before."""
        axes = list(axes)
        if not axes:
            return self.op("Identity", x)  # a 0-d input: nothing to reduce
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.op(op_type, x, self.ints(axes), keepdims=int(keepdims))
        return self.op(op_type, x, axes=axes, keepdims=int(keepdims))

    def unsqueeze(self, x: str, axes) -> str:
        return self.op("Unsqueeze", x, self.ints(axes))

    def squeeze(self, x: str, axes) -> str:
        return self.op("Squeeze", x, self.ints(axes))

    def shape_slice(self, x: str, axis: int) -> str:
        """The 1-element int64 vector holding the size of ``x``'s dim ``axis`` at run time."""
        key = (x, axis)
        if key not in self._shape_slices:
            self._shape_slices[key] = self.op("Shape", x, start=axis, end=axis + 1)
        return self._shape_slices[key]

    def cast(self, x: str, dtype) -> str:
        return self.op("Cast", x, to=tensor_type(dtype))
