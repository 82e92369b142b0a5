"""Utilities at PyTorch's paths: ``minidl.utils.data`` is ``torch.utils.data``."""
from minidl.utils import data
