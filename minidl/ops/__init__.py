"""Every differentiable op of the tensor core, one family per module; forward and backward together.

``__all__`` is the list of public ops; a test fails when one of them has no gradcheck entry.
Loading this package also installs Tensor's operators and op methods (``tensor_methods``).
"""
from minidl.ops.arithmetic import add, div, masked_fill, maximum, minimum, mul, pow, sub, where
from minidl.ops.comparison import eq, ge, gt, le, logical_and, logical_not, logical_or, lt, ne
from minidl.ops.conversion import clone, to_device, to_dtype
from minidl.ops.elementwise import (acos, asin, atan, ceil, cos, cosh, erf, expm1, floor, log1p,
                                    log2, log10, reciprocal, round, rsqrt, sign, sin, sinh, square,
                                    tan, tril, triu, trunc)
from minidl.ops.indexing import getitem
from minidl.ops.linalg import matmul, norm, vector_norm
from minidl.ops.ordering import argsort, narrow, roll, sort, topk
from minidl.ops.pointwise import (abs, clamp, exp, gelu, leaky_relu, log, neg, relu, sigmoid, silu,
                                  softplus, sqrt, tanh)
from minidl.ops.reduction import (amax, amin, argmax, argmin, log_softmax, logsumexp, max, mean, min,
                                  softmax, std, sum, var)
from minidl.ops.shape import (broadcast_to, cat, chunk, expand, flatten, pad, permute, reshape, split,
                              squeeze, stack, transpose, unsqueeze)
from minidl.ops.tensor_methods import install as _install_tensor_methods

_install_tensor_methods()

DIFFERENTIABLE = [
    "add", "sub", "mul", "div", "pow", "neg", "maximum", "minimum", "where", "masked_fill",
    "matmul", "exp", "log", "sqrt", "abs", "tanh", "sigmoid", "relu", "leaky_relu", "gelu",
    "softplus", "silu", "clamp", "sum", "mean", "var", "std", "max", "min", "amax", "amin",
    "logsumexp", "softmax", "log_softmax", "reshape", "flatten", "permute", "transpose", "squeeze",
    "unsqueeze", "expand", "broadcast_to", "getitem", "cat", "stack", "split", "chunk", "pad",
    "clone", "to_dtype", "to_device", "sin", "cos", "rsqrt", "erf", "log1p", "expm1",
    "reciprocal", "sign", "floor", "ceil", "round", "trunc", "tril", "triu", "roll", "narrow",
    "sort", "topk", "vector_norm", "norm", "tan", "asin", "acos", "atan", "sinh", "cosh", "log2",
    "log10", "square",
]
NON_DIFFERENTIABLE = [
    "eq", "ne", "lt", "le", "gt", "ge", "logical_not", "logical_and", "logical_or", "argmax", "argmin",
    "argsort",
]
__all__ = DIFFERENTIABLE + NON_DIFFERENTIABLE
