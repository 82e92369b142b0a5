"""The path ``torch.nn.modules.sparse``: Embedding from minidl.nn."""
from minidl.nn.sparse import Embedding

__all__ = ["Embedding"]
