"""Recurrent layers: RNN, LSTM, GRU (whole sequences) and RNNCell, LSTMCell, GRUCell (one step).

The math, forward and backward, is in minidl/ops/recurrent.py; these hold the weights, check the
inputs and handle the layouts (batch_first, unbatched input).
"""
from __future__ import annotations

import math
import numbers
import warnings

from minidl import creation
from minidl.nn import init
from minidl.nn.checks import check_input
from minidl.nn.module import Module
from minidl.nn.parameter import Parameter
from minidl.ops import recurrent
from minidl.ops.shape import squeeze, unsqueeze

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


class RNNBase(Module):
    """What RNN, LSTM and GRU share: the weights of every layer and direction, checks, repr.

    Args:
        mode: ``'RNN_TANH'``, ``'RNN_RELU'``, ``'LSTM'`` or ``'GRU'``.
        input_size: features of each input step (H_in).
        hidden_size: features of the hidden state (H).
        num_layers: stacked recurrent layers; layer l > 0 reads layer l - 1's output.
        bias: learn the biases b_ih and b_hh (default True).
        batch_first: input and output are (N, L, ·) instead of (L, N, ·); not the states.
        dropout: probability of dropout on each layer's output except the last, in training.
        bidirectional: also run each layer from the last step to the first (D = 2).
        proj_size: LSTM projections are not implemented; must be 0.

    Weights, for layer k and the suffix ``_reverse`` of the backward direction:
    ``weight_ih_l{k}`` (G·H, H_in or D·H), ``weight_hh_l{k}`` (G·H, H), ``bias_ih_l{k}`` and
    ``bias_hh_l{k}`` (G·H,), the G gates stacked as in PyTorch; all drawn from
    U(-1/sqrt(H), 1/sqrt(H)).
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device=None, dtype=None):
        super().__init__()
        _check_sizes(mode, input_size, hidden_size, num_layers)
        if proj_size != 0:
            raise NotImplementedError(f"{mode}: proj_size is not implemented, got {proj_size}")
        number = isinstance(dropout, numbers.Number) and not isinstance(dropout, bool)
        if not number or not 0 <= dropout <= 1:
            raise ValueError(f"{mode}: dropout should be a number in range [0, 1], got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"dropout acts between recurrent layers, so non-zero dropout expects "
                          f"num_layers greater than 1, but got dropout={dropout} and num_layers=1",
                          stacklevel=2)
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional, self.proj_size = float(dropout), bidirectional, proj_size
        directions = 2 if bidirectional else 1
        gate_size = _GATES[mode] * hidden_size
        self._flat_weights_names = []
        for layer in range(num_layers):
            for direction in range(directions):
                layer_input = input_size if layer == 0 else hidden_size * directions
                suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                shapes = dict(weight_ih=(gate_size, layer_input),
                              weight_hh=(gate_size, hidden_size))
                if bias:
                    shapes.update(bias_ih=(gate_size,), bias_hh=(gate_size,))
                for name, shape in shapes.items():
                    weight = Parameter(creation.empty(*shape, dtype=dtype, device=device))
                    self.register_parameter(name + suffix, weight)
                    self._flat_weights_names.append(name + suffix)
        self.reset_parameters()

    @property
    def _flat_weights(self) -> list:
        """Every weight in PyTorch's order: per layer and direction w_ih, w_hh (, b_ih, b_hh)."""
        return [getattr(self, name) for name in self._flat_weights_names]

    def flatten_parameters(self) -> None:
        """PyTorch packs cuDNN's weight buffer here; minidl has none, so this does nothing."""

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            init.uniform_(weight, -bound, bound)

    def _prepare(self, input, states: list, names: tuple):
        """Check the input and initial states; add the batch dim of an unbatched input.

        Returns the (batched) input, the (batched) states and whether the input was batched.
        """
        check_input(self, input, ("L", "N", self.input_size), ("L", self.input_size),
                    like=self.weight_ih_l0)
        batched = input.ndim == 3
        batch = input.shape[0 if self.batch_first else 1] if batched else 1
        count = self.num_layers * (2 if self.bidirectional else 1)
        expected = (count, batch, self.hidden_size) if batched else (count, self.hidden_size)
        for name, state in zip(names, states):
            if state is not None:
                check_input(self, state, expected, like=self.weight_ih_l0, role=f"({name})")
        if not batched:
            input = unsqueeze(input, 0 if self.batch_first else 1)
            states = [None if state is None else unsqueeze(state, 1) for state in states]
        return input, states, batched

    def _run(self, function, input, states):
        return function(input, states, self._flat_weights, self.bias, self.num_layers, self.dropout,
                        self.training, self.bidirectional, self.batch_first)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s


