"""Running a model under ``minidl.autograd.tracing``: the list of ops it called, in order.

Export runs the model twice: on the given inputs, and on a *variant* of them, each dynamic axis
resized and the values shifted by one place. The ops, their arguments and their shapes in both
runs tell apart the numbers that follow a dynamic axis (a batch size baked into a reshape) from
those that are constant, and show up values computed outside the traced ops (a mask made by a
comparison), which a graph cannot record.
"""
from __future__ import annotations

from dataclasses import dataclass

from minidl import backend
from minidl.autograd import no_grad, tracing
from minidl.onnx.graph import ExportError
from minidl.tensors import Tensor


@dataclass
class Call:
    """One op as it ran: the Function class, its positional and keyword arguments, its outputs,
    and the in-place versions (``Tensor._version``) of its Tensor arguments when it read them and
    of its outputs when it made them: a mismatch is an in-place write in between."""

    function: type
    args: tuple
    kwargs: dict
    outputs: tuple
    input_versions: tuple
    versions: tuple

    @property
    def name(self) -> str:
        return self.function.__name__


@dataclass
class Trace:
    """One run of the model: its inputs, the ops in the order they ran, its flattened outputs."""

    inputs: list
    calls: list
    outputs: list


def run(model, inputs: list) -> Trace:
    """Run ``model(*inputs)`` without a graph, every op recorded; modules in eval mode."""
    calls = []

    def record(function, args, kwargs, outputs):
        read = tuple(a._version if isinstance(a, Tensor) else None for a in args)
        calls.append(Call(function, args, dict(kwargs), outputs, read,
                          tuple(output._version for output in outputs)))

    modules = list(model.modules()) if hasattr(model, "modules") else []
    modes = [module.training for module in modules]
    for module in modules:
        object.__setattr__(module, "training", False)
    try:
        with no_grad(), tracing(record):
            result = model(*inputs)
    finally:
        for module, mode in zip(modules, modes):
            object.__setattr__(module, "training", mode)
    return Trace(inputs, calls, flatten_outputs(result))


def flatten_outputs(result, where: str = "the model's output") -> list:
    """The Tensors of a Tensor or a (nested) tuple or list of them, in order; else a TypeError."""
    if isinstance(result, Tensor):
        return [result]
    if isinstance(result, (tuple, list)):
        flat = []
        for index, item in enumerate(result):
            flat += flatten_outputs(item, f"{where}[{index}]")
        return flat
    raise TypeError(f"export: {where} is a {type(result).__name__}; ONNX outputs are tensors, so "
                    "the model must return a Tensor or a (nested) tuple or list of Tensors")


def variant_inputs(inputs: list, axes: list, sizes: dict) -> list:
    """The inputs of the second run: each dynamic axis resized to ``sizes[symbol]`` (its entries
    repeated cyclically) and the values shifted by one place in memory order (so every value stays
    a valid input, indices in range, but anything computed from the values changes unless all
    of them are equal).

    ``axes`` holds one {axis: symbol} per input.
    """
    variants = []
    for tensor, named in zip(inputs, axes):
        data = tensor._data
        xp = backend.get_array_module(data)
        for axis, symbol in named.items():
            picks = xp.arange(sizes[symbol]) % data.shape[axis]  # (new size,)
            data = xp.take(data, picks, axis=axis)
        variants.append(Tensor(xp.roll(data.reshape(-1), 1).reshape(data.shape)))
    return variants


def check_same_ops(base: Trace, variant: Trace) -> None:
    """Both runs must call the same ops in the same order with the same outputs' ranks."""
    for index, (one, other) in enumerate(zip(base.calls, variant.calls)):
        same = (one.function is other.function and len(one.args) == len(other.args)
                and [o.ndim for o in one.outputs] == [o.ndim for o in other.outputs])
        if not same:
            raise ExportError(
                f"export: the model ran different ops on a second run with other input values "
                f"and dynamic sizes (op {index}: {one.name} then {other.name}): its Python control "
                "flow depends on the values or sizes of its inputs, which a traced graph cannot "
                "follow; export with fixed sizes or make the control flow independent of them")
    if len(base.calls) != len(variant.calls) or len(base.outputs) != len(variant.outputs):
        raise ExportError(
            f"export: the model ran {len(base.calls)} ops and returned {len(base.outputs)} "
            f"tensors, but {len(variant.calls)} ops and {len(variant.outputs)} tensors on a second "
            "run with other input values and dynamic sizes: its control flow depends on them")
