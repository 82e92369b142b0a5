"""The functional form of every layer and loss (``import minidl.nn.functional as F``)."""
from minidl.ops import (gelu, leaky_relu, log_softmax, relu, sigmoid, silu, softmax, softplus,  # noqa: F401
                        tanh)
from minidl.ops.dropout import dropout  # noqa: F401
from minidl.ops.linalg import linear  # noqa: F401
from minidl.ops.normalization import layer_norm  # noqa: F401
from minidl.ops.shape import pad  # noqa: F401
