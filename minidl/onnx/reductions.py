"""ONNX for the reductions: sum, mean, var, std, amax/amin, max/min along a dim, logsumexp,
softmax and log_softmax."""
from __future__ import annotations

import math

from minidl.ops import reduction


def sum_(g, op):
    return g.reduce("ReduceSum", op.input(0), op.arg(1), op.arg(2))


def mean(g, op):
    return g.reduce("ReduceMean", op.input(0), op.arg(1), op.arg(2))


def amax(g, op):
    """amax (sign 1) or amin (sign -1) over the axes."""
    kind = "ReduceMax" if op.arg(3) > 0 else "ReduceMin"
    return g.reduce(kind, op.input(0), op.arg(1), op.arg(2))


def max_along_dim(g, op):
    """(values, indices) along one axis; ArgMax picks the first of equal maxima, as NumPy."""
    x, axis, keepdim, sign = op.input(0), op.arg(1), op.arg(2), op.arg(3)
    values = g.reduce("ReduceMax" if sign > 0 else "ReduceMin", x, [axis], keepdim)
    indices = g.op("ArgMax" if sign > 0 else "ArgMin", x, axis=axis, keepdims=int(keepdim))
    return [values, indices]


def var(g, op):
    """Σ (x - x̄)² / max(n - correction, 0) over the axes, n the number of reduced elements."""
    x, axes, correction, keepdim = op.input(0), op.arg(1), op.arg(2), op.arg(3)
    centered = g.op("Sub", x, g.reduce("ReduceMean", x, axes, True))
    total = g.reduce("ReduceSum", g.op("Mul", centered, centered), axes, keepdim)
    dtype = op.out_dtype()
    counts = op.per_run(lambda call: math.prod(call.args[0].shape[a] for a in axes))
    if len(set(counts)) == 1:
        return g.op("Div", total, g.const(max(counts[0] - correction, 0), dtype))
    sizes = op.sizes(op.per_run(lambda call: [call.args[0].shape[a] for a in axes]),
                     prefer=(x,))  # (len(axes),): the reduced dims at run time
    count = g.cast(g.reduce("ReduceProd", sizes, [0], False), dtype)
    divisor = g.op("Max", g.op("Sub", count, g.const(correction, dtype)), g.const(0, dtype))
    return g.op("Div", total, divisor)


def std(g, op):
    return g.op("Sqrt", op.input(0))


def logsumexp(g, op):
    """m + log Σ exp(x - m), m = max x over the axes (0 where it is infinite, as minidl)."""
    x, axes, keepdim, dtype = op.input(0), op.arg(1), op.arg(2), op.out_dtype()
    peak = g.reduce("ReduceMax", x, axes, True)
    peak = g.op("Where", g.op("IsInf", peak), g.const(0, dtype), peak)
    total = g.reduce("ReduceSum", g.op("Exp", g.op("Sub", x, peak)), axes, True)
    result = g.op("Add", g.op("Log", total), peak)
    return result if keepdim or not axes else g.squeeze(result, axes)


def softmax(g, op):
    return g.op("Softmax", op.input(0), axis=op.arg(1))


def log_softmax(g, op):
    return g.op("LogSoftmax", op.input(0), axis=op.arg(1))


CONVERTERS = {
    reduction.Sum: sum_,
    reduction.Mean: mean,
    reduction.AMax: amax,
    reduction.MaxAlongDim: max_along_dim,
    reduction.Var: var,
    reduction.Std: std,
    reduction.LogSumExp: logsumexp,
    reduction.Softmax: softmax,
    reduction.LogSoftmax: log_softmax,
}
