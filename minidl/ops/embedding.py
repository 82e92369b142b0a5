"""Embedding lookup: rows of a weight matrix picked by integer indices."""
from __future__ import annotations

from minidl import backend
from minidl.autograd import Function
from minidl.kernels.scatter import index_add
from minidl.ops.indexing import GetItem
from minidl.tensors import Tensor


class Embedding(Function):
    """y = W[idx];  gW[k] = Σ_{i: idx_i = k} gy_i (÷ count of k if scale_grad_by_freq), gW[pad] = 0.

    Hand-written for speed: the backward is one scatter-add of gy's rows (``EmbeddingGrad``)
    instead of getitem's general advanced-index path.
    """

    @staticmethod
    def forward(ctx, weight, *, indices, padding_idx, scale_grad_by_freq):
        ctx.weight_meta, ctx.indices = (weight.shape, weight.dtype), indices
        ctx.padding_idx, ctx.scale_grad_by_freq = padding_idx, scale_grad_by_freq
        return weight[indices]  # indices.shape + (D,)

    @staticmethod
    def backward(ctx, gy):
        return EmbeddingGrad.apply(gy, indices=ctx.indices, weight_meta=ctx.weight_meta,
                                   padding_idx=ctx.padding_idx,
                                   scale_grad_by_freq=ctx.scale_grad_by_freq)


class EmbeddingGrad(Function):
    """gW = Σ of the rows s_i·gy_i at their indices (``index_add``, which accumulates repeats),
    s_i = [idx_i ≠ pad] / (count of idx_i if scale_grad_by_freq else 1);  ggy_i = s_i·ggW[idx_i].

    Linear in gy, so its gradient is the lookup again, with the same row scales.
    """

    @staticmethod
    def forward(ctx, gy, *, indices, weight_meta, padding_idx, scale_grad_by_freq):
        xp = ctx.xp
        (num, dim), dtype = weight_meta
        flat = indices.reshape(-1)  # (L,)
        rows = gy.reshape(flat.size, dim)  # (L, D)
        scale = None  # s_i = 1 for every row unless an option says otherwise
        if scale_grad_by_freq or padding_idx is not None:
            scale = xp.ones(flat.size, dtype=dtype)  # (L,)
            if scale_grad_by_freq:
                scale /= xp.bincount(flat, minlength=num)[flat]
            if padding_idx is not None:
                scale[flat == padding_idx] = 0
            rows = rows * scale[:, None]
            scale = scale.reshape(indices.shape + (1,))
        ctx.indices, ctx.row_scale = indices, scale
        gw = xp.zeros((num, dim), dtype=dtype)
        index_add(gw, flat, rows)
        return gw

    @staticmethod
    def backward(ctx, ggw):
        picked = GetItem.apply(ggw, index=ctx.indices)  # indices.shape + (D,)
        return picked if ctx.row_scale is None else picked * ctx.row_scale


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None, max_norm=None,
              norm_type: float = 2.0, scale_grad_by_freq: bool = False,
              sparse: bool = False) -> Tensor:
    """Look up rows of ``weight`` (num_embeddings, embedding_dim) at integer ``input`` (*).

    ``padding_idx`` (negative counts from the end) gets no gradient. ``scale_grad_by_freq``
    divides each row's gradient by how often its index occurs in ``input``.
    Not supported (NotImplementedError): ``max_norm`` (PyTorch renormalises the weight in place)
    and ``sparse=True`` (minidl has no sparse gradients).

    Shape:
        input (*), weight (num_embeddings, embedding_dim) -> output (*, embedding_dim).
    """
    if max_norm is not None:
        raise NotImplementedError("embedding: max_norm is not supported by minidl")
    if sparse:
        raise NotImplementedError("embedding: sparse gradients are not supported by minidl")
    if not isinstance(weight, Tensor) or weight.ndim != 2:
        got = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
        raise ValueError(f"embedding: expected a weight of shape (num_embeddings, embedding_dim), "
                         f"got {got}")
    num = weight.shape[0]
    padding_idx = normalize_padding_idx("embedding", padding_idx, num)
    check_indices("embedding", input, num)
    indices = backend.to_device(input._data, weight.device)
    return Embedding.apply(weight, indices=indices, padding_idx=padding_idx,
                           scale_grad_by_freq=scale_grad_by_freq)


def normalize_padding_idx(op: str, padding_idx: int | None, num_embeddings: int) -> int | None:
    """``padding_idx`` in [0, num_embeddings) (a negative one counts from the end), or an error."""
    if padding_idx is None:
        return None
    if not -num_embeddings <= padding_idx < num_embeddings:
        raise ValueError(f"{op}: padding_idx must be within [{-num_embeddings}, {num_embeddings}), "
                         f"got {padding_idx}")
    return padding_idx % num_embeddings


def check_indices(op: str, input, num_embeddings: int) -> None:
    """``input`` is an integer Tensor whose values all lie in [0, num_embeddings)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected indices as a Tensor, got {type(input).__name__}")
    if input.dtype.kind not in "iu":
        raise TypeError(f"{op}: expected indices of an integer dtype, got {input.dtype}")
    data = input._data
    if data.size:
        low, high = int(data.min()), int(data.max())
        if low < 0 or high >= num_embeddings:
            bad = low if low < 0 else high
            raise IndexError(f"{op}: index {bad} is out of range: expected indices in "
                             f"[0, {num_embeddings})")
