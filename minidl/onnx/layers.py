"""ONNX for the layers' ops: linear, matmul, convolutions, pooling, the norms, embedding and
attention. Composed layers (batch norm in eval mode, group norm, adaptive pooling, multi-head
attention around its core) arrive as the ops they are made of."""
from __future__ import annotations

import math

import numpy as np

from minidl.ops.attention import BlockedAttention, ScaledDotProductAttention
from minidl.ops.conv import ConvNd, ConvTransposeNd
from minidl.ops.embedding import Embedding
from minidl.ops.linalg import Linear, MatMul
from minidl.ops.normalization import BatchNorm, LayerNorm
from minidl.ops.pooling import AvgPool, MaxPool


def matmul(g, op):
    return g.op("MatMul", op.input(0), op.input(1))


def linear(g, op):
    """x Wᵀ + b: one Gemm for 2-D x, else MatMul with Wᵀ (a Transpose ONNX Runtime folds)."""
    x, weight, bias = op.input(0), op.input(1), op.input(2)
    if len(op.shape(0)) == 2:
        return g.op("Gemm", x, weight, bias, transB=1)
    y = g.op("MatMul", x, g.op("Transpose", weight, perm=[1, 0]))
    return y if bias is None else g.op("Add", y, bias)


def _geometry(op) -> tuple:
    return op.option("stride"), op.option("padding"), op.option("dilation"), op.option("groups")


def convolution(g, op):
    """Conv with pads (begin..., end...): the end pads are those that give minidl's output size
    (padding='same' pads the odd one at the end), never less than the begin pads (where the
    floor of the size formula drops some, the same pads give the same size)."""
    stride, padding, dilation, groups = _geometry(op)
    kernel = op.shape(1)[2:]
    ends = op.static(lambda call: tuple(
        max(p, (o - 1) * s + d * (k - 1) + 1 - n - p) for n, o, k, s, p, d in zip(
            call.args[0].shape[2:], call.kwargs["output_size"], kernel, stride, padding,
            dilation)), "end padding")
    return g.op("Conv", op.input(0), op.input(1), op.input(2), kernel_shape=list(kernel),
                strides=list(stride), pads=list(padding) + list(ends), dilations=list(dilation),
                group=groups)


def transposed_convolution(g, op):
    """ConvTranspose; ``output_padding`` is what minidl's output size adds to ONNX's formula
    (n - 1)·s - 2p + d·(k - 1) + 1."""
    stride, padding, dilation, groups = _geometry(op)
    kernel = op.shape(1)[2:]
    extra = op.static(lambda call: tuple(
        o - ((n - 1) * s - 2 * p + d * (k - 1) + 1) for n, o, k, s, p, d in zip(
            call.args[0].shape[2:], call.kwargs["output_size"], kernel, stride, padding,
            dilation)), "output padding")
    return g.op("ConvTranspose", op.input(0), op.input(1), op.input(2),
                kernel_shape=list(kernel), strides=list(stride), pads=list(padding) * 2,
                dilations=list(dilation), group=groups, output_padding=list(extra))


