"""RNN, LSTM, GRU and their cells: ops and layers, gradcheck (float64) and PyTorch parity (float32);
second order: gradgradcheck and Hessian-vector products against PyTorch (float64)."""
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
from minidl.nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from minidl.ops import recurrent
from helpers import (assert_close, assert_hvp_matches_torch, check_module_hvp_parity,
                     check_module_parity, gradcheck_module, gradgradcheck_module)

LAYERS = {"RNN_TANH": (RNN, torch.nn.RNN, dict(nonlinearity="tanh")),
          "RNN_RELU": (RNN, torch.nn.RNN, dict(nonlinearity="relu")),
          "LSTM": (LSTM, torch.nn.LSTM, {}), "GRU": (GRU, torch.nn.GRU, {})}
CELLS = {"RNN_TANH": (RNNCell, torch.nn.RNNCell, dict(nonlinearity="tanh")),
         "RNN_RELU": (RNNCell, torch.nn.RNNCell, dict(nonlinearity="relu")),
         "LSTM": (LSTMCell, torch.nn.LSTMCell, {}), "GRU": (GRUCell, torch.nn.GRUCell, {})}


def call_with_state(mode, count):
    """module(x) or module(x, h0) or module(x, (h0, c0)), as ``call`` for the helpers."""
    if count == 0:
        return lambda m, x: m(x)
    if mode == "LSTM":
        return lambda m, x, h, c: m(x, (h, c))
    return lambda m, x, h: m(x, h)


@pytest.mark.parametrize("mode", sorted(LAYERS))
@given(num_layers=st.integers(1, 2), bias=st.booleans(), batch_first=st.booleans(),
       bidirectional=st.booleans(), initial=st.booleans(), length=st.integers(1, 4),
       batch=st.sampled_from([None, 1, 3]), input_size=st.integers(1, 2), seed=st.integers(0, 2**16))
def test_layer_gradcheck_and_parity(mode, num_layers, bias, batch_first, bidirectional, initial,
                                    length, batch, input_size, seed):
    ours, theirs, options = LAYERS[mode]
    rng = np.random.default_rng(seed)
    D, hidden = 2 if bidirectional else 1, 2
    args = dict(num_layers=num_layers, bias=bias, batch_first=batch_first, bidirectional=bidirectional, **options)
    if batch is None:  # unbatched input (L, H_in), states (D·num_layers, H)
        shape, state_shape = (length, input_size), (D * num_layers, hidden)
    else:
        shape = (batch, length, input_size) if batch_first else (length, batch, input_size)
        state_shape = (D * num_layers, batch, hidden)
    count = (2 if mode == "LSTM" else 1) if initial else 0
    inputs = [rng.standard_normal(shape)] + [rng.standard_normal(state_shape) for _ in range(count)]
    call = call_with_state(mode, count)
    assert gradcheck_module(ours(input_size, hidden, **args), inputs, call=call)
    assert gradgradcheck_module(ours(input_size, hidden, **args), inputs, call=call)
    check_module_hvp_parity(ours(input_size, hidden, **args), theirs(input_size, hidden, **args),
                            inputs, call=call)
    check_module_parity(ours(input_size, 3, **args), theirs(input_size, 3, **args),
                        [inputs[0]] + [rng.standard_normal(state_shape[:-1] + (3,)) for _ in range(count)],
                        call=call)


