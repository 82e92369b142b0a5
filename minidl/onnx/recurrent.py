"""ONNX for the recurrent layers: each traced layer-direction (minidl/ops/recurrent.py) is one
ONNX LSTM, GRU or RNN node with direction "forward" or "reverse".

The gate blocks of the weights are stacked in another order in ONNX: PyTorch's LSTM is i f g o,
ONNX's i o f c (c is g); PyTorch's GRU is r z n, ONNX's z r h. The blocks are reordered by graph
ops on the initializers (which keep their state_dict names; ONNX Runtime folds the reordering
once when it loads the model). ONNX's GRU with ``linear_before_reset=1`` is PyTorch's:
n = tanh(x W_inᵀ + b_in + r ⊙ (h W_hnᵀ + b_hn)).
"""
from __future__ import annotations

from minidl.ops.recurrent import GRULayer, LSTMLayer, RNNLayer

ONNX_OP = {LSTMLayer: "LSTM", GRULayer: "GRU", RNNLayer: "RNN"}
# ONNX's gate blocks, as indices of PyTorch's blocks
GATE_ORDER = {LSTMLayer: (0, 3, 1, 2), GRULayer: (1, 0, 2), RNNLayer: (0,)}


def _reordered(g, weight: str, order: tuple, hidden: int) -> str:
    """``weight`` (G·H, ...) with its G blocks of H rows in ``order``."""
    if order == (0,):
        return weight
    blocks = g.op("Split", weight, g.ints([hidden] * len(order)), axis=0, outputs=len(order))
    return g.op("Concat", *[blocks[i] for i in order], axis=0)


def recurrent_layer(g, op):
    """(y (T, B, H), h_n (B, H)[, c_n]) from ONNX's (Y (T, 1, B, H), Y_h (1, B, H)[, Y_c])."""
    function = op.function
    states = 2 if function is LSTMLayer else 1
    x = op.input(0)
    initial = [op.input(1 + i) for i in range(states)]  # h0 (and c0), (B, H) or None
    w_ih, w_hh, b_ih, b_hh = (op.input(1 + states + i) for i in range(4))
    hidden, order = op.shape(2 + states)[1], GATE_ORDER[function]
    weights = [g.unsqueeze(_reordered(g, w, order, hidden), [0]) for w in (w_ih, w_hh)]
    bias = None
    if b_ih is not None:  # (1, 2·G·H): ONNX's Wb then Rb
        both = g.op("Concat", *[_reordered(g, b, order, hidden) for b in (b_ih, b_hh)], axis=0)
        bias = g.unsqueeze(both, [0])
    initial = [None if state is None else g.unsqueeze(state, [0]) for state in initial]
    reverse = op.static(lambda call: call.kwargs.get("reverse", False), "direction")
    attributes = dict(hidden_size=hidden, direction="reverse" if reverse else "forward")
    if function is GRULayer:
        attributes["linear_before_reset"] = 1
    if function is RNNLayer:
        attributes["activations"] = [op.option("nonlinearity").capitalize()]  # Tanh or Relu
    outputs = g.op(ONNX_OP[function], x, *weights, bias, None, *initial, outputs=1 + states,
                   **attributes)
    return [g.squeeze(outputs[0], [1])] + [g.squeeze(final, [0]) for final in outputs[1:]]


CONVERTERS = {RNNLayer: recurrent_layer, LSTMLayer: recurrent_layer, GRULayer: recurrent_layer}
