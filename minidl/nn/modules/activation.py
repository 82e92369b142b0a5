"""The path ``torch.nn.modules.activation``: activations and MultiheadAttention from minidl.nn."""
from minidl.nn.activation import (GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax,
                                  Softplus, Tanh)
from minidl.nn.attention import MultiheadAttention

__all__ = ["GELU", "LeakyReLU", "LogSoftmax", "MultiheadAttention", "ReLU", "SiLU", "Sigmoid",
           "Softmax", "Softplus", "Tanh"]