class RNN(RNNBase):
    """Elman RNN: h_t = act(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh), act = tanh or relu.

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, device,
        dtype: as in :class:`RNNBase`.
        nonlinearity: ``'tanh'`` (default) or ``'relu'``; the 4th positional argument, as in
            PyTorch.

    Shape:
        input (L, N, H_in), or (N, L, H_in) with batch_first, or unbatched (L, H_in); h_0
        (D·num_layers, N, H) or unbatched (D·num_layers, H), zeros when omitted.
        Returns output (L, N, D·H) (batch_first: (N, L, D·H); unbatched: (L, D·H)) — the last
        layer's h_t for every t — and h_n, shaped as h_0.

    Examples:
        >>> rnn = RNN(28, 128, batch_first=True)
        >>> output, h_n = rnn(minidl.randn(64, 28, 28))
        >>> output.shape, h_n.shape
        ((64, 28, 128), (1, 64, 128))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: unknown nonlinearity {nonlinearity!r}; select 'tanh' or 'relu'")
        super().__init__("RNN_" + nonlinearity.upper(), input_size, hidden_size, num_layers, bias,
                         batch_first, dropout, bidirectional, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        input, (hx,), batched = self._prepare(input, [hx], ("h_0",))
        function = recurrent.rnn_tanh if self.nonlinearity == "tanh" else recurrent.rnn_relu
        output, h_n = self._run(function, input, hx)
        return (output, h_n) if batched else (_unbatch(output, self.batch_first), squeeze(h_n, 1))


class LSTM(RNNBase):
    """Long short-term memory: gates i f g o = σ σ tanh σ (x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh).

    c_t = f ⊙ c_{t-1} + i ⊙ g and h_t = o ⊙ tanh(c_t); weights stack the gates in the order
    i, f, g, o (G = 4).

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
        proj_size (must be 0), device, dtype: as in :class:`RNNBase`.

    Shape:
        input as for :class:`RNN`; hx = (h_0, c_0), each (D·num_layers, N, H) or unbatched
        (D·num_layers, H), zeros when omitted. Returns output, (h_n, c_n).

    Examples:
        >>> lstm = LSTM(64, 128)
        >>> output, (h_n, c_n) = lstm(minidl.randn(64, 32, 64))
        >>> output.shape, c_n.shape
        ((64, 32, 128), (1, 32, 128))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, device, dtype)

    def forward(self, input, hx=None):
        states = [None, None] if hx is None else list(hx)
        input, states, batched = self._prepare(input, states, ("h_0", "c_0"))
        output, h_n, c_n = self._run(recurrent.lstm, input, states)
        if not batched:
            return _unbatch(output, self.batch_first), (squeeze(h_n, 1), squeeze(c_n, 1))
        return output, (h_n, c_n)


