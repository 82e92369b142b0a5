"""The path ``torch.nn.modules.linear``: Linear and Identity from minidl.nn."""
from minidl.nn.container import Identity
from minidl.nn.linear import Linear

__all__ = ["Identity", "Linear"]
