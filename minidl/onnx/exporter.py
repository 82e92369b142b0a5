"""``export``: trace a model twice, map every op to ONNX nodes, check the result, write it
atomically."""
from __future__ import annotations

import os

import minidl
from minidl.atomic_file import atomic_write
from minidl.onnx import elementwise, layers, recurrent, reductions, shapes, trace
from minidl.onnx.graph import (ExportError, Graph, UnsupportedOperatorError, import_onnx,
                               tensor_type)
from minidl.onnx.values import Op, Values
from minidl.tensors import Tensor

# every Function class with an ONNX mapping -> its converter
CONVERTERS = {**elementwise.CONVERTERS, **reductions.CONVERTERS, **shapes.CONVERTERS,
              **layers.CONVERTERS, **recurrent.CONVERTERS}
OPSET_MIN = 17  # LayerNormalization's first opset


def export(model, args, f, input_names=None, output_names=None, dynamic_axes=None,
           opset_version: int = OPSET_MIN) -> None:
    """Write ``model`` as an ONNX file that ONNX Runtime (or any ONNX runtime) can serve.

    As ``torch.onnx.export``: the model runs once in eval mode on ``args`` under
    ``minidl.autograd.tracing``, every op it calls becomes ONNX nodes, its parameters and buffers
    become initializers named by their state_dict keys, and the file is written atomically (no
    file is left behind when export fails). The model runs a second time on a variant of
    ``args`` (each dynamic axis resized, the values shifted), which tells sizes that follow a
    dynamic axis from constants and finds values computed outside the traced ops.

    Args:
        model: a Module (or any callable of Tensors); its modules' training flags are restored.
        args: a Tensor or a tuple of Tensors, the inputs of one call.
        f: a path or a binary file object.
        input_names, output_names: the graph's names (default ``input``/``input_0``..., and
            ``output``...), one per input Tensor and per output Tensor (nested outputs are
            flattened, as PyTorch).
        dynamic_axes: ``{name: {axis: symbol}}`` or ``{name: [axes]}`` for inputs and outputs;
            a symbol named on several axes is one size. The exported graph runs at any size of
            them (every shape the trace baked in is rewritten to follow them).
        opset_version: the ONNX opset, at least 17.

    Raises:
        UnsupportedOperatorError: an op has no ONNX mapping (the message names it).
        ExportError: the graph cannot be expressed (a value computed outside the traced ops,
            control flow that depends on the inputs, a size no tensor's shape gives).
        TypeError: an input or output is not a Tensor.
        ImportError: onnx is not installed (``pip install "minidl[onnx]"``).
    """
    onnx = import_onnx()
    _check_opset(opset_version, onnx)
    inputs = _inputs(args)
    input_names = _names(input_names, len(inputs), "input")
    input_axes = [_axes(dynamic_axes, name, t.ndim) for name, t in zip(input_names, inputs)]
    sizes = _symbol_sizes(inputs, input_axes, input_names)
    base = trace.run(model, inputs)
    output_names = _names(output_names, len(base.outputs), "output")
    _check_dynamic_names(dynamic_axes, input_names + output_names)
    other_sizes = {symbol: size for symbol, (_, size) in sizes.items()}
    other_inputs = trace.variant_inputs(inputs, input_axes, other_sizes)
    try:
        variant = trace.run(model, other_inputs)
    except Exception as error:  # the model itself fails at the other sizes
        raise ExportError(f"export: the model failed on a second run with the dynamic axes at "
                          f"the sizes {other_sizes} and the input values shifted: "
                          f"{error}") from error
    trace.check_same_ops(base, variant)
    graph = _build(model, (base, variant), opset_version, input_names, output_names, input_axes,
                   dynamic_axes, sizes)
    proto = onnx.helper.make_model(graph, producer_name="minidl",
                                   producer_version=minidl.__version__,
                                   opset_imports=[onnx.helper.make_opsetid("", opset_version)])
    proto.ir_version = onnx.helper.find_min_ir_version_for(proto.opset_import)
    onnx.checker.check_model(proto, full_check=True)
    _write(f, proto.SerializeToString())


def _check_opset(opset: int, onnx) -> None:
    newest = onnx.defs.onnx_opset_version()
    if not isinstance(opset, int) or not OPSET_MIN <= opset <= newest:
        raise ValueError(f"export: opset_version must be an int in [{OPSET_MIN}, {newest}] (the "
                         f"installed onnx's newest), got {opset!r}")


def _inputs(args) -> list:
    inputs = list(args) if isinstance(args, (tuple, list)) else [args]
    for index, value in enumerate(inputs):
        if not isinstance(value, Tensor):
            raise TypeError(f"export: args[{index}] is a {type(value).__name__}; expected a "
                            "Tensor or a tuple of Tensors")
    return inputs


def _names(names, count: int, stem: str) -> list:
    if names is None:
        return [stem] if count == 1 else [f"{stem}_{i}" for i in range(count)]
    names = list(names)
    if len(names) != count or len(set(names)) != count:
        raise ValueError(f"export: expected {count} distinct {stem}_names, got {names}")
    return names


