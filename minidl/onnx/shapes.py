"""ONNX for the ops that move elements: reshape, permute, expand, cat, stack, split, pad, indexing,
roll and the triangular masks.

A traced reshape holds concrete sizes, the batch size among them. With dynamic axes each target
entry that changed between the two runs is written so that it follows the input at run time:
0 where it is the input's dim at the same place (ONNX Reshape copies it), -1 when it is the only
one left, else the size of a matching dim of some tensor read with Shape (``Values.dim``).
"""
from __future__ import annotations

import numpy as np

from minidl.onnx.graph import INT64_MAX, INT64_MIN
from minidl.onnx.values import per_run
from minidl.ops import elementwise, indexing, ordering, shape


def reshape(g, op):
    x, inputs = op.input(0), op.shapes(0)
    targets = op.per_run(lambda call: tuple(call.args[1]))
    if 0 in targets[0]:
        raise op.unsupported(f"a reshape to {targets[0]} (a zero-size dim) is not exported")
    entries = [per_run(column) for column in zip(*targets)]
    for j, entry in enumerate(entries):
        if isinstance(entry, tuple) and j < len(inputs[0]) and entry == tuple(s[j] for s in inputs):
            entries[j] = 0  # the input's own dim j at run time
    dynamic = [j for j, entry in enumerate(entries) if isinstance(entry, tuple)]
    if len(dynamic) == 1 and -1 not in entries:
        entries[dynamic[0]] = -1
    return g.op("Reshape", x, op.values.vector(entries, (x,), op.name))


def expand(g, op):
    """Broadcast to the target shape; a dynamic entry equal to the input's dim becomes 1 (ONNX's
    Expand broadcasts both ways, so 1 keeps the input's size)."""
    x, inputs = op.input(0), op.shapes(0)
    entries = [per_run(column) for column in zip(*op.per_run(lambda call: tuple(call.args[1])))]
    lead = len(entries) - len(inputs[0])
    for j, entry in enumerate(entries):
        if isinstance(entry, tuple) and j >= lead and entry == tuple(s[j - lead] for s in inputs):
            entries[j] = 1
    return g.op("Expand", x, op.values.vector(entries, (x,), op.name))


def permute(g, op):
    return g.op("Transpose", op.input(0), perm=list(op.arg(1)))


def cat(g, op):
    return g.op("Concat", *[op.input(i) for i in range(len(op.call.args))],
                axis=op.option("axis"))


def stack(g, op):
    axis = op.option("axis")
    pieces = [g.unsqueeze(op.input(i), [axis]) for i in range(len(op.call.args))]
    return g.op("Concat", *pieces, axis=axis)


def split(g, op):
    sizes, axis = op.static(lambda call: call.args[1], "split sizes"), op.arg(2)
    pieces = g.op("Split", op.input(0), g.ints(sizes), axis=axis, outputs=len(sizes))
    return pieces if len(sizes) > 1 else [pieces]


def pad(g, op):
    """Constant borders: ONNX's pads are all the befores, then all the afters."""
    widths, value = op.static(lambda call: call.args[1], "pad widths"), op.arg(2)
    pads = [before for before, _ in widths] + [after for _, after in widths]
    return g.op("Pad", op.input(0), g.ints(pads), g.const(value, op.dtype(0)), mode="constant")


def roll(g, op):
    """Shift along each dim with wrap-around: the last s elements, then the first n - s."""
    x, shifts, dims = op.input(0), op.option("shifts"), op.option("dims")
    sizes = op.static(lambda call: tuple(call.args[0].shape[d] for d in dims), "rolled dims' sizes")
    for shift, dim, n in zip(shifts, dims, sizes):
        s = shift % n if n else 0
        if s:
            tail = g.op("Slice", x, g.ints([n - s]), g.ints([n]), g.ints([dim]))
            head = g.op("Slice", x, g.ints([0]), g.ints([n - s]), g.ints([dim]))
            x = g.op("Concat", tail, head, axis=dim)
    return g.op("Identity", x)


def triangle(g, op):
    diagonal = g.const(op.option("diagonal"), np.int64)  # a 0-d int64 input
    return g.op("Trilu", op.input(0), diagonal, upper=int(op.option("upper")))


# ----- indexing ---------------------------------------------------------------------------------

def _is_array(part) -> bool:
    """An index array (NumPy or CuPy); NumPy's integer scalars count as ints."""
    return hasattr(part, "shape") and not isinstance(part, np.generic)


