"""The path ``torch.nn.modules.dropout``: Dropout from minidl.nn."""
from minidl.nn.dropout import Dropout

__all__ = ["Dropout"]
