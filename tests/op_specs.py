"""The table of core ops: one entry per case, used by gradcheck and PyTorch-parity tests alike.

Each spec's ``fn(m, *tensors, **params)`` is written once against the shared PyTorch/minidl API:
``m`` is ``minidl`` or ``torch``, so the same line defines both sides of the parity check.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minidl


def F(m):
    """``torch.nn.functional`` or ``minidl.nn.functional``."""
    return m.nn.functional


@dataclass
class Spec:
    name: str  # "op" or "op[variant]"; the op part must be a public op name
    fn: Callable
    inputs: Callable  # draw -> (list of input shapes, dict of params)
    domain: str = "real"  # "real", "positive" (> 0.5) or "nonzero" (|x| > 0.5)
    gradcheck: dict = field(default_factory=dict)

    @property
    def op(self) -> str:
        return self.name.split("[")[0]


SHAPE = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
NONEMPTY_SHAPE = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


def one(draw):
    return [draw(SHAPE)], {}


def pair(draw):
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4))
    return list(shapes.input_shapes), {}


def with_dim(draw):
    shape = draw(NONEMPTY_SHAPE)
    return [shape], {"dim": draw(st.integers(-len(shape), len(shape) - 1))}


def with_dims(draw, keepdim=True):
    """A shape and a reduction ``dim``: None, an int or a tuple (negative dims included)."""
    shape = draw(SHAPE)
    ndim = len(shape)
    choice = draw(st.sampled_from(["none", "int", "tuple"] if ndim else ["none"]))
    if choice == "none":
        dim = None
    elif choice == "int":
        dim = draw(st.integers(-ndim, ndim - 1))
    else:
        axes = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
        dim = tuple(a - ndim if draw(st.booleans()) else a for a in axes)
    return [shape], {"dim": dim, "keepdim": draw(st.booleans())}


def variance_case(draw):
    """var/std need more elements than the correction in every reduced slice."""
    shapes, params = with_dims(draw)
    shape = shapes[0]
    axes = range(len(shape)) if params["dim"] is None else (
        [params["dim"]] if isinstance(params["dim"], int) else params["dim"])
    count = int(np.prod([shape[a] for a in axes])) if len(shape) else 1
    params["correction"] = draw(st.integers(0, 1)) if count > 1 else 0
    return shapes, params


def std_case(draw):
    """std's gradient divides by std itself: every reduced slice needs two elements or more."""
    shapes, params = variance_case(draw)
    shape, dim = shapes[0], params["dim"]
    axes = range(len(shape)) if dim is None else ([dim] if isinstance(dim, int) else dim)
    assume(int(np.prod([shape[a] for a in axes])) > 1 if len(shape) else False)
    return shapes, params


def matrix(draw):
    """A batch of matrices (tril/triu) and a diagonal offset."""
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=4))
    return [shape], {"diagonal": draw(st.integers(-2, 2))}


def roll_case(draw):
    shapes, params = with_dim(draw)
    params["shifts"] = draw(st.integers(-5, 5))
    return shapes, params


def narrow_case(draw):
    shapes, params = with_dim(draw)
    size = shapes[0][params["dim"]]
    params["start"] = draw(st.integers(-size, size - 1))
    start = params["start"] % size
    params["length"] = draw(st.integers(0, size - start))
    return shapes, params


def sort_case(draw):
    shapes, params = with_dim(draw)
    params["descending"] = draw(st.booleans())
    return shapes, params


def topk_case(draw):
    shapes, params = with_dim(draw)
    params["k"] = draw(st.integers(1, shapes[0][params["dim"]]))
    params["largest"] = draw(st.booleans())
    return shapes, params


def norm_case(draw):
    shapes, params = with_dims(draw)
    params["ord"] = draw(st.sampled_from([2, 1, 3, float("inf"), -float("inf")]))
    return shapes, params


def matmul_shapes(draw):
    k = draw(st.integers(1, 4))
    m, n = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    kind = draw(st.sampled_from(["vv", "mv", "vm", "mm", "batched"]))
    if kind == "vv":
        return [(k,), (k,)], {}
    if kind == "mv":
        return [(m, k), (k,)], {}
    if kind == "vm":
        return [(k,), (k, n)], {}
    if kind == "mm":
        return [(m, k), (k, n)], {}
    batch = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=2, max_side=3))
    a, b = batch.input_shapes
    return [a + (m, k), b + (k, n)], {}


def where_case(draw):
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=3))
    x, y, c = shapes.input_shapes
    mask = np.random.default_rng(draw(st.integers(0, 99))).random(c) > 0.5
    return [x, y], {"condition": mask}


def masked_fill_case(draw):
    shape = draw(SHAPE)
    mask_shape = draw(hnp.broadcastable_shapes(shape, max_dims=len(shape)))
    mask = np.random.default_rng(draw(st.integers(0, 99))).random(mask_shape) > 0.5
    return [shape], {"mask": mask, "value": draw(st.floats(-3, 3))}


