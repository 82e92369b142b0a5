"""The path ``torch.nn.modules.normalization``: LayerNorm and GroupNorm from minidl.nn."""
from minidl.nn.normalization import GroupNorm, LayerNorm

__all__ = ["GroupNorm", "LayerNorm"]
