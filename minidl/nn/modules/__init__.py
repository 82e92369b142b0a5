"""PyTorch's class paths under ``torch.nn.modules`` (``minidl.nn.modules.linear.Linear``, ...).

Each submodule re-exports the layers of minidl.nn that PyTorch defines in the module of that name,
so code and pickles that name ``torch.nn.modules.<module>.<Class>`` find the same class here;
nothing is implemented twice (``minidl.nn.modules.linear.Linear is minidl.nn.Linear``).
"""
from minidl.nn.modules import (activation, batchnorm, container, conv, dropout, flatten, linear,
                               loss, module, normalization, pooling, rnn, sparse, transformer)
from minidl.nn.modules.activation import (GELU, LeakyReLU, LogSoftmax, MultiheadAttention, ReLU,
                                          Sigmoid, SiLU, Softmax, Softplus, Tanh)
from minidl.nn.modules.batchnorm import BatchNorm1d, BatchNorm2d, BatchNorm3d
from minidl.nn.modules.container import ModuleDict, ModuleList, Sequential
from minidl.nn.modules.conv import (Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d,
                                    ConvTranspose3d)
from minidl.nn.modules.dropout import Dropout
from minidl.nn.modules.flatten import Flatten, Unflatten
from minidl.nn.modules.linear import Identity, Linear
from minidl.nn.modules.loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss,
                                    KLDivLoss, L1Loss, MSELoss, NLLLoss, SmoothL1Loss)
from minidl.nn.modules.module import Module
from minidl.nn.modules.normalization import GroupNorm, LayerNorm
from minidl.nn.modules.pooling import (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d,
                                       AvgPool1d, AvgPool2d, AvgPool3d, MaxPool1d, MaxPool2d,
                                       MaxPool3d)
from minidl.nn.modules.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell, RNNCellBase
from minidl.nn.modules.sparse import Embedding
from minidl.nn.modules.transformer import (Transformer, TransformerDecoder, TransformerDecoderLayer,
                                           TransformerEncoder, TransformerEncoderLayer)
