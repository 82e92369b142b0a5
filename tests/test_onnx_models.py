"""minidl.onnx.export of whole models: the examples' models, attention and the Transformer layers,
and the recurrent layers (ONNX's LSTM/GRU/RNN ops with PyTorch's gate order mapped).

Each exports at one batch size with a dynamic batch axis, passes onnx's full check, and matches
minidl (float32, rtol 1e-4) at that batch size and at another one (test_onnx.check_roundtrip).
"""
import numpy as np
import pytest

import minidl
import minidl.onnx
from minidl import nn
from test_onnx import Lambda, check_roundtrip, import_example, normals, randn, \
    with_running_statistics


def ids(vocab: int, length: int):
    """make_inputs for (batch, length) integer ids below ``vocab``."""
    return lambda n: [minidl.tensor(np.random.default_rng(n).integers(0, vocab, (n, length)))]


# ----- the examples' models --------------------------------------------------------------------

def test_mlp_of_train_digits(tmp_path):
    minidl.manual_seed(0)
    check_roundtrip(import_example("train_digits").build_mlp(), normals(1, 8, 8), tmp_path)


def test_cnn_with_batch_norm_of_video_cnn3d(tmp_path):
    """Conv3d, BatchNorm3d (running statistics), MaxPool3d, AdaptiveAvgPool3d, Flatten, Linear."""
    minidl.manual_seed(0)
    model = with_running_statistics(import_example("video_cnn3d").build_cnn3d())
    check_roundtrip(model, normals(1, 2, 16, 16), tmp_path, atol=1e-4)


def test_cnn_with_batch_norm_of_audio_cnn(tmp_path):
    """Conv1d, BatchNorm1d, MaxPool1d, AdaptiveAvgPool1d over time."""
    minidl.manual_seed(0)
    model = with_running_statistics(import_example("audio_cnn").build_model(12))
    check_roundtrip(model, normals(12, 20), tmp_path, atol=1e-4)


def test_conv_autoencoder_with_batch_norm_and_transposed_convolutions(tmp_path):
    minidl.manual_seed(0)
    model = with_running_statistics(import_example("conv_autoencoder").ConvAutoencoder(8))
    check_roundtrip(model, normals(1, 28, 28), tmp_path, atol=1e-4)


def test_conv1d_text_model_of_text_cnn(tmp_path):
    """Embedding (ids are a graph input), Conv1d over words, MaxPool1d over time, cat."""
    example = import_example("text_cnn")
    minidl.manual_seed(0)
    check_roundtrip(example.TextCNN(50, embed_dim=8, filters=4), ids(50, example.LENGTH), tmp_path)


def test_transformer_encoder_of_transformer_mlm(tmp_path):
    """Token and position embeddings, pre-norm encoder layers with GELU, LayerNorm, head."""
    minidl.manual_seed(0)
    model = import_example("transformer_mlm").MaskedLM(20, 12, d_model=16, nhead=2, num_layers=2)
    check_roundtrip(model, ids(21, 12), tmp_path, atol=1e-4)


def test_causal_transformer_of_tiny_gpt(tmp_path):
    """A causal float mask sliced from a buffer, as tiny_gpt's blocks use it."""
    minidl.manual_seed(0)
    model = import_example("tiny_gpt").TinyGPT(20, 10, d_model=16, nhead=2, num_layers=1)
    check_roundtrip(model, ids(20, 10), tmp_path, atol=1e-4)


def test_lstm_classifier_of_rnn_classifier(tmp_path):
    minidl.manual_seed(0)
    model = import_example("rnn_classifier").RowReader("lstm", 16)
    check_roundtrip(model, normals(1, 28, 28), tmp_path, atol=1e-4)


# ----- attention and the Transformer layers ----------------------------------------------------

def _causal(length: int) -> minidl.Tensor:
    return nn.Transformer.generate_square_subsequent_mask(length)


