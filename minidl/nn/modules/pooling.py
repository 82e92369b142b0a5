"""The path ``torch.nn.modules.pooling``: pooling layers from minidl.nn."""
from minidl.nn.pooling import (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d, AvgPool1d,
                               AvgPool2d, AvgPool3d, MaxPool1d, MaxPool2d, MaxPool3d)

__all__ = ["AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AvgPool1d", "AvgPool2d",
           "AvgPool3d", "MaxPool1d", "MaxPool2d", "MaxPool3d"]
