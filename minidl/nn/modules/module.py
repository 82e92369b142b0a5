"""The path ``torch.nn.modules.module``: Module from minidl.nn."""
from minidl.nn.module import Module

__all__ = ["Module"]
