"""Recurrent networks: RNN (tanh / ReLU), LSTM and GRU, with backpropagation through time by hand.

One Function runs one layer in one direction over a whole sequence. Hand-written for speed:
composed from ops, every step would add a dozen graph nodes, and the step loop is the hot path.

- The input projection x W_ihᵀ + b for all T steps is one GEMM before the time loop.
- Each step does one small GEMM h W_hhᵀ and the fused gate math of kernels/recurrent.py.
- Backward walks the steps in reverse and keeps every step's pre-activation gradient, so the
  gradients of x, W_ih, W_hh and the biases are again a few big GEMMs after the loop.

Second order: each layer is a FusedFunction (minidl.autograd.fused). Its backward is the
hand-written BPTT on arrays, also under ``create_graph`` (there as the forward of a FusedGrad node),
and its ``composed`` replays the layer with the cell equations composed from ops (``step``,
written against ``xp``), from which autograd derives the second derivative. So the BPTT math
exists once (hand-written, fast) and the cell math once (composed, the differentiable
specification of what the kernels compute); nothing is differentiated by hand twice. The
forward's gates and states are a cache for the BPTT (ctx attributes), never saved values: on the
graph path they would be constants.

Arrays are (T, B, ·), time first. ``reverse=True`` runs the steps from t = T-1 down to 0 (the
backward direction of a bidirectional layer): the loop works on reversed views, so "step s" is
time T-1-s, and the output is put back in time order. A cell (``lstm_cell``...) is a sequence of
length 1; ``rnn_tanh``/``rnn_relu``/``lstm``/``gru`` stack layers and directions as PyTorch's
functions of the same names (``torch.lstm`` ...), which its ``nn.LSTM``... call.
"""
from __future__ import annotations

from minidl import backend
from minidl.autograd import FusedFunction
from minidl.kernels.recurrent import (gru_cell_backward, gru_cell_forward, lstm_cell_backward,
                                      lstm_cell_forward)
from minidl.ops import dropout as dropout_module
from minidl.ops.shape import cat, stack, transpose, unsqueeze
from minidl.tensors import Tensor


def _steps(array, reverse: bool):
    """``array`` (T, ...) in step order: a reversed view for the backward direction."""
    return array[::-1] if reverse else array


def _input_projection(x, w_ih, bias, reverse: bool):
    """x W_ihᵀ + bias for every step at once, in step order: (T, B, I) -> (T, B, G·H)."""
    T, B, I = x.shape
    xw = x.reshape(T * B, I) @ w_ih.T  # (T·B, G·H)
    if bias is not None:
        xw += bias
    return _steps(xw.reshape(T, B, xw.shape[-1]), reverse)  # (T, B, G·H)


def _bias_sum(b_ih, b_hh):
    """b_ih + b_hh, which RNN and LSTM only ever use added (None when the layer has no bias)."""
    return None if b_ih is None else b_ih + b_hh


def _states(xp, initial, shape: tuple, dtype):
    """A state's buffer (T+1, B, H) in step order, slot 0 holding the initial state (or zeros)."""
    states = xp.empty(shape, dtype=dtype)
    states[0] = 0 if initial is None else initial
    return states


def _parameter_grads(needs, reverse, x, w_ih, hs, g_xw, g_hw):
    """Gradients of x, W_ih, W_hh, b_ih, b_hh after the time loop, as big GEMMs over all steps.

    ``g_xw`` and ``g_hw`` (T, B, G·H), in step order, are the gradients of x W_ihᵀ + b_ih and of
    h W_hhᵀ + b_hh at every step; ``hs`` (T+1, B, H) holds the hidden states in step order;
    ``needs`` is the layer's ``needs_input_grad``.
    """
    T, B, G = g_xw.shape
    needs_w_ih, needs_w_hh, needs_b_ih, needs_b_hh = needs[-4:]
    g_xw2 = g_xw.reshape(T * B, G)  # (T·B, G·H)
    gx = gw_ih = gw_hh = gb_ih = gb_hh = None
    if needs[0]:
        gx = _steps((g_xw2 @ w_ih).reshape(T, B, w_ih.shape[1]), reverse)  # (T, B, I) in time order
    if needs_w_ih:
        gw_ih = g_xw2.T @ _steps(x, reverse).reshape(T * B, x.shape[-1])  # (G·H, I)
    if needs_w_hh:
        gw_hh = g_hw.reshape(T * B, G).T @ hs[:-1].reshape(T * B, hs.shape[-1])  # (G·H, H)
    if needs_b_ih:
        gb_ih = g_xw2.sum(axis=0)  # (G·H,)
    if needs_b_hh:
        gb_hh = gb_ih if g_hw is g_xw and gb_ih is not None else g_hw.sum(axis=(0, 1))  # (G·H,)
    return gx, gw_ih, gw_hh, gb_ih, gb_hh


