"""The path ``torch.nn.modules.flatten``: Flatten and Unflatten from minidl.nn."""
from minidl.nn.container import Flatten, Unflatten

__all__ = ["Flatten", "Unflatten"]
