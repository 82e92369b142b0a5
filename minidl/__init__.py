"""minidl: a deep-learning engine written from scratch on NumPy (CPU) and CuPy (GPU).

The public surface follows PyTorch: ``minidl.tensor``, ``minidl.randn``, ``minidl.no_grad``,
``minidl.nn``, ``minidl.optim``... Importing it prints nothing, touches no GPU and compiles nothing.
"""
from minidl.allocator import keep_freed_memory  # noqa: I001  (before the first large array)
from minidl.tensors import Tensor  # (Tensor first: the ops below build on it)
from minidl import autograd, backend, ops
from minidl.autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from minidl.backend import Device, cuda_is_available, device
from minidl.creation import (arange, bool_, empty, eye, float16, float32, float64, from_numpy, full,
                             full_like, get_default_dtype, int8, int16, int32, int64, linspace,
                             multinomial, ones,
                             ones_like, rand, rand_like, randint, randn, randn_like, randperm,
                             set_default_dtype, tensor, uint8, zeros, zeros_like)
from minidl.gradient_check import GradcheckError, gradcheck, gradgradcheck
from minidl.ops import (acos, argsort, asin, atan, ceil, cos, cosh, erf, expm1, floor, log1p, log2,
                        log10, narrow, norm, reciprocal, roll, round, rsqrt, sign, sin, sinh, sort,
                        square, tan, topk, tril, triu, trunc)
from minidl.ops import (abs, add, amax, amin, argmax, argmin, broadcast_to, cat, chunk, clamp, clone,
                        div, eq, exp, flatten, ge, gelu, getitem, gt, le, leaky_relu, log,
                        log_softmax, logical_and, logical_not, logical_or, logsumexp, lt, masked_fill,
                        matmul, max, maximum, mean, min, minimum, mul, ne, neg, permute, pow, relu,
                        reshape, sigmoid, silu, softmax, softplus, split, sqrt, squeeze, stack, std,
                        sub, sum, tanh, transpose, unsqueeze, var, where)
from minidl.ops.recurrent import (gru, gru_cell, lstm, lstm_cell, rnn_relu, rnn_relu_cell, rnn_tanh,
                                  rnn_tanh_cell)
from minidl.random import Generator, get_rng_state, manual_seed, set_rng_state
from minidl.serialization import load, save
from minidl import (backends, cuda, data, datasets, linalg, metrics, nn, optim,  # noqa: E402
                    train, utils)
from minidl.compat import accelerator, compile, inference_mode, unsupported_dtype  # noqa: E402

# PyTorch's dtype aliases, defined after the imports so those see the builtins they shadow here
bool, long, int, short, float, double, half = bool_, int64, int32, int16, float32, float64, float16
bfloat16 = unsupported_dtype("bfloat16", "NumPy has no bfloat16; use float32, or float16")

__version__ = "0.1.0"

keep_freed_memory()