class GRU(RNNBase):
    """Gated recurrent unit: h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}.

    r, z = σ(x_t W_ir,zᵀ + b_ir,z + h_{t-1} W_hr,zᵀ + b_hr,z) and
    n = tanh(x_t W_inᵀ + b_in + r ⊙ (h_{t-1} W_hnᵀ + b_hn)); weights stack r, z, n (G = 3).

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, device,
        dtype: as in :class:`RNNBase`.

    Shape:
        as for :class:`RNN`: returns output, h_n.

    Examples:
        >>> gru = GRU(10, 20, num_layers=2)
        >>> output, h_n = gru(minidl.randn(5, 3, 10))
        >>> output.shape, h_n.shape
        ((5, 3, 20), (2, 3, 20))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        input, (hx,), batched = self._prepare(input, [hx], ("h_0",))
        output, h_n = self._run(recurrent.gru, input, hx)
        return (output, h_n) if batched else (_unbatch(output, self.batch_first), squeeze(h_n, 1))


class RNNCellBase(Module):
    """What RNNCell, LSTMCell and GRUCell share: their weights, checks and repr.

    Weights: ``weight_ih`` (G·H, H_in), ``weight_hh`` (G·H, H), ``bias_ih`` and ``bias_hh``
    (G·H,) with G = ``num_chunks`` gates, all drawn from U(-1/sqrt(H), 1/sqrt(H)).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int,
                 device=None, dtype=None):
        super().__init__()
        _check_sizes(type(self).__name__, input_size, hidden_size, 1)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        gate_size = num_chunks * hidden_size
        self.weight_ih = Parameter(creation.empty(gate_size, input_size, dtype=dtype,
                                                  device=device))
        self.weight_hh = Parameter(creation.empty(gate_size, hidden_size, dtype=dtype,
                                                  device=device))
        if bias:
            self.bias_ih = Parameter(creation.empty(gate_size, dtype=dtype, device=device))
            self.bias_hh = Parameter(creation.empty(gate_size, dtype=dtype, device=device))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            init.uniform_(weight, -bound, bound)

    def _step(self, function, input, states: list, names: tuple):
        """Check, add the batch dim of an unbatched input, run ``function``, remove it again."""
        check_input(self, input, ("N", self.input_size), (self.input_size,),
                    like=self.weight_ih)
        batched = input.ndim == 2
        expected = (input.shape[0], self.hidden_size) if batched else (self.hidden_size,)
        for name, state in zip(names, states):
            if state is not None:
                check_input(self, state, expected, like=self.weight_ih, role=f"({name})")
        if not batched:
            input = unsqueeze(input, 0)
            states = [None if state is None else unsqueeze(state, 0) for state in states]
        hx = states if len(states) == 2 else states[0]
        output = function(input, hx, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        if batched:
            return output
        return tuple(squeeze(h, 0) for h in output) if len(states) == 2 else squeeze(output, 0)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s


class RNNCell(RNNCellBase):
    """One Elman RNN step: h' = act(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh), act = tanh or relu.

    Args:
        input_size: features of the input (H_in).
        hidden_size: features of the hidden state (H).
        bias: learn b_ih and b_hh (default True).
        nonlinearity: ``'tanh'`` (default) or ``'relu'``.

    Shape:
        input (N, H_in) or (H_in,); hidden (N, H) or (H,), zeros when omitted -> h' like hidden.

    Examples:
        >>> cell = RNNCell(10, 20)
        >>> cell(minidl.randn(3, 10)).shape
        (3, 20)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: unknown nonlinearity {nonlinearity!r}; "
                             "select 'tanh' or 'relu'")
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        function = recurrent.rnn_tanh_cell if self.nonlinearity == "tanh" else \
            recurrent.rnn_relu_cell
        return self._step(function, input, [hx], ("hx",))


class LSTMCell(RNNCellBase):
    """One LSTM step: c' = f c + i g, h' = o tanh c'.

    i f g o = σ σ tanh σ (x W_ihᵀ + b_ih + h W_hhᵀ + b_hh).

    Args:
        input_size, hidden_size, bias: as for :class:`RNNCell`.

    Shape:
        input (N, H_in) or (H_in,); hx = (h, c), each (N, H) or (H,), zeros when omitted
        -> (h', c').

    Examples:
        >>> cell = LSTMCell(10, 20)
        >>> h, c = cell(minidl.randn(3, 10))
        >>> h.shape, c.shape
        ((3, 20), (3, 20))
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None,
                 dtype=None):
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)

    def forward(self, input, hx=None):
        states = [None, None] if hx is None else list(hx)
        return self._step(recurrent.lstm_cell, input, states, ("h", "c"))


class GRUCell(RNNCellBase):
    """One GRU step: h' = (1 - z) n + z h.

    r, z = σ(x W_ir,zᵀ + b_ir,z + h W_hr,zᵀ + b_hr,z);
    n = tanh(x W_inᵀ + b_in + r (h W_hnᵀ + b_hn)).

    Args:
        input_size, hidden_size, bias: as for :class:`RNNCell`.

    Shape:
        as for :class:`RNNCell`.

    Examples:
        >>> cell = GRUCell(10, 20)
        >>> cell(minidl.randn(3, 10)).shape
        (3, 20)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None,
                 dtype=None):
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)

    def forward(self, input, hx=None):
        return self._step(recurrent.gru_cell, input, [hx], ("hx",))


def _check_sizes(layer: str, input_size, hidden_size, num_layers) -> None:
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size),
                        ("num_layers", num_layers)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{layer}: {name} should be of type int, got {type(value).__name__}")
        if value <= 0:
            raise ValueError(f"{layer}: {name} must be greater than zero, got {value}")


def _unbatch(output, batch_first: bool):
    """Remove the batch dim added to an unbatched input: (L, 1, ·) or (1, L, ·) -> (L, ·)."""
    return squeeze(output, 0 if batch_first else 1)