def reshape_case(draw):
    shape = draw(SHAPE)
    size = int(np.prod(shape))
    target = draw(st.sampled_from([(size,), (-1,), tuple(reversed(shape)), (1, size), (size, 1, -1)]))
    return [shape], {"shape": target}


def flatten_case(draw):
    shape = draw(NONEMPTY_SHAPE)
    start = draw(st.integers(-len(shape), len(shape) - 1))
    end = draw(st.integers(start % len(shape), len(shape) - 1))
    return [shape], {"start_dim": start, "end_dim": end}


def permute_case(draw):
    shape = draw(SHAPE)
    return [shape], {"dims": tuple(draw(st.permutations(range(len(shape)))))}


def transpose_case(draw):
    shape = draw(NONEMPTY_SHAPE)
    dims = st.integers(-len(shape), len(shape) - 1)
    return [shape], {"dim0": draw(dims), "dim1": draw(dims)}


def squeeze_case(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=2))
    dim = draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    return [shape], {"dim": dim}


def unsqueeze_case(draw):
    shape = draw(SHAPE)
    return [shape], {"dim": draw(st.integers(-len(shape) - 1, len(shape)))}


def expand_case(draw):
    target = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    source = tuple(n if draw(st.booleans()) else 1 for n in target[draw(st.integers(0, len(target) - 1)):])
    sizes = tuple(-1 if (i >= len(target) - len(source) and draw(st.booleans())) else n
                  for i, n in enumerate(target))
    return [source], {"sizes": sizes}


def getitem_case(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    rng = np.random.default_rng(draw(st.integers(0, 999)))
    kind = draw(st.sampled_from(["basic", "int-array", "two-arrays", "bool"]))
    if kind == "basic":  # ints (negative too), slices with positive steps, None, Ellipsis
        index = draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))
        parts = index if isinstance(index, tuple) else (index,)
        assume(all(not isinstance(p, slice) or (p.step or 1) > 0 for p in parts))  # torch: step > 0
    elif kind == "int-array" or len(shape) < 2:  # with repeats: their gradients must add up
        index = rng.integers(-shape[0], shape[0], size=draw(st.integers(1, 5))).tolist()
    elif kind == "two-arrays":
        count = draw(st.integers(1, 4))
        index = (rng.integers(0, shape[0], count).tolist(), rng.integers(0, shape[1], count).tolist())
    else:
        index = rng.random(shape) > 0.4
    return [shape], {"index": index}


def cat_case(draw):
    base = draw(NONEMPTY_SHAPE)
    dim = draw(st.integers(-len(base), len(base) - 1))
    sizes = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    axis = dim % len(base)
    return [base[:axis] + (n,) + base[axis + 1:] for n in sizes], {"dim": dim}


def stack_case(draw):
    base = draw(SHAPE)
    count = draw(st.integers(1, 3))
    return [base] * count, {"dim": draw(st.integers(-len(base) - 1, len(base)))}


def split_case(draw):
    shape = draw(NONEMPTY_SHAPE)
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    length = shape[dim]
    if draw(st.booleans()):
        return [shape], {"split": draw(st.integers(1, length + 1)), "dim": dim}
    cuts = sorted(draw(st.lists(st.integers(0, length), max_size=2)))
    bounds = [0] + cuts + [length]
    return [shape], {"split": [b - a for a, b in zip(bounds, bounds[1:])], "dim": dim}


def chunk_case(draw):
    shape, params = with_dim(draw)
    params["chunks"] = draw(st.integers(1, 5))
    return shape, params


def pad_case(draw):
    shape = draw(NONEMPTY_SHAPE)
    pairs = draw(st.integers(1, len(shape)))
    return [shape], {"pad": tuple(draw(st.integers(0, 2)) for _ in range(2 * pairs)),
                     "value": draw(st.floats(-2, 2))}


def clamp_case(draw):
    low = draw(st.one_of(st.none(), st.floats(-1, 0)))
    high = draw(st.floats(0.1, 1) if low is None else st.one_of(st.none(), st.floats(0.1, 1)))
    return [draw(SHAPE)], {"min": low, "max": high}


def _matrix_index(m, index):
    """Bool masks go in as tensors (both engines take them); everything else as it is."""
    return m.tensor(index) if isinstance(index, np.ndarray) else index