ATTENTION = {
    "mha_self_batch_first": (
        lambda: _self_attention(nn.MultiheadAttention(8, 2, batch_first=True)),
        normals(5, 8), [0]),
    "mha_sequence_first_causal": (
        lambda: _self_attention(nn.MultiheadAttention(8, 4), _causal(5)),
        lambda n: [randn(5, n, 8, seed=n)], [1]),
    "mha_memory_kdim_vdim_weights": (
        lambda: _cross_attention(nn.MultiheadAttention(8, 2, kdim=6, vdim=4, batch_first=True)),
        lambda n: [randn(n, 3, 8, seed=n), randn(n, 5, 6, seed=n + 1), randn(n, 5, 4, seed=n + 2)],
        [0, 0, 0]),
    "mha_float_padding_mask_input": (
        lambda: _padded_attention(nn.MultiheadAttention(8, 2, batch_first=True)),
        lambda n: [randn(n, 4, 8, seed=n), _padding(n, 4)], [0, 0]),
    "sdpa_bool_causal": (
        lambda: Lambda(lambda q, k, v: nn.functional.scaled_dot_product_attention(
            q, k, v, is_causal=True)),
        lambda n: [randn(n, 2, 4, 3, seed=n), randn(n, 2, 4, 3, seed=n + 1),
                   randn(n, 2, 4, 5, seed=n + 2)], [0, 0, 0]),
    "encoder_post_norm": (
        lambda: nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1), 2),
        lambda n: [randn(6, n, 8, seed=n)], [1]),
    "decoder_pre_norm_gelu": (
        lambda: _decode(nn.TransformerDecoderLayer(8, 2, 16, activation="gelu", batch_first=True,
                                                   norm_first=True)),
        lambda n: [randn(n, 4, 8, seed=n), randn(n, 6, 8, seed=n + 1)], [0, 0]),
    "decoder_stack_with_norm": (
        lambda: nn.TransformerDecoder(nn.TransformerDecoderLayer(8, 2, 16, batch_first=True), 2,
                                      norm=nn.LayerNorm(8)),
        lambda n: [randn(n, 3, 8, seed=n), randn(n, 4, 8, seed=n + 1)], [0, 0]),
    "transformer": (
        lambda: nn.Transformer(8, 2, 1, 1, 16, dropout=0.0, batch_first=True),
        lambda n: [randn(n, 5, 8, seed=n), randn(n, 3, 8, seed=n + 1)], [0, 0]),
}


def _self_attention(attention, mask=None):
    return Lambda(lambda x: attention(x, x, x, attn_mask=mask, need_weights=False)[0], attention)


def _cross_attention(attention):
    return Lambda(lambda q, k, v: attention(q, k, v, average_attn_weights=False), attention)


def _padded_attention(attention):
    return Lambda(lambda x, padding: attention(x, x, x, key_padding_mask=padding), attention)


def _padding(n: int, length: int) -> minidl.Tensor:
    """A float key padding mask (N, S): -inf on the last key of every other sequence."""
    mask = np.zeros((n, length), dtype=np.float32)
    mask[::2, -1] = -np.inf
    return minidl.tensor(mask)


def _decode(layer):
    return Lambda(lambda tgt, memory: layer(tgt, memory, tgt_mask=_causal(tgt.shape[1]),
                                            tgt_is_causal=True), layer)


@pytest.mark.parametrize("case", sorted(ATTENTION))
def test_attention_runs_in_onnx_runtime_at_two_batch_sizes(case, tmp_path):
    build, make_inputs, axes = ATTENTION[case]
    minidl.manual_seed(0)
    check_roundtrip(build(), make_inputs, tmp_path, batch_axes=axes, atol=1e-4)


@pytest.mark.parametrize("case", ["sdpa_bool_causal", "mha_self_batch_first", "encoder_post_norm"])
def test_the_blocked_attention_kernel_exports_as_attention(case, tmp_path, monkeypatch):
    """Long sequences take the blocked kernel (BlockedAttention), forced here on short ones; its
    causal mask is built in the graph from the sequence lengths."""
    monkeypatch.setattr(minidl.ops.attention, "BLOCKED_MIN_KEYS", {"causal": 1, "full": 1})
    build, make_inputs, axes = ATTENTION[case]
    minidl.manual_seed(0)
    model = build()
    with minidl.no_grad():
        traced = []
        with minidl.autograd.tracing(lambda fn, *_: traced.append(fn.__name__)):
            model.eval()(*make_inputs(2))
    assert "BlockedAttention" in traced
    check_roundtrip(model, make_inputs, tmp_path, batch_axes=axes, atol=1e-4)


