"""ONNX for the elementwise ops: arithmetic, math functions, activations, casts and copies.

A converter takes the graph ``g`` and the traced op (``minidl/onnx/values.py``'s ``Op``) and
returns the ONNX names of the op's outputs. A Python number in an op is a constant of the op's
output dtype (what NumPy's promotion gave the result).
"""
from __future__ import annotations

import math

from minidl.ops import arithmetic, conversion, elementwise, pointwise

# ops that are one ONNX op of one input (ToDevice's second argument is the device) or two
UNARY = {
    pointwise.Neg: "Neg", pointwise.Exp: "Exp", pointwise.Log: "Log", pointwise.Sqrt: "Sqrt",
    pointwise.Abs: "Abs", pointwise.Tanh: "Tanh", pointwise.Sigmoid: "Sigmoid",
    pointwise.ReLU: "Relu", elementwise.Erf: "Erf", elementwise.Reciprocal: "Reciprocal",
    conversion.Clone: "Identity", conversion.ToDevice: "Identity",
}
BINARY = {arithmetic.Add: "Add", arithmetic.Sub: "Sub", arithmetic.Mul: "Mul",
          arithmetic.Div: "Div", arithmetic.Pow: "Pow", arithmetic.Maximum: "Max",
          arithmetic.Minimum: "Min"}

# Smooth's NumPy names that ONNX has under another name (the rest are composed below)
SMOOTH = {"sin": "Sin", "cos": "Cos", "tan": "Tan", "arcsin": "Asin", "arccos": "Acos",
          "arctan": "Atan", "sinh": "Sinh", "cosh": "Cosh"}
STEPS = {"sign": "Sign", "floor": "Floor", "ceil": "Ceil", "round": "Round"}  # + trunc, composed


def unary(g, op):
    return g.op(UNARY[op.function], op.input(0))


def binary(g, op):
    """z = x ∘ y with NumPy's broadcasting, which is ONNX's."""
    dtype = op.out_dtype()
    return g.op(BINARY[op.function], op.input(0, dtype), op.input(1, dtype))


def where(g, op):
    """z = condition ? x : y."""
    dtype = op.out_dtype()
    return g.op("Where", op.option_input("condition"), op.input(0, dtype), op.input(1, dtype))


def to_dtype(g, op):
    return g.cast(op.input(0), op.out_dtype())


def leaky_relu(g, op):
    return g.op("LeakyRelu", op.input(0), alpha=float(op.arg(1)))


def gelu(g, op):
    """x Φ(x): ONNX's Gelu from opset 20; before, 0.5 x (1 + erf(x/√2)) or the tanh form
    0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))."""
    x, approximate, dtype = op.input(0), op.arg(1), op.out_dtype()
    if g.opset >= 20:
        return g.op("Gelu", x, approximate=approximate)
    if approximate == "tanh":
        cube = g.op("Mul", g.op("Mul", x, x), x)
        inner = g.op("Add", x, g.op("Mul", cube, g.const(0.044715, dtype)))
        phi = g.op("Tanh", g.op("Mul", inner, g.const(math.sqrt(2 / math.pi), dtype)))
    else:
        phi = g.op("Erf", g.op("Mul", x, g.const(1 / math.sqrt(2), dtype)))
    half_x = g.op("Mul", x, g.const(0.5, dtype))
    return g.op("Mul", half_x, g.op("Add", phi, g.const(1.0, dtype)))


def softplus(g, op):
    """log(1 + e^(βx)) / β, and x where βx > threshold."""
    x, beta, threshold, dtype = op.input(0), float(op.arg(1)), float(op.arg(2)), op.out_dtype()
    scaled = x if beta == 1 else g.op("Mul", x, g.const(beta, dtype))
    smooth = g.op("Softplus", scaled)
    smooth = smooth if beta == 1 else g.op("Div", smooth, g.const(beta, dtype))
    return g.op("Where", g.op("Greater", scaled, g.const(threshold, dtype)), x, smooth)


def clamp(g, op):
    """min(max(x, low), high); either bound may be None."""
    dtype = op.out_dtype()
    bounds = [None if op.arg(i) is None else g.const(op.arg(i), dtype) for i in (1, 2)]
    return g.op("Clip", op.input(0), *bounds)


def silu(g, op):
    x = op.input(0)
    return g.op("Mul", x, g.op("Sigmoid", x))


def rsqrt(g, op):
    return g.op("Reciprocal", g.op("Sqrt", op.input(0)))


def expm1(g, op):
    """eˣ - 1 (ONNX has no expm1: for |x| < 1e-4 float32 keeps fewer digits than NumPy's)."""
    return g.op("Sub", g.op("Exp", op.input(0)), g.const(1.0, op.out_dtype()))


def smooth(g, op):
    """sin, cos, tan, their inverses, sinh, cosh; log1p, log2 and log10 through Log."""
    x, name, dtype = op.input(0), op.option("name"), op.out_dtype()
    if name in SMOOTH:
        return g.op(SMOOTH[name], x)
    if name == "log1p":
        return g.op("Log", g.op("Add", x, g.const(1.0, dtype)))
    base = {"log2": 2.0, "log10": 10.0}[name]
    return g.op("Div", g.op("Log", x), g.const(math.log(base), dtype))


def step(g, op):
    """sign, floor, ceil, round (halves to even in both), and trunc = sign(x) · floor(|x|)."""
    x, name = op.input(0), op.option("name")
    if name == "trunc":
        return g.op("Mul", g.op("Sign", x), g.op("Floor", g.op("Abs", x)))
    return g.op(STEPS[name], x)


CONVERTERS = {
    **{function: unary for function in UNARY},
    **{function: binary for function in BINARY},
    arithmetic.Where: where,
    conversion.ToDtype: to_dtype,
    pointwise.LeakyReLU: leaky_relu,
    pointwise.GELU: gelu,
    pointwise.Softplus: softplus,
    pointwise.Clamp: clamp,
    pointwise.SiLU: silu,
    elementwise.Rsqrt: rsqrt,
    elementwise.Expm1: expm1,
    elementwise.Smooth: smooth,
    elementwise.PiecewiseConstant: step,
}