def _sigmoid(xp, x):
    return 0.5 * xp.tanh(0.5 * x) + 0.5  # the kernels' σ, which never overflows


def _affine(x, w, b):
    """x Wᵀ (+ b): (B, I) -> (B, G·H)."""
    return x @ w.T if b is None else x @ w.T + b


class _RecurrentLayer(FusedFunction):
    """One layer in one direction over a sequence. A subclass writes ``forward`` and ``bptt`` on
    arrays (the hand-written recurrences) and ``step``, one step composed from ops."""

    @classmethod
    def backward(cls, ctx, *grad_outputs):
        w_ih, w_hh = ctx.saved_tensors
        needs = ctx.needs_input_grad
        grads = cls.bptt(*grad_outputs, w_ih, w_hh, tape=ctx.tape, needs=needs,
                         reverse=ctx.reverse, **ctx.options)
        return tuple(g if need else None for g, need in zip(grads, needs))

    @classmethod
    def composed(cls, state, xp, *inputs, reverse=False, **options):
        return _replay(xp, cls, inputs, reverse, options)


class RNNLayer(_RecurrentLayer):
    """h' = act(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh), tanh or relu;  g = gh' act', gh = g W_hh."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity="tanh", reverse=False):
        xp = ctx.xp
        ctx.save_for_backward(w_ih, w_hh)  # for the BPTT (the rest is on ctx.tape)
        x = xp.ascontiguousarray(x)  # (T, B, I): its (T·B, I) views below then copy nothing
        xw = _input_projection(x, w_ih, _bias_sum(b_ih, b_hh), reverse)  # (T, B, H)
        T, B, H = xw.shape
        hs = _states(xp, h0, (T + 1, B, H), xw.dtype)
        for s in range(T):
            h = hs[s + 1]
            xp.matmul(hs[s], w_hh.T, out=h)  # (B, H)
            h += xw[s]
            if nonlinearity == "tanh":
                xp.tanh(h, out=h)
            else:
                xp.maximum(h, 0, out=h)
        ctx.tape, ctx.options, ctx.reverse = (x, hs), dict(nonlinearity=nonlinearity), reverse
        return _steps(hs[1:], reverse), hs[-1].copy()

    @staticmethod
    def bptt(gy, gh_n, w_ih, w_hh, *, tape, needs, reverse, nonlinearity):
        """The gradients of (x, h0, W_ih, W_hh, b_ih, b_hh), on arrays (LayerGrad's forward)."""
        x, hs = tape
        xp = backend.get_array_module(hs)
        gy = _steps(gy, reverse)  # (T, B, H) in step order
        g_pre = xp.empty_like(hs[1:])  # (T, B, H)
        gh = gh_n.copy()
        for s in reversed(range(len(gy))):
            gh += gy[s]
            h = hs[s + 1]
            if nonlinearity == "tanh":
                xp.multiply(gh, 1 - h * h, out=g_pre[s])
            else:
                xp.multiply(gh, h > 0, out=g_pre[s])
            xp.matmul(g_pre[s], w_hh, out=gh)  # (B, H)
        gx, gw_ih, gw_hh, gb_ih, gb_hh = _parameter_grads(needs, reverse, x, w_ih, hs, g_pre, g_pre)
        return gx, gh, gw_ih, gw_hh, gb_ih, gb_hh

    @staticmethod
    def step(xp, x, h, w_ih, w_hh, b_ih, b_hh, *, nonlinearity):
        """One step composed from ops: (h',)."""
        pre = _affine(x, w_ih, b_ih) + _affine(h, w_hh, b_hh)  # (B, H)
        return (xp.tanh(pre) if nonlinearity == "tanh" else xp.maximum(pre, 0),)


class LSTMLayer(_RecurrentLayer):
    """(i f g o) = σ σ tanh σ (x W_ihᵀ + b_ih + h W_hhᵀ + b_hh);  c' = f c + i g, h' = o tanh(c').

    Backward per step (kernels.recurrent.lstm_cell_backward): gc* = gc' + gh' o (1 - tanh² c'),
    the gates' pre-activation gradients g_pre from gc* and gh', then gh = g_pre W_hh, gc = gc* f.
    """

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse=False):
        xp = ctx.xp
        ctx.save_for_backward(w_ih, w_hh)  # for the BPTT (the rest is on ctx.tape)
        x = xp.ascontiguousarray(x)  # (T, B, I): its (T·B, I) views below then copy nothing
        xw = _input_projection(x, w_ih, _bias_sum(b_ih, b_hh), reverse)  # (T, B, 4H)
        T, B, G = xw.shape
        hs = _states(xp, h0, (T + 1, B, G // 4), xw.dtype)
        cs = _states(xp, c0, (T + 1, B, G // 4), xw.dtype)
        gates = xp.empty_like(xw)  # (T, B, 4H): i f g o after their activations
        hw = xp.empty((B, G), dtype=xw.dtype)
        for s in range(T):
            xp.matmul(hs[s], w_hh.T, out=hw)  # (B, 4H)
            lstm_cell_forward(xw[s], hw, cs[s], hs[s + 1], cs[s + 1], gates[s])
        ctx.tape, ctx.options, ctx.reverse = (x, hs, cs, gates), {}, reverse
        return _steps(hs[1:], reverse), hs[-1].copy(), cs[-1].copy()

    @staticmethod
    def bptt(gy, gh_n, gc_n, w_ih, w_hh, *, tape, needs, reverse):
        """The gradients of (x, h0, c0, W_ih, W_hh, b_ih, b_hh), on arrays."""
        x, hs, cs, gates = tape
        xp = backend.get_array_module(hs)
        gy = _steps(gy, reverse)  # (T, B, H) in step order
        g_pre = xp.empty_like(gates)  # (T, B, 4H)
        gh = gh_n.copy()
        # two buffers in turn: an output that aliases an input would stop LLVM vectorising
        gc, gc_next = gc_n.copy(), xp.empty_like(gc_n)
        for s in reversed(range(len(gy))):
            gh += gy[s]
            lstm_cell_backward(gates[s], cs[s], cs[s + 1], gh, gc, g_pre[s], gc_next)
            gc, gc_next = gc_next, gc
            xp.matmul(g_pre[s], w_hh, out=gh)  # (B, H)
        gx, gw_ih, gw_hh, gb_ih, gb_hh = _parameter_grads(needs, reverse, x, w_ih, hs, g_pre, g_pre)
        return gx, gh, gc, gw_ih, gw_hh, gb_ih, gb_hh

    @staticmethod
    def step(xp, x, h, c, w_ih, w_hh, b_ih, b_hh):
        """One step composed from ops: (h', c')."""
        H = h.shape[-1]
        pre = _affine(x, w_ih, b_ih) + _affine(h, w_hh, b_hh)  # (B, 4H)
        i, f, o = (_sigmoid(xp, pre[:, k * H:(k + 1) * H]) for k in (0, 1, 3))  # (B, H) each
        c_new = f * c + i * xp.tanh(pre[:, 2 * H:3 * H])
        return o * xp.tanh(c_new), c_new


class GRULayer(_RecurrentLayer):
    """r z = σ(xw + hw);  n = tanh(xw_n + r hw_n);  h' = (1 - z) n + z h.

    Here xw = x W_ihᵀ + b_ih and hw = h W_hhᵀ + b_hh, gates stacked r z n (_n: the n block).

    Backward per step (kernels.recurrent.gru_cell_backward): the gradients of both
    pre-activations (they differ in the n block, r (h W_hnᵀ + b_hn)), then gh = g_hw W_hh + gh' z.
    """

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, reverse=False):
        xp = ctx.xp
        ctx.save_for_backward(w_ih, w_hh)  # for the BPTT (the rest is on ctx.tape)
        x = xp.ascontiguousarray(x)  # (T, B, I): its (T·B, I) views below then copy nothing
        xw = _input_projection(x, w_ih, b_ih, reverse)  # (T, B, 3H)
        T, B, G = xw.shape
        hs = _states(xp, h0, (T + 1, B, G // 3), xw.dtype)
        hws = xp.empty_like(xw)  # (T, B, 3H): h W_hhᵀ + b_hh, whose n block the backward needs
        gates = xp.empty_like(xw)  # (T, B, 3H): r z n
        for s in range(T):
            xp.matmul(hs[s], w_hh.T, out=hws[s])  # (B, 3H)
            if b_hh is not None:
                hws[s] += b_hh
            gru_cell_forward(xw[s], hws[s], hs[s], hs[s + 1], gates[s])
        ctx.tape, ctx.options, ctx.reverse = (x, hs, hws, gates), {}, reverse
        return _steps(hs[1:], reverse), hs[-1].copy()

    @staticmethod
    def bptt(gy, gh_n, w_ih, w_hh, *, tape, needs, reverse):
        """The gradients of (x, h0, W_ih, W_hh, b_ih, b_hh), on arrays."""
        x, hs, hws, gates = tape
        xp = backend.get_array_module(hs)
        gy = _steps(gy, reverse)  # (T, B, H) in step order
        g_xw, g_hw = xp.empty_like(gates), xp.empty_like(gates)  # (T, B, 3H) each
        gh_skip = xp.empty_like(gh_n)  # the part of gh that bypasses W_hh: gh' z
        gh = gh_n.copy()
        for s in reversed(range(len(gy))):
            gh += gy[s]
            gru_cell_backward(gates[s], hws[s], hs[s], gh, g_xw[s], g_hw[s], gh_skip)
            xp.matmul(g_hw[s], w_hh, out=gh)  # (B, H)
            gh += gh_skip
        gx, gw_ih, gw_hh, gb_ih, gb_hh = _parameter_grads(needs, reverse, x, w_ih, hs, g_xw, g_hw)
        return gx, gh, gw_ih, gw_hh, gb_ih, gb_hh

    @staticmethod
    def step(xp, x, h, w_ih, w_hh, b_ih, b_hh):
        """One step composed from ops: (h',)."""
        H = h.shape[-1]
        xw, hw = _affine(x, w_ih, b_ih), _affine(h, w_hh, b_hh)  # (B, 3H) each
        r, z = (_sigmoid(xp, xw[:, k * H:(k + 1) * H] + hw[:, k * H:(k + 1) * H]) for k in (0, 1))
        n = xp.tanh(xw[:, 2 * H:] + r * hw[:, 2 * H:])
        return ((1 - z) * n + z * h,)


def _replay(xp, layer, inputs, reverse: bool, options: dict):
    """The layer's outputs (y, h_n[, c_n]) composed from its ``step``: x (T, B, I) in time order."""
    x, *states, w_ih, w_hh, b_ih, b_hh = inputs
    T, B = x.shape[:2]
    states = [xp.zeros((B, w_hh.shape[1]), dtype=x.dtype) if s is None else s for s in states]
    ys = [None] * T
    for t in (reversed(range(T)) if reverse else range(T)):
        states = layer.step(xp, x[t], *states, w_ih, w_hh, b_ih, b_hh, **options)
        ys[t] = states[0]
    return (xp.stack(ys), *states)  # (T, B, H), then the final states (B, H)


# ----- functions: PyTorch's torch.rnn_tanh / rnn_relu / lstm / gru and their cells ---------------

def rnn_tanh(input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
    """Elman RNN with tanh over a sequence, as ``torch.rnn_tanh``: returns (output, h_n).

    ``params`` lists w_ih, w_hh (, b_ih, b_hh) per layer and direction (``RNN._flat_weights``);
    ``hx`` (num_layers·D, B, H) may be None (zeros).
    """
    output, (h_n,) = _stack_layers("rnn_tanh", RNNLayer, dict(nonlinearity="tanh"), input, [hx],
                                   params, has_biases, num_layers, dropout, train, bidirectional,
                                   batch_first)
    return output, h_n


def rnn_relu(input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
    """Elman RNN with ReLU over a sequence, as ``torch.rnn_relu``: returns (output, h_n)."""
    output, (h_n,) = _stack_layers("rnn_relu", RNNLayer, dict(nonlinearity="relu"), input, [hx],
                                   params, has_biases, num_layers, dropout, train, bidirectional,
                                   batch_first)
    return output, h_n


def lstm(input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
    """LSTM over a sequence, as ``torch.lstm``: returns (output, h_n, c_n).

    ``hx`` is (h_0, c_0), each (num_layers·D, B, H), or None (zeros; PyTorch requires them).
    """
    states = [None, None] if hx is None else list(hx)
    output, (h_n, c_n) = _stack_layers("lstm", LSTMLayer, {}, input, states, params, has_biases,
                                       num_layers, dropout, train, bidirectional, batch_first)
    return output, h_n, c_n


def gru(input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
    """GRU over a sequence, as ``torch.gru``: returns (output, h_n)."""
    output, (h_n,) = _stack_layers("gru", GRULayer, {}, input, [hx], params, has_biases,
                                   num_layers, dropout, train, bidirectional, batch_first)
    return output, h_n


def rnn_tanh_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None):
    """One step h' = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh) (torch.rnn_tanh_cell): (B, I), (B, H)."""
    return _cell("rnn_tanh_cell", RNNLayer, dict(nonlinearity="tanh"), input, [hx],
                 (w_ih, w_hh, b_ih, b_hh))[0]


def rnn_relu_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None):
    """One step h' = relu(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh) (torch.rnn_relu_cell)."""
    return _cell("rnn_relu_cell", RNNLayer, dict(nonlinearity="relu"), input, [hx],
                 (w_ih, w_hh, b_ih, b_hh))[0]


def lstm_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None):
    """One LSTM step (torch.lstm_cell): hx = (h, c), each (B, H) -> (h', c')."""
    states = [None, None] if hx is None else list(hx)
    h, c = _cell("lstm_cell", LSTMLayer, {}, input, states, (w_ih, w_hh, b_ih, b_hh))
    return h, c


def gru_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None):
    """One GRU step (torch.gru_cell): h' = (1 - z) n + z h, see ``GRULayer``."""
    return _cell("gru_cell", GRULayer, {}, input, [hx], (w_ih, w_hh, b_ih, b_hh))[0]


def _stack_layers(op, layer, options, input, states, params, has_biases, num_layers, dropout,
                  train, bidirectional, batch_first):
    """Run ``layer`` (a Function above) over layers and directions; returns (output, [finals]).

    Layer l > 0 reads the concatenated outputs of both directions of layer l - 1, through dropout
    in training. Each entry of finals stacks one state over layers·directions: (L·D, B, H).
    """
    directions = 2 if bidirectional else 1
    per_layer = 4 if has_biases else 2
    if len(params) != num_layers * directions * per_layer:
        raise ValueError(f"{op}: expected {num_layers * directions * per_layer} weights for "
                         f"{num_layers} layer(s), {directions} direction(s) and has_biases="
                         f"{has_biases}, got {len(params)}")
    _check_input(op, input, params[0], 3, "(B, T, {})" if batch_first else "(T, B, {})")
    x = transpose(input, 0, 1) if batch_first else input  # (T, B, I)
    if x.shape[0] == 0:
        raise ValueError(f"{op}: expected a sequence length larger than 0, got input of shape "
                         f"{tuple(input.shape)}")
    expected = (num_layers * directions, x.shape[1], params[1].shape[1])  # (L·D, B, H)
    _check_states(op, states, expected, input.dtype)
    finals = []
    for index in range(num_layers):
        outputs = []
        for direction in range(directions):
            k = index * directions + direction
            w_ih, w_hh, *biases = params[k * per_layer:(k + 1) * per_layer]
            initial = [None if state is None else state[k] for state in states]  # (B, H) each
            output, *last = layer.apply(x, *initial, w_ih, w_hh, *(biases or (None, None)),
                                        reverse=direction == 1, **options)
            outputs.append(output)
            finals.append(last)
        x = cat(outputs, dim=2) if bidirectional else outputs[0]  # (T, B, D·H)
        if dropout and train and index < num_layers - 1:
            x = dropout_module.dropout(x, dropout, training=True)
    output = transpose(x, 0, 1) if batch_first else x
    return output, [stack(list(kind)) for kind in zip(*finals)]


def _cell(op, layer, options, input, states, weights):
    """One step: the layer Function run on a sequence of length 1; returns its final states."""
    _check_input(op, input, weights[0], 2, "(B, {})")
    _check_states(op, states, (input.shape[0], weights[1].shape[1]), input.dtype)
    _, *finals = layer.apply(unsqueeze(input, 0), *states, *weights, **options)  # (1, B, I) in
    return finals


def _check_input(op, input, w_ih, ndim: int, pattern: str) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected a Tensor input, got {type(input).__name__}")
    if input.ndim != ndim or input.shape[-1] != w_ih.shape[1]:
        raise ValueError(f"{op}: expected input of shape {pattern.format(w_ih.shape[1])}, got "
                         f"{tuple(input.shape)}")
    if input.dtype != w_ih.dtype:
        raise TypeError(f"{op}: input dtype {input.dtype} differs from weight dtype {w_ih.dtype}")


def _check_states(op, states, shape: tuple, dtype) -> None:
    for name, state in zip(("h", "c"), states):
        if state is None:
            continue
        if tuple(state.shape) != shape:
            raise ValueError(f"{op}: expected {name} of shape {shape}, got {tuple(state.shape)}")
        if state.dtype != dtype:
            raise TypeError(f"{op}: {name} dtype {state.dtype} differs from input dtype {dtype}")
