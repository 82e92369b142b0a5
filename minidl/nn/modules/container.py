"""The path ``torch.nn.modules.container``: containers from minidl.nn."""
from minidl.nn.container import ModuleDict, ModuleList, Sequential

__all__ = ["ModuleDict", "ModuleList", "Sequential"]
