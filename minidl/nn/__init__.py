"""Layers (Modules) with PyTorch's names, arguments, parameter names and state_dict keys."""
from minidl.nn import functional, init, utils
from minidl.nn.activation import GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax, Softplus, Tanh
from minidl.nn.container import Flatten, Identity, ModuleDict, ModuleList, Sequential, Unflatten
from minidl.nn.dropout import Dropout
from minidl.nn.linear import Linear
from minidl.nn.module import Module
from minidl.nn.normalization import LayerNorm
from minidl.nn.parameter import Parameter