SPECS = [
    Spec("add", lambda m, x, y: m.add(x, y), pair),
    Spec("add[scalar]", lambda m, x: 2.5 + x, one),
    Spec("sub", lambda m, x, y: x - y, pair),
    Spec("sub[scalar-left]", lambda m, x: 2.5 - x, one),
    Spec("mul", lambda m, x, y: x * y, pair),
    Spec("mul[scalar]", lambda m, x: x * -1.5, one),
    Spec("div", lambda m, x, y: x / y, pair, domain="nonzero"),
    Spec("div[scalar-left]", lambda m, x: 1.5 / x, one, domain="nonzero"),
    Spec("pow", lambda m, x, y: x ** y, pair, domain="positive"),
    Spec("pow[scalar-exponent]", lambda m, x: x ** 3, one),
    Spec("pow[scalar-base]", lambda m, x: 2.0 ** x, one),
    Spec("neg", lambda m, x: -x, one),
    Spec("maximum", lambda m, x, y: m.maximum(x, y), pair),
    Spec("minimum", lambda m, x, y: m.minimum(x, y), pair),
    Spec("where", lambda m, x, y, condition: m.where(m.tensor(condition), x, y), where_case),
    Spec("masked_fill", lambda m, x, mask, value: x.masked_fill(m.tensor(mask), value), masked_fill_case),
    Spec("matmul", lambda m, x, y: x @ y, matmul_shapes),
    Spec("exp", lambda m, x: m.exp(x), one),
    Spec("log", lambda m, x: m.log(x), one, domain="positive"),
    Spec("sqrt", lambda m, x: m.sqrt(x), one, domain="positive"),
    Spec("abs", lambda m, x: m.abs(x), one, domain="nonzero"),
    Spec("tanh", lambda m, x: m.tanh(x), one),
    Spec("sigmoid", lambda m, x: m.sigmoid(x), one),
    Spec("relu", lambda m, x: m.relu(x), one, domain="nonzero"),
    Spec("leaky_relu", lambda m, x: F(m).leaky_relu(x, 0.1), one, domain="nonzero"),
    Spec("gelu", lambda m, x: F(m).gelu(x), one),
    Spec("gelu[tanh]", lambda m, x: F(m).gelu(x, approximate="tanh"), one),
    Spec("softplus", lambda m, x: F(m).softplus(x * 4, beta=2.0, threshold=5.0), one),
    Spec("silu", lambda m, x: F(m).silu(x), one),
    Spec("clamp", lambda m, x, min, max: m.clamp(x, min=min, max=max), clamp_case),
    Spec("sum", lambda m, x, dim, keepdim: m.sum(x, dim=dim, keepdim=keepdim) if dim is not None
         else m.sum(x), with_dims),
    Spec("mean", lambda m, x, dim, keepdim: m.mean(x, dim=dim, keepdim=keepdim) if dim is not None
         else m.mean(x), with_dims),
    Spec("var", lambda m, x, dim, keepdim, correction: m.var(x, dim=dim, keepdim=keepdim,
                                                             correction=correction), variance_case),
    Spec("std", lambda m, x, dim, keepdim, correction: m.std(x, dim=dim, keepdim=keepdim,
                                                             correction=correction), std_case),
    Spec("max", lambda m, x: m.max(x), one),
    Spec("max[dim]", lambda m, x, dim: tuple(m.max(x, dim=dim, keepdim=dim < 0)), with_dim),
    Spec("min", lambda m, x: m.min(x), one),
    Spec("min[dim]", lambda m, x, dim: tuple(m.min(x, dim=dim)), with_dim),
    Spec("amax", lambda m, x, dim, keepdim: m.amax(x, dim=() if dim is None else dim, keepdim=keepdim),
         with_dims),
    Spec("amin", lambda m, x, dim, keepdim: m.amin(x, dim=() if dim is None else dim, keepdim=keepdim),
         with_dims),
    Spec("logsumexp", lambda m, x, dim: m.logsumexp(x * 10, dim=dim), with_dim),
    Spec("softmax", lambda m, x, dim: m.softmax(x * 3, dim=dim), with_dim),
    Spec("log_softmax", lambda m, x, dim: m.log_softmax(x * 3, dim=dim), with_dim),
    Spec("reshape", lambda m, x, shape: x.reshape(shape), reshape_case),
    Spec("flatten", lambda m, x, start_dim, end_dim: m.flatten(x, start_dim, end_dim), flatten_case),
    Spec("permute", lambda m, x, dims: x.permute(dims), permute_case),
    Spec("transpose", lambda m, x, dim0, dim1: m.transpose(x, dim0, dim1), transpose_case),
    Spec("squeeze", lambda m, x, dim: x.squeeze() if dim is None else x.squeeze(dim), squeeze_case),
    Spec("unsqueeze", lambda m, x, dim: m.unsqueeze(x, dim), unsqueeze_case),
    Spec("expand", lambda m, x, sizes: x.expand(*sizes), expand_case),
    Spec("broadcast_to", lambda m, x, sizes: m.broadcast_to(
        x, tuple(x.shape[i - len(sizes) + x.ndim] if n == -1 else n for i, n in enumerate(sizes))),
        expand_case),
    Spec("getitem", lambda m, x, index: x[_matrix_index(m, index)], getitem_case),
    Spec("cat", lambda m, *xs, dim: m.cat(xs, dim=dim), cat_case),
    Spec("stack", lambda m, *xs, dim: m.stack(xs, dim=dim), stack_case),
    Spec("split", lambda m, x, split, dim: tuple(m.split(x, split, dim=dim)), split_case),
    Spec("chunk", lambda m, x, chunks, dim: tuple(m.chunk(x, chunks, dim=dim)), chunk_case),
    Spec("pad", lambda m, x, pad, value: F(m).pad(x, pad, value=value), pad_case),
    Spec("sin", lambda m, x: m.sin(x), one),
    Spec("cos", lambda m, x: x.cos(), one),
    Spec("tan", lambda m, x: m.tan(x * 0.5), one),
    Spec("asin", lambda m, x: m.asin(x.tanh() * 0.9), one),
    Spec("acos", lambda m, x: x.tanh().mul(0.9).acos(), one),
    Spec("atan", lambda m, x: m.atan(x), one),
    Spec("sinh", lambda m, x: m.sinh(x), one),
    Spec("cosh", lambda m, x: x.cosh(), one),
    Spec("log2", lambda m, x: m.log2(x), one, domain="positive"),
    Spec("log10", lambda m, x: x.log10(), one, domain="positive"),
    Spec("square", lambda m, x: m.square(x), one),
    Spec("rsqrt", lambda m, x: m.rsqrt(x), one, domain="positive"),
    Spec("erf", lambda m, x: m.erf(x), one),
    Spec("log1p", lambda m, x: m.log1p(x), one, domain="positive"),
    Spec("expm1", lambda m, x: x.expm1(), one),
    Spec("reciprocal", lambda m, x: m.reciprocal(x), one, domain="nonzero"),
    Spec("sign", lambda m, x: m.sign(x) * x, one, domain="nonzero"),
    Spec("floor", lambda m, x: m.floor(x * 3) + x, one),
    Spec("ceil", lambda m, x: x.ceil() * x, one),
    Spec("round", lambda m, x: m.round(x * 3) * x, one),
    Spec("trunc", lambda m, x: m.trunc(x * 3) + x * x, one),
    Spec("tril", lambda m, x, diagonal: m.tril(x, diagonal), matrix),
    Spec("triu", lambda m, x, diagonal: x.triu(diagonal), matrix),
    Spec("roll", lambda m, x, dim, shifts: m.roll(x, shifts, dim), roll_case),
    Spec("roll[flat]", lambda m, x: m.roll(x, 2), one),
    Spec("narrow", lambda m, x, dim, start, length: x.narrow(dim, start, length), narrow_case),
    Spec("sort", lambda m, x, dim, descending: m.sort(x, dim=dim, descending=descending).values,
         sort_case),
    Spec("topk", lambda m, x, dim, k, largest: m.topk(x, k, dim=dim, largest=largest).values,
         topk_case),
    Spec("vector_norm", lambda m, x, dim, keepdim, ord: m.linalg.vector_norm(
        x, ord=ord, dim=dim, keepdim=keepdim), norm_case, domain="nonzero"),
    Spec("norm", lambda m, x, dim, keepdim: m.norm(  # torch's "fro" takes one or two dims
        x, dim=dim[:2] if isinstance(dim, tuple) else dim, keepdim=keepdim), with_dims,
        domain="nonzero"),
    Spec("clone", lambda m, x: m.clone(x) * 2, one),
    Spec("to_dtype", lambda m, x: x.to(m.float32).to(m.float64) * 3, one,
         gradcheck={"eps": 1e-2, "atol": 1e-3}),
    Spec("to_device", lambda m, x: x.to("cpu") * 3, one),
]


def make_array(shape, domain: str, layout: str, rng) -> np.ndarray:
    """Float64 values in ``domain``, laid out contiguous, transposed or sliced (non-contiguous)."""
    if layout == "transposed" and len(shape) >= 2:
        values = rng.standard_normal(tuple(reversed(shape))).T
    elif layout == "sliced":
        values = rng.standard_normal(tuple(shape) + (2,))[..., 0]
    else:
        values = rng.standard_normal(shape)
    if domain == "positive":
        values = np.abs(values) + 0.5
    elif domain == "nonzero":
        values = np.sign(values + 1e-12) * (np.abs(values) + 0.5)
    return np.asarray(values) if values.ndim else np.array(values)


def draw_case(spec: Spec, draw):
    shapes, params = spec.inputs(draw)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    layout = draw(st.sampled_from(["contiguous", "transposed", "sliced"]))
    return [make_array(s, spec.domain, layout, rng) for s in shapes], params


assert all(hasattr(minidl.ops, s.op) for s in SPECS), "a spec names an op that does not exist"
