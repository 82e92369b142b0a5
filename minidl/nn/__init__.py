"""Layers (Modules) with PyTorch's names, arguments, parameter names and state_dict keys."""
from minidl.nn import functional, init, utils
from minidl.nn.activation import GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax, Softplus, Tanh
from minidl.nn.attention import MultiheadAttention
from minidl.nn.container import Flatten, Identity, ModuleDict, ModuleList, Sequential, Unflatten
from minidl.nn.conv import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from minidl.nn.dropout import Dropout
from minidl.nn.linear import Linear
from minidl.nn.loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, KLDivLoss, L1Loss,
                            MSELoss, NLLLoss, SmoothL1Loss)
from minidl.nn.module import Module
from minidl.nn.normalization import BatchNorm1d, BatchNorm2d, BatchNorm3d, GroupNorm, LayerNorm
from minidl.nn.parameter import Parameter
from minidl.nn.pooling import (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d, AvgPool1d,
                               AvgPool2d, AvgPool3d, MaxPool1d, MaxPool2d, MaxPool3d)
from minidl.nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from minidl.nn.sparse import Embedding
from minidl.nn.transformer import (Transformer, TransformerDecoder, TransformerDecoderLayer,
                                   TransformerEncoder, TransformerEncoderLayer)
from minidl.nn import modules  # noqa: E402  (PyTorch's class paths torch.nn.modules.<module>: re-exports)
from minidl.nn import parallel  # noqa: E402  (DistributedDataParallel; builds on Module)
