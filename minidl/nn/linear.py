"""Linear (fully connected) layer."""
from __future__ import annotations

import math

from minidl import creation
from minidl.nn import init
from minidl.nn.checks import check_input
from minidl.nn.module import Module
from minidl.nn.parameter import Parameter
from minidl.ops.linalg import linear


class Linear(Module):
    """y = x Wᵀ + b.

    Args:
        in_features: size of each input sample's last dim.
        out_features: size of each output sample's last dim.
        bias: learn an additive bias (default True).

    Shape:
        input (*, in_features) -> output (*, out_features).

    Weights: ``weight`` (out_features, in_features) and ``bias`` (out_features,), initialised from
    U(-1/sqrt(in_features), 1/sqrt(in_features)) as in PyTorch.

    Examples:
        >>> layer = Linear(20, 30)
        >>> layer(minidl.randn(128, 20)).shape
        (128, 30)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(creation.empty(out_features, in_features, dtype=dtype, device=device))
        if bias:
            self.bias = Parameter(creation.empty(out_features, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        check_input(self, input, ("...", self.in_features), like=self.weight)
        return linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