def _pool_attributes(op) -> dict:
    """kernel, strides, pads and ceil_mode of the Window (minidl keeps 3-d tuples, ONNX the
    pooled dims); ceil_mode where minidl's output size is above the floor formula's."""
    dims = op.call.args[1].dims
    geometry = op.static(lambda call: (call.args[1].kernel, call.args[1].stride,
                                       call.args[1].padding, call.args[1].dilation), "window")
    kernel, stride, padding, dilation = (list(values[3 - dims:]) for values in geometry)
    floor = op.per_run(lambda call: tuple(
        (n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, p, d in zip(
            call.args[1].in_size, call.args[1].kernel, call.args[1].stride,
            call.args[1].padding, call.args[1].dilation)))
    ceil = any(f != call.args[1].out_size for f, call in zip(floor, op.calls))
    return dict(kernel_shape=kernel, strides=stride, pads=padding * 2, dilations=dilation,
                ceil_mode=int(ceil))


def _batched(g, op, pool):
    """Run ``pool`` on (N, C, *S); an unbatched (C, *S) input gets N = 1 around it."""
    unbatched = len(op.call.args[1].lead) == 1
    x = g.unsqueeze(op.input(0), [0]) if unbatched else op.input(0)
    y = pool(x)
    return g.squeeze(y, [0]) if unbatched else y


def max_pool(g, op):
    """MaxPool; minidl's second output (each maximum's position in its plane) is not exported."""
    attributes = _pool_attributes(op)
    y = _batched(g, op, lambda x: g.op("MaxPool", x, **attributes))
    return [y, None]


def avg_pool(g, op):
    attributes = _pool_attributes(op)
    del attributes["dilations"]  # an attribute of AveragePool only from opset 19; always 1 here
    include = int(op.option("count_include_pad"))
    return _batched(g, op, lambda x: g.op("AveragePool", x, count_include_pad=include,
                                          **attributes))


def layer_norm(g, op):
    """LayerNormalization over the last ``count`` dims (its scale input is required: ones when
    the layer has no weight)."""
    count, dtype = op.option("count"), op.dtype(0)
    weight = op.input(1)
    if weight is None:
        weight = g.const(np.ones(op.shape(0)[len(op.shape(0)) - count:]), dtype)
    return g.op("LayerNormalization", op.input(0), weight, op.input(2), axis=-count,
                epsilon=float(op.option("eps")))


def batch_norm(g, op):
    """Batch statistics (training mode, or a layer without running statistics):
    y = (x - mean) / sqrt(var + eps) · w + b per channel, over every dim but 1. The running
    statistics are not updated by the exported graph."""
    x, rank, dtype = op.input(0), len(op.shape(0)), op.dtype(0)
    axes = [0] + list(range(2, rank))
    centered = g.op("Sub", x, g.reduce("ReduceMean", x, axes, True))
    variance = g.reduce("ReduceMean", g.op("Mul", centered, centered), axes, True)
    std = g.op("Sqrt", g.op("Add", variance, g.const(op.option("eps"), dtype)))
    y = g.op("Div", centered, std)
    channel = g.ints([op.shape(0)[1]] + [1] * (rank - 2))  # (C, 1, ...) broadcasts on (N, C, ...)
    for index, combine in ((1, "Mul"), (2, "Add")):
        parameter = op.input(index)
        if parameter is not None:
            y = g.op(combine, y, g.op("Reshape", parameter, channel))
    return y


def embedding(g, op):
    """Rows of the weight at the indices: Gather on axis 0."""
    return g.op("Gather", op.input(0), op.option_input("indices"), axis=0)


def scaled_dot_product_attention(g, op):
    """softmax(Q Kᵀ · scale + M) V; a bool mask keeps the True places (-inf elsewhere), a float
    mask is added; a row whose keys are all masked is 0 (as minidl), not NaN."""
    if op.option("dropout_p") > 0:
        raise op.unsupported("attention with dropout_p > 0 draws random numbers; export in eval "
                             "mode or with dropout_p=0")
    mask = op.input(3)
    output, probabilities = _attention(g, op, mask, mask is not None and op.dtype(3) == bool)
    return [output, probabilities] if op.option("weights") else output


def blocked_attention(g, op):
    """The blocked kernel's attention, exported as the materialised one (the runtime has its own
    kernels); a causal mask is built in the graph from the query and key lengths, so dynamic
    sequence axes stay dynamic."""
    mask = op.input(3)
    if not op.option("causal"):
        return _attention(g, op, mask, mask is not None and op.dtype(3) == bool)[0]
    rank = len(op.shape(0))
    size = g.op("Concat", g.shape_slice(op.input(0), rank - 2),
                g.shape_slice(op.input(1), rank - 2), axis=0)  # [L, S]
    ones = g.op("Expand", g.const(1, op.dtype(0)), size)  # (L, S)
    lower = g.cast(g.op("Trilu", ones, upper=0), bool)  # query i sees keys j <= i
    return _attention(g, op, lower, True)[0]


def _attention(g, op, mask, mask_is_bool: bool) -> tuple:
    """(output, probabilities) of the attention op ``op`` (inputs q, k, v) under ``mask``."""
    q, k, v, dtype = op.input(0), op.input(1), op.input(2), op.dtype(0)
    rank = len(op.shape(1))
    keys = g.op("Transpose", k, perm=list(range(rank - 2)) + [rank - 1, rank - 2])
    scores = g.op("MatMul", g.op("Mul", q, g.const(op.option("scale"), dtype)), keys)
    if mask is not None and mask_is_bool:
        scores = g.op("Where", mask, scores, g.const(-math.inf, dtype))
    elif mask is not None:
        scores = g.op("Add", scores, mask)
    probabilities = g.op("Softmax", scores, axis=-1)
    if mask is not None:
        probabilities = g.op("Where", g.op("IsNaN", probabilities), g.const(0, dtype),
                             probabilities)
    return g.op("MatMul", probabilities, v), probabilities


CONVERTERS = {
    MatMul: matmul,
    Linear: linear,
    ConvNd: convolution,
    ConvTransposeNd: transposed_convolution,
    MaxPool: max_pool,
    AvgPool: avg_pool,
    LayerNorm: layer_norm,
    BatchNorm: batch_norm,
    Embedding: embedding,
    ScaledDotProductAttention: scaled_dot_product_attention,
    BlockedAttention: blocked_attention,
}
