"""``minidl.linalg`` (as ``torch.linalg``): vector norms so far."""
from minidl.ops.linalg import norm as _norm
from minidl.ops.linalg import vector_norm

__all__ = ["vector_norm", "norm"]


def norm(input, ord=None, dim=None, keepdim: bool = False):
    """``torch.linalg.norm`` for vectors: the 2-norm by default, else ``vector_norm(ord)``."""
    return _norm(input, "fro" if ord is None else ord, dim, keepdim)