def test_a_bool_padding_mask_input_is_an_error_not_a_frozen_constant(tmp_path):
    """MHA turns a bool key_padding_mask into an array outside the traced ops."""
    attention = nn.MultiheadAttention(8, 2, batch_first=True)
    mask = minidl.tensor(np.array([[False, False, True]]))
    with pytest.raises(minidl.onnx.ExportError, match="computed outside minidl's traced ops"):
        minidl.onnx.export(_padded_attention(attention), (randn(1, 3, 8), mask),
                           tmp_path / "m.onnx")


# ----- recurrent layers --------------------------------------------------------------------------

RECURRENT = {
    "lstm": (lambda: nn.LSTM(4, 6), lambda n: [randn(5, n, 4, seed=n)], [1]),
    "lstm_two_layers_bidirectional_batch_first": (
        lambda: nn.LSTM(4, 5, num_layers=2, bidirectional=True, batch_first=True),
        normals(6, 4), [0]),
    "lstm_initial_states": (
        lambda: _with_states(nn.LSTM(3, 4, num_layers=2), lstm=True),
        lambda n: [randn(5, n, 3, seed=n), randn(2, n, 4, seed=n + 1), randn(2, n, 4, seed=n + 2)],
        [1, 1, 1]),
    "gru": (lambda: nn.GRU(4, 6, batch_first=True), normals(5, 4), [0]),
    "gru_bidirectional_initial_state": (
        lambda: _with_states(nn.GRU(3, 4, bidirectional=True)),
        lambda n: [randn(5, n, 3, seed=n), randn(2, n, 4, seed=n + 1)], [1, 1]),
    "gru_no_bias": (lambda: nn.GRU(3, 4, bias=False), lambda n: [randn(4, n, 3, seed=n)], [1]),
    "rnn_tanh": (lambda: nn.RNN(4, 5, num_layers=2), lambda n: [randn(5, n, 4, seed=n)], [1]),
    "rnn_relu_bidirectional": (lambda: nn.RNN(4, 5, nonlinearity="relu", bidirectional=True,
                                              batch_first=True), normals(3, 4), [0]),
    "cells": (lambda: _cells(nn.LSTMCell(3, 4), nn.GRUCell(4, 4), nn.RNNCell(4, 4)),
              normals(3), [0]),
    "unbatched_lstm": (lambda: nn.LSTM(3, 4), lambda n: [randn(n, 3, seed=n)], [0]),
}


def _with_states(layer, lstm: bool = False):
    if lstm:
        return Lambda(lambda x, h, c: layer(x, (h, c)), layer)
    return Lambda(lambda x, h: layer(x, h), layer)


def _cells(lstm_cell, gru_cell, rnn_cell):
    def forward(x):
        h, c = lstm_cell(x)
        return rnn_cell(gru_cell(h), c), c
    return Lambda(forward, lstm_cell, gru_cell, rnn_cell)


@pytest.mark.parametrize("case", sorted(RECURRENT))
def test_recurrent_layer_runs_in_onnx_runtime_at_two_batch_sizes(case, tmp_path):
    """Outputs and final states; the sequence axis of "unbatched_lstm" is the dynamic one."""
    build, make_inputs, axes = RECURRENT[case]
    minidl.manual_seed(0)
    proto = check_roundtrip(build(), make_inputs, tmp_path, batch_axes=axes, atol=1e-5)
    kinds = {node.op_type for node in proto.graph.node}
    assert kinds & {"LSTM", "GRU", "RNN"}


def test_gate_order_is_mapped_not_only_consistent(tmp_path):
    """A weight that moves one gate block changes ONNX's result as it changes minidl's: with
    the input gate's rows of an LSTM zeroed, the exported model still agrees."""
    minidl.manual_seed(0)
    layer = nn.LSTM(3, 4)
    layer.weight_ih_l0._data[:4] = 0  # i block (PyTorch's first)
    layer.bias_hh_l0._data[8:12] = 3  # g block (PyTorch's third)
    check_roundtrip(layer, lambda n: [randn(4, n, 3, seed=n)], tmp_path, batch_axes=[1])