def _axes(dynamic_axes, name: str, rank: int) -> dict:
    """{axis: symbol} for one input or output; a list of axes gets symbols ``<name>_dim<axis>``."""
    named = (dynamic_axes or {}).get(name, {})
    if not isinstance(named, dict):
        named = {axis: f"{name}_dim{axis % max(rank, 1)}" for axis in named}
    result = {}
    for axis, symbol in named.items():
        if not isinstance(axis, int) or not -rank <= axis < rank:
            raise ValueError(f"export: dynamic_axes[{name!r}] names axis {axis!r}, but {name} "
                             f"has {rank} dims")
        result[axis % rank] = str(symbol)
    return result


def _check_dynamic_names(dynamic_axes, names: list) -> None:
    unknown = sorted(set(dynamic_axes or {}) - set(names))
    if unknown:
        raise ValueError(f"export: dynamic_axes names {unknown}, which are neither input nor "
                         f"output names ({names})")


def _symbol_sizes(inputs: list, input_axes: list, input_names: list) -> dict:
    """symbol -> (size in args, size in the variant run): distinct new sizes for distinct
    symbols (size + 1 + k for the k-th symbol), so no two symbols can be mistaken for each other."""
    sizes = {}
    for tensor, axes, name in zip(inputs, input_axes, input_names):
        for axis, symbol in axes.items():
            size = tensor.shape[axis]
            if symbol in sizes and sizes[symbol][0] != size:
                raise ValueError(f"export: dynamic axis {symbol!r} has size {sizes[symbol][0]} "
                                 f"in one input and {size} in {name} (axis {axis})")
            sizes.setdefault(symbol, (size, size + 1 + len(sizes)))
    return sizes


def _parameters(model) -> dict:
    """id(tensor) and id(array) of every parameter and buffer -> its state_dict name."""
    named = {}
    if hasattr(model, "named_parameters"):
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            named.setdefault(id(tensor), name)
            named.setdefault(id(tensor._data), name)
    return named


def _build(model, traces, opset, input_names, output_names, input_axes, dynamic_axes, sizes):
    """The GraphProto: inputs, one converter per traced op, outputs through Identity nodes."""
    g = Graph(opset)
    values = Values(g, _parameters(model))
    clashes = set(input_names + output_names) & set(values.parameters.values())
    if clashes:
        raise ValueError(f"export: input/output names {sorted(clashes)} are parameter names")
    helper = g.helper
    graph_inputs = []
    for name, tensors, axes in zip(input_names, zip(*[t.inputs for t in traces]), input_axes):
        values.bind(name, tensors)
        graph_inputs.append(_value_info(helper, name, tensors[0], axes))
    for calls in zip(*[t.calls for t in traces]):
        _convert(g, values, calls)
    graph_outputs = []
    for name, tensors in zip(output_names, zip(*[t.outputs for t in traces])):
        source = values.name_of(tensors, "the model's output", version=tensors[0]._version)
        g.nodes.append(helper.make_node("Identity", [source], [name], name=f"output_{name}"))
        axes = _output_axes(dynamic_axes, name, tensors, sizes)
        graph_outputs.append(_value_info(helper, name, tensors[0], axes))
    return helper.make_graph(g.nodes, type(model).__name__, graph_inputs, graph_outputs,
                             g.initializers)


def _convert(g, values, calls: tuple) -> None:
    """Emit one traced op (the same op in every run) and bind its outputs."""
    call = calls[0]
    converter = CONVERTERS.get(call.function)
    if converter is None:
        raise UnsupportedOperatorError(
            f"export: the op {call.name} ({call.function.__module__}.{call.function.__qualname__})"
            " has no ONNX mapping; see minidl.onnx's docstring for the supported ops")
    names = converter(g, Op(g, values, calls))
    names = [names] if isinstance(names, str) else list(names)
    for index, (name, tensors) in enumerate(zip(names, zip(*[c.outputs for c in calls]))):
        values.bind(name, tensors, call.versions[index], made_by=call.name)


def _output_axes(dynamic_axes, name: str, tensors: tuple, sizes: dict) -> dict:
    """The named dynamic axes of an output, plus its dims that changed between the runs: named
    after the input symbol of the same sizes, else ``<name>_dim<axis>``."""
    axes = _axes(dynamic_axes, name, tensors[0].ndim)
    by_sizes = {size: symbol for symbol, size in sizes.items()}
    for axis, per_run in enumerate(zip(*[t.shape for t in tensors])):
        if axis not in axes and len(set(per_run)) > 1:
            axes[axis] = by_sizes.get(per_run, f"{name}_dim{axis}")
    return axes


def _value_info(helper, name: str, tensor: Tensor, axes: dict):
    shape = [axes.get(axis, size) for axis, size in enumerate(tensor.shape)]
    return helper.make_tensor_value_info(name, tensor_type(tensor.dtype), shape)


def _write(f, data: bytes) -> None:
    if hasattr(f, "write"):
        f.write(data)
        return
    atomic_write(os.fspath(f), [data])

