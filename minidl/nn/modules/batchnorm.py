"""The path ``torch.nn.modules.batchnorm``: batch normalization from minidl.nn."""
from minidl.nn.normalization import BatchNorm1d, BatchNorm2d, BatchNorm3d

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d"]
