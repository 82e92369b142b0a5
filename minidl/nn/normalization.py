"""Normalisation layers."""
from __future__ import annotations

from minidl import creation
from minidl.nn import init
from minidl.nn.checks import check_input
from minidl.nn.module import Module
from minidl.nn.parameter import Parameter
from minidl.ops.normalization import layer_norm


class LayerNorm(Module):
    """y = (x - E[x]) / sqrt(Var[x] + eps) · weight + bias over the trailing ``normalized_shape``.

    Shape:
        input (*, *normalized_shape) -> output of the same shape.
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.normalized_shape = ((normalized_shape,) if isinstance(normalized_shape, int)
                                 else tuple(normalized_shape))
        self.eps, self.elementwise_affine = eps, elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(creation.empty(self.normalized_shape, dtype=dtype, device=device))
        else:
            self.register_parameter("weight", None)
        if elementwise_affine and bias:
            self.bias = Parameter(creation.empty(self.normalized_shape, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, input):
        check_input(repr(self), input, ("...",) + self.normalized_shape, like=self.weight)
        return layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
