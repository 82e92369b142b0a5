"""Reverse-mode automatic differentiation, first and higher order, with one backward per op.

The design, in three sentences:

1. Every op is a :class:`Function` whose ``forward`` and ``backward`` are written once, on arrays,
   with operators and NumPy's function names taken from ``ctx.xp``; on the first-order path
   (``backward()``, ``grad()``) ``ctx.xp`` is NumPy or CuPy and the gradients are plain arrays,
   so no graph is built while differentiating and the hot path stays array math and kernels.
2. Under ``create_graph=True`` the walk calls the same ``backward`` with a :class:`GraphContext`:
   its ``xp`` is :mod:`minidl.ops.tensor_namespace` (NumPy's names over Tensors, each call a
   recorded op), its saved values are the node's own input and output Tensors, and its gradients
   are Tensors, so the gradient is itself a graph that can be differentiated again.
3. A kernel's backward is itself a Function (Chainer's FunctionNode pattern): max-pool's
   backward calls ``MaxPoolGrad.apply(gy, ...)``, whose forward is the scatter kernel and whose
   backward, a gather, is derived once (``Function.apply`` on plain arrays only runs ``forward``,
   so on arrays that costs one call); a convolution's backward is its transpose and its weight
   gradient, each the others' gradient. An op fused by hand (norms, softmax cross-entropy,
   attention, recurrent layers) is a :class:`FusedFunction`: its backward stays on arrays, and
   under ``create_graph`` it is recorded as a node whose own backward autograd derives from
   ``composed``, the op written with ops (see :mod:`minidl.autograd.fused`).

A saved array that is neither an input nor an output of the op (a mask, indices) is a constant
under ``create_graph``; an op whose backward needs a differentiable intermediate recomputes it
from its inputs. A backward that escapes ``ctx.xp`` (returns a plain array under
``create_graph``) is an error naming the op, never a silently wrong second derivative.

The graph walk (``engine``) is iterative, so graph depth is unbounded.
"""
from minidl.autograd import functional
from minidl.autograd.engine import backward, grad
from minidl.autograd.function import Function, FunctionCtx, GraphContext
from minidl.autograd.fused import FusedFunction
from minidl.autograd.grad_mode import (detect_anomaly, enable_grad, is_anomaly_enabled,
                                       is_grad_enabled, no_grad, set_detect_anomaly,
                                       set_grad_enabled, tracing)
from minidl.gradient_check import GradcheckError, gradcheck, gradgradcheck

__all__ = ["Function", "FunctionCtx", "GraphContext", "FusedFunction", "backward", "grad", "functional", "gradcheck",
           "gradgradcheck", "GradcheckError", "no_grad", "enable_grad",
           "set_grad_enabled", "is_grad_enabled", "detect_anomaly", "set_detect_anomaly",
           "is_anomaly_enabled", "tracing"]