@pytest.mark.parametrize("mode", sorted(CELLS))
@given(bias=st.booleans(), initial=st.booleans(), batch=st.sampled_from([None, 1, 3]),
       input_size=st.integers(1, 4), hidden=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_cell_gradcheck_and_parity(mode, bias, initial, batch, input_size, hidden, seed):
    ours, theirs, options = CELLS[mode]
    rng = np.random.default_rng(seed)
    lead = () if batch is None else (batch,)
    count = (2 if mode == "LSTM" else 1) if initial else 0
    inputs = [rng.standard_normal(lead + (input_size,))] + [rng.standard_normal(lead + (hidden,))
                                                            for _ in range(count)]
    call = call_with_state(mode, count)
    assert gradcheck_module(ours(input_size, hidden, bias=bias, **options), inputs, call=call)
    assert gradgradcheck_module(ours(input_size, hidden, bias=bias, **options), inputs, call=call)
    check_module_hvp_parity(ours(input_size, hidden, bias=bias, **options),
                            theirs(input_size, hidden, bias=bias, **options), inputs, call=call)
    check_module_parity(ours(input_size, hidden, bias=bias, **options),
                        theirs(input_size, hidden, bias=bias, **options), inputs, call=call)


# ----- the ops, against torch's functions of the same names, with compiled and reference kernels --

def op_arguments(mode, rng, dtype, length, batch, input_size, hidden, num_layers, bidirectional):
    """Input, states and flat weights for a sequence op, as NumPy arrays."""
    gates = {"LSTM": 4, "GRU": 3}.get(mode, 1) * hidden
    D = 2 if bidirectional else 1
    weights = []
    for layer in range(num_layers):
        for _ in range(D):
            width = input_size if layer == 0 else D * hidden
            weights += [rng.uniform(-1, 1, (gates, width)), rng.uniform(-1, 1, (gates, hidden)),
                        rng.uniform(-1, 1, gates), rng.uniform(-1, 1, gates)]
    states = [rng.standard_normal((D * num_layers, batch, hidden)) for _ in range(2 if mode == "LSTM" else 1)]
    return [a.astype(dtype) for a in [rng.standard_normal((length, batch, input_size))] + states + weights]


def run_op(library, mode, arrays, num_layers, bidirectional, batch_first=False):
    """library.lstm / gru / rnn_tanh / rnn_relu on the arrays (torch's _VF signature)."""
    count = 2 if mode == "LSTM" else 1
    x, states, weights = arrays[0], arrays[1:1 + count], arrays[1 + count:]
    hx = tuple(states) if mode == "LSTM" else states[0]
    function = getattr(library, mode.lower())
    return function(x, hx, list(weights), True, num_layers, 0.0, True, bidirectional, batch_first)


@pytest.mark.parametrize("mode", sorted(LAYERS))
@settings(max_examples=4)  # the layer tests above cover more configurations, in auto mode
@given(num_layers=st.integers(1, 2), bidirectional=st.booleans(), batch_first=st.booleans(),
       length=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_sequence_ops(kernel_mode, mode, num_layers, bidirectional, batch_first, length, seed):
    arrays = op_arguments(mode, np.random.default_rng(seed), np.float64, length, 2, 1, 2, num_layers,
                          bidirectional)
    if batch_first:
        arrays[0] = np.ascontiguousarray(arrays[0].swapaxes(0, 1))  # (B, T, I)

    def run(library, t):
        return run_op(library, mode, t, num_layers, bidirectional, batch_first)

    tensors = [minidl.tensor(a, requires_grad=True) for a in arrays]
    assert minidl.gradcheck(lambda *t: run(recurrent, t), tensors)
    assert minidl.autograd.gradgradcheck(lambda *t: run(recurrent, t), tensors)
    assert_hvp_matches_torch(lambda m, *t: run(recurrent if m is minidl else torch, t), arrays,
                             mode.lower())
    ours = [minidl.tensor(a.astype(np.float32), requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a.astype(np.float32), requires_grad=True) for a in arrays]
    compare_outputs_and_grads(run(recurrent, ours), run(torch, theirs), ours, theirs)


@pytest.mark.parametrize("name", ["rnn_tanh_cell", "rnn_relu_cell", "lstm_cell", "gru_cell"])
@given(bias=st.booleans(), seed=st.integers(0, 2**16))
def test_cell_ops(kernel_mode, name, bias, seed):
    rng = np.random.default_rng(seed)
    gates = {"lstm_cell": 4, "gru_cell": 3}.get(name, 1) * 3
    count = 2 if name == "lstm_cell" else 1
    arrays = [rng.standard_normal((2, 4))] + [rng.standard_normal((2, 3)) for _ in range(count)]
    arrays += [rng.uniform(-1, 1, (gates, 4)), rng.uniform(-1, 1, (gates, 3))]
    arrays += [rng.uniform(-1, 1, gates) for _ in range(2 if bias else 0)]

    def run(library, t):
        hx = tuple(t[1:3]) if count == 2 else t[1]
        return getattr(library, name)(t[0], hx, *t[1 + count:])

    tensors = [minidl.tensor(a, requires_grad=True) for a in arrays]
    assert minidl.gradcheck(lambda *t: run(recurrent, t), tensors)
    assert minidl.autograd.gradgradcheck(lambda *t: run(recurrent, t), tensors)
    assert_hvp_matches_torch(lambda m, *t: run(recurrent if m is minidl else torch, t), arrays, name)
    ours = [minidl.tensor(a.astype(np.float32), requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a.astype(np.float32), requires_grad=True) for a in arrays]
    compare_outputs_and_grads(run(recurrent, ours), run(torch, theirs), ours, theirs)


def compare_outputs_and_grads(our_out, their_out, ours, theirs):
    our_out = our_out if isinstance(our_out, tuple) else (our_out,)
    their_out = their_out if isinstance(their_out, tuple) else (their_out,)
    rng = np.random.default_rng(0)
    our_loss = their_loss = 0
    for index, (a, b) in enumerate(zip(our_out, their_out, strict=True)):
        assert_close(a, b, what=f"output {index}")
        weight = rng.standard_normal(a.shape).astype(np.float32)
        our_loss = our_loss + (a * minidl.tensor(weight)).sum()
        their_loss = their_loss + (b * torch.tensor(weight)).sum()
    our_loss.backward()
    their_loss.backward()
    for index, (a, b) in enumerate(zip(ours, theirs)):
        assert_close(a.grad, b.grad, what=f"grad of argument {index}")


# ----- dropout, initialisation, repr, errors ----------------------------------------------------

def test_dropout_between_layers_in_training_only():
    minidl.manual_seed(0)
    torch.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((4, 3, 2))
    ours, theirs = LSTM(2, 3, num_layers=2, dropout=0.5), torch.nn.LSTM(2, 3, num_layers=2, dropout=0.5)
    check_module_parity(ours.eval(), theirs.eval(), [x])  # eval: no dropout, as torch
    ours.train()
    evaluated = ours.eval()(minidl.tensor(x.astype(np.float32)))[0].numpy()
    trained = ours.train()(minidl.tensor(x.astype(np.float32)))[0].numpy()
    assert not np.allclose(trained, evaluated)
    # dropout=1 zeroes layer 0's output, so layer 1 runs on zeros: its own LSTM on a zero input
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours, single = LSTM(2, 3, num_layers=2, dropout=1.0), LSTM(3, 3)
    single.load_state_dict({k.replace("l1", "l0"): v for k, v in ours.state_dict().items() if "l1" in k})
    expected = single(minidl.zeros(4, 3, 3))[0].numpy()
    np.testing.assert_allclose(ours(minidl.tensor(x.astype(np.float32)))[0].numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("mode", sorted(LAYERS))
def test_parameters_and_init_like_torch(mode):
    ours, theirs, options = LAYERS[mode]
    args = dict(num_layers=2, bidirectional=True, **options)
    our_state, their_state = ours(5, 16, **args).state_dict(), theirs(5, 16, **args).state_dict()
    assert list(our_state) == list(their_state)
    for name, value in their_state.items():
        assert tuple(our_state[name].shape) == tuple(value.shape), name
    values = np.concatenate([v.numpy().reshape(-1) for v in our_state.values()])  # U(-1/4, 1/4)
    assert 0.24 < np.abs(values).max() <= 0.25
    np.testing.assert_allclose(values.std(), 0.25 / np.sqrt(3), rtol=0.05)
    assert list(ours(5, 16, bias=False, **options).state_dict()) == list(theirs(5, 16, bias=False, **options).state_dict())


@pytest.mark.parametrize("args, kwargs", [((64, 128), dict(batch_first=True)), ((3, 4, 2), dict(dropout=0.5)),
                                          ((3, 4), dict(bias=False, bidirectional=True))])
def test_repr_like_torch(args, kwargs):
    for ours, theirs, options in LAYERS.values():
        assert repr(ours(*args, **kwargs, **options)) == repr(theirs(*args, **kwargs, **options))
    for ours, theirs, options in CELLS.values():
        assert repr(ours(3, 4, bias=False, **options)) == repr(theirs(3, 4, bias=False, **options))


def test_clear_errors():
    lstm = LSTM(4, 3, num_layers=2)
    with pytest.raises(ValueError, match=r"LSTM\(4, 3, num_layers=2\) expected input of shape \(L, N, 4\) or \(L, 4\), got \(5, 2, 3\)"):
        lstm(minidl.randn(5, 2, 4)[..., :3])
    with pytest.raises(ValueError, match=r"LSTM\(4, 3, num_layers=2\) \(c_0\) expected input of shape \(2, 2, 3\), got \(1, 2, 3\)"):
        lstm(minidl.randn(5, 2, 4), (minidl.zeros(2, 2, 3), minidl.zeros(1, 2, 3)))
    with pytest.raises(ValueError, match=r"GRU\(4, 3, batch_first=True\) \(h_0\) expected input of shape \(1, 5, 3\)"):
        GRU(4, 3, batch_first=True)(minidl.randn(5, 2, 4), minidl.zeros(1, 2, 3))
    with pytest.raises(TypeError, match=r"RNN\(4, 3\) expected input of dtype float32 on cpu.*got dtype float64"):
        RNN(4, 3)(minidl.randn(5, 2, 4, dtype=minidl.float64))
    with pytest.raises(ValueError, match=r"GRUCell\(4, 3\) \(hx\) expected input of shape \(2, 3\), got \(2, 4\)"):
        GRUCell(4, 3)(minidl.randn(2, 4), minidl.zeros(2, 4))
    with pytest.raises(ValueError, match="lstm: expected a sequence length larger than 0"):
        lstm(minidl.randn(0, 2, 4))
    with pytest.raises(NotImplementedError, match="proj_size"):
        LSTM(4, 3, proj_size=2)
    with pytest.raises(ValueError, match="unknown nonlinearity 'gelu'"):
        RNN(4, 3, nonlinearity="gelu")
    with pytest.raises(ValueError, match="dropout should be a number in range"):
        GRU(4, 3, num_layers=2, dropout=1.5)
    with pytest.raises(ValueError, match="hidden_size must be greater than zero"):
        LSTMCell(4, 0)
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        GRU(4, 3, dropout=0.2)