def _parts(index, rank: int) -> list:
    """``index`` as a list with its Ellipsis spelled out and every axis named."""
    parts = list(index) if isinstance(index, tuple) else [index]
    used = sum(part.ndim if _is_array(part) and part.dtype == bool else 1
               for part in parts if part is not None and part is not Ellipsis)
    fill = [slice(None)] * (rank - used)
    ellipses = [k for k, part in enumerate(parts) if part is Ellipsis]
    if ellipses:
        at = ellipses[0]
        return parts[:at] + fill + parts[at + 1:]
    return parts + fill


def getitem(g, op):
    """x[index]: slices and ints as one Slice (the ints' axes then squeezed), None as Unsqueeze,
    and one integer index array as a Gather, its dims where NumPy puts them."""
    runs = op.per_run(lambda call: _parts(call.kwargs["index"], call.args[0].ndim))
    parts = runs[0]
    arrays = [k for k, part in enumerate(parts) if _is_array(part)]
    if len(arrays) > 1 or any(parts[k].dtype == bool for k in arrays):
        raise op.unsupported("indexing with several index arrays or a bool mask (as sort, topk and "
                             "x[mask] do) is not exported; index with one integer array")
    if arrays and any(part is None for part in parts):
        raise op.unsupported("an index array together with None is not exported")
    x = _slice(g, op, runs)
    integers = [k for k, part in enumerate(parts) if isinstance(part, (int, np.integer))]
    if not arrays:
        axes = [k - sum(1 for part in parts[:k] if part is None) for k in integers]  # input axes
        x = g.squeeze(x, axes) if axes else x
        nones = [k - sum(1 for i in integers if i < k) for k, part in enumerate(parts)
                 if part is None]  # output positions
        return g.unsqueeze(x, nones) if nones else g.op("Identity", x)
    return _gather(g, op, x, runs, arrays[0], integers)


def _slice(g, op, runs) -> str:
    """One Slice over the axes the slices and ints of the index name (None adds no axis)."""
    x = op.input(0)
    starts, ends, axes, steps = [], [], [], []
    axis = 0
    for column in zip(*runs):
        part = column[0]
        if part is None:
            continue
        if isinstance(part, slice) and part != slice(None):
            step = per_run(p.step or 1 for p in column)
            if isinstance(step, tuple):
                raise op.unsupported(f"a slice step that changes with the dynamic axes ({step})")
            low, high = (INT64_MAX, INT64_MIN) if step < 0 else (0, INT64_MAX)
            starts.append(per_run(low if p.start is None else p.start for p in column))
            ends.append(per_run(high if p.stop is None else p.stop for p in column))
            axes.append(axis)
            steps.append(step)
        elif isinstance(part, (int, np.integer)):
            index = per_run(column)
            if isinstance(index, tuple):
                raise op.unsupported(f"an integer index that changes with the dynamic axes "
                                     f"({index}) is not exported")
            starts.append(index)
            ends.append(INT64_MAX if index == -1 else index + 1)
            axes.append(axis)
            steps.append(1)
        axis += 1
    if not axes:
        return x
    return g.op("Slice", x, op.values.vector(starts, (x,), op.name),
                op.values.vector(ends, (x,), op.name), g.ints(axes), g.ints(steps))


def _gather(g, op, x, runs, at: int, integers: list) -> str:
    """Gather the index array at axis ``at``; then squeeze the ints' axes and, when the index
    array and the ints are not side by side, move the array's dims to the front (NumPy's rule)."""
    indices = op.values.name_of(tuple(run[at] for run in runs), op.name)
    if runs[0][at].dtype not in (np.int32, np.int64):
        indices = g.cast(indices, np.int64)
    x = g.op("Gather", x, indices, axis=at)
    k = runs[0][at].ndim
    if integers:
        x = g.squeeze(x, [i if i < at else i + k - 1 for i in integers])
    advanced = sorted(integers + [at])
    if advanced != list(range(advanced[0], advanced[-1] + 1)):  # not side by side
        start = at - sum(1 for i in integers if i < at)
        rank = len(op.call.outputs[0].shape)
        order = list(range(start, start + k))
        x = g.op("Transpose", x, perm=order + [i for i in range(rank) if i not in order])
    return x


CONVERTERS = {
    shape.Reshape: reshape,
    shape.Expand: expand,
    shape.Permute: permute,
    shape.Cat: cat,
    shape.Stack: stack,
    shape.Split: split,
    shape.Pad: pad,
    ordering.Roll: roll,
    elementwise.Triangle: triangle,
    indexing.GetItem: getitem,
}
