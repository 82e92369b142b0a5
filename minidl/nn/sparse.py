"""Embedding layer: a lookup table of learned vectors."""
from __future__ import annotations

from minidl import creation
from minidl.nn import init
from minidl.nn.module import Module
from minidl.nn.parameter import Parameter
from minidl.ops.embedding import check_indices, embedding, normalize_padding_idx
from minidl.tensors import Tensor


class Embedding(Module):
    """y = weight[input]: row i of the table for index i.

    Args:
        num_embeddings: size of the table (indices lie in [0, num_embeddings)).
        embedding_dim: size of each vector.
        padding_idx: a row that stays zero at initialisation and gets no gradient (negative counts
            from the end).
        max_norm: not supported (NotImplementedError), as in :func:`minidl.ops.embedding.embedding`.
        norm_type: kept for PyTorch's signature; used only with ``max_norm``.
        scale_grad_by_freq: divide each row's gradient by its index's count in the batch.
        sparse: not supported (NotImplementedError).
        _weight: an initial table (num_embeddings, embedding_dim) to use instead of N(0, 1).
        _freeze: make ``weight`` not require grad.

    Shape:
        input (*) integer -> output (*, embedding_dim).

    Weights: ``weight`` (num_embeddings, embedding_dim), initialised from N(0, 1) with the
    padding row zeroed, as in PyTorch.

    Examples:
        >>> layer = Embedding(10, 3, padding_idx=0)
        >>> layer(minidl.tensor([[1, 2, 0], [4, 3, 9]])).shape
        (2, 3, 3)
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 max_norm=None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                 sparse: bool = False, _weight=None, _freeze: bool = False, device=None,
                 dtype=None):
        super().__init__()
        if max_norm is not None or sparse:
            raise NotImplementedError("Embedding: max_norm and sparse=True are not supported by "
                                      "minidl")
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = normalize_padding_idx("Embedding", padding_idx, num_embeddings)
        self.max_norm, self.norm_type = max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
        if _weight is None:
            self.weight = Parameter(creation.empty(num_embeddings, embedding_dim, dtype=dtype,
                                                   device=device), requires_grad=not _freeze)
            self.reset_parameters()
        else:
            if tuple(_weight.shape) != (num_embeddings, embedding_dim):
                raise ValueError(f"Embedding: _weight of shape {tuple(_weight.shape)} does not "
                                 f"match (num_embeddings, embedding_dim) = "
                                 f"({num_embeddings}, {embedding_dim})")
            self.weight = Parameter(_weight, requires_grad=not _freeze)

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight._data[self.padding_idx] = 0

    def forward(self, input):
        check_indices(repr(self), input, self.num_embeddings)
        return embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                         self.scale_grad_by_freq, self.sparse)

    def extra_repr(self) -> str:
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            text += f", padding_idx={self.padding_idx}"
        if self.scale_grad_by_freq:
            text += ", scale_grad_by_freq=True"
        return text

    @classmethod
    def from_pretrained(cls, embeddings, freeze: bool = True, padding_idx: int | None = None,
                        max_norm=None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                        sparse: bool = False) -> Embedding:
        """An Embedding holding ``embeddings`` (num_embeddings, embedding_dim) as its weight.

        The weight shares memory with ``embeddings`` and is used as given (the padding row is not
        zeroed), as in PyTorch; ``freeze`` (default True) makes it not require grad.
        """
        data = embeddings._data if isinstance(embeddings, Tensor) else embeddings
        if data.ndim != 2:
            raise ValueError(f"Embedding.from_pretrained: expected embeddings of shape "
                             f"(num_embeddings, embedding_dim), got {tuple(data.shape)}")
        return cls(data.shape[0], data.shape[1], padding_idx, max_norm, norm_type,
                   scale_grad_by_freq, sparse, _weight=data, _freeze=freeze)
