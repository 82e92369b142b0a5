"""Transformer encoder/decoder layers and stacks: gradcheck, gradgradcheck, PyTorch parity of
outputs, gradients and Hessian-vector products (hvp, torch under its MATH attention backend, the
one with a double backward), state_dict round trips."""
import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from helpers import (assert_close, check_module_hvp_parity, check_module_parity, gradcheck_module,
                     gradgradcheck_module)
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl import ops
from minidl.nn import transformer
from minidl.nn.normalization import LayerNorm
from minidl.nn.transformer import (
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
    generate_square_subsequent_mask,
)

ACTIVATIONS = {"relu": ("relu", "relu"), "gelu": ("gelu", "gelu"),
               "callable": (ops.tanh, torch.tanh)}


def sequence(rng, batch_first, batched, T, N=2, E=4):
    lead = ((N, T) if batch_first else (T, N)) if batched else (T,)
    return rng.standard_normal(lead + (E,))


def masks_for(rng, kind, padding, T, S, batched, heads=2, N=2):
    """(attn_mask, key_padding_mask), bool True = ignore (MHA's convention); key 0 always stays."""
    attn = None
    if kind == "causal":
        attn = np.triu(np.ones((T, S), dtype=bool), 1)
    elif kind != "none":
        shape = (T, S) if kind.startswith("2d") else ((N if batched else 1) * heads, T, S)
        attn = rng.random(shape) < 0.3
        attn[..., 0] = False
        if kind.endswith("float"):
            attn = np.where(attn, -np.inf, rng.standard_normal(shape))
    pad = None
    if padding:
        pad = rng.random((N, S) if batched else (S,)) < 0.3
        pad[..., 0] = False
    return attn, pad


MASKS = ["none", "causal", "2d-bool", "2d-float", "3d-bool"]


@given(batch_first=st.booleans(), batched=st.booleans(), norm_first=st.booleans(),
       activation=st.sampled_from(sorted(ACTIVATIONS)), bias=st.booleans(),
       mask=st.sampled_from(MASKS), padding=st.booleans(), seed=st.integers(0, 2**16))
def test_encoder_layer_parity(batch_first, batched, norm_first, activation, bias, mask, padding,
                              seed):
    rng = np.random.default_rng(seed)
    src = sequence(rng, batch_first, batched, 3)
    attn, pad = masks_for(rng, mask, padding, 3, 3, batched)
    names = [n for n, m in (("src_mask", attn), ("src_key_padding_mask", pad)) if m is not None]
    inputs = [src] + [m for m in (attn, pad) if m is not None]

    def call(module, src, *masks):
        return module(src, is_causal=mask == "causal", **dict(zip(names, masks)))

    def make(nn, which):
        return nn.TransformerEncoderLayer(4, 2, dim_feedforward=6, dropout=0.0,
                                          activation=ACTIVATIONS[activation][which],
                                          batch_first=batch_first, norm_first=norm_first, bias=bias)

    check_module_parity(make(transformer, 0), make(torch.nn, 1), inputs, call=call)


@pytest.mark.parametrize("norm_first, activation", [(False, "relu"), (True, "gelu")])
def test_encoder_layer_gradcheck(norm_first, activation):
    """float64 finite differences for the input, a float mask and every parameter (tiny sizes)."""
    rng = np.random.default_rng(0)
    src, mask = rng.standard_normal((3, 1, 4)), rng.standard_normal((3, 3))
    pad = np.array([[False, False, True]])
    layer = TransformerEncoderLayer(4, 2, dim_feedforward=3, dropout=0.0, activation=activation,
                                    norm_first=norm_first)
    call = lambda m, x, mask, pad: m(x, src_mask=mask, src_key_padding_mask=pad)  # noqa: E731
    assert gradcheck_module(layer, [src, mask, pad], call=call)


@given(batch_first=st.booleans(), batched=st.booleans(), norm_first=st.booleans(),
       tgt_mask=st.sampled_from(["none", "causal", "2d-float"]), memory_mask=st.booleans(),
       padding=st.booleans(), seed=st.integers(0, 2**16))
def test_decoder_layer_parity(batch_first, batched, norm_first, tgt_mask, memory_mask, padding,
                              seed):
    rng = np.random.default_rng(seed)
    tgt, memory = sequence(rng, batch_first, batched, 3), sequence(rng, batch_first, batched, 4)
    self_mask, tgt_pad = masks_for(rng, tgt_mask, padding, 3, 3, batched)
    cross_kind = "2d-bool" if memory_mask else "none"
    cross_mask, memory_pad = masks_for(rng, cross_kind, padding, 3, 4, batched)
    given_masks = {"tgt_mask": self_mask, "memory_mask": cross_mask,
                   "tgt_key_padding_mask": tgt_pad, "memory_key_padding_mask": memory_pad}
    names = [n for n, m in given_masks.items() if m is not None]
    inputs = [tgt, memory] + [given_masks[n] for n in names]

    def call(module, tgt, memory, *masks):
        return module(tgt, memory, tgt_is_causal=tgt_mask == "causal", **dict(zip(names, masks)))

    def make(nn):
        return nn.TransformerDecoderLayer(4, 2, dim_feedforward=5, dropout=0.0,
                                          batch_first=batch_first, norm_first=norm_first)

    check_module_parity(make(transformer), make(torch.nn), inputs, call=call)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_gradcheck(norm_first):
    """float64 finite differences for target, memory, a float mask and every parameter."""
    rng = np.random.default_rng(1)
    tgt, memory = rng.standard_normal((2, 1, 3)), rng.standard_normal((3, 1, 3))
    mask = rng.standard_normal((2, 2))
    pad = np.array([[False, True, False]])
    layer = TransformerDecoderLayer(3, 1, dim_feedforward=2, dropout=0.0, norm_first=norm_first)
    def call(m, t, mem, mask, pad):
        return m(t, mem, tgt_mask=mask, memory_key_padding_mask=pad)

    assert gradcheck_module(layer, [tgt, memory, mask, pad], call=call)


def torch_encoder(norm_first=False):
    layer = torch.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0,
                                             batch_first=True, norm_first=norm_first)
    return torch.nn.TransformerEncoder(layer, 2, norm=torch.nn.LayerNorm(8),
                                       enable_nested_tensor=False)


def our_encoder(norm_first=False):
    layer = TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True,
                                    norm_first=norm_first)
    return TransformerEncoder(layer, 2, norm=LayerNorm(8))


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_stack_parity_and_state_dict_round_trips(norm_first):
    rng = np.random.default_rng(0)
    src = rng.standard_normal((2, 5, 8)).astype(np.float32)
    pad = np.zeros((2, 5), dtype=bool)
    pad[1, 3:] = True

    causal = np.where(np.triu(np.ones((5, 5), dtype=bool), 1), -np.inf, 0.0)

    def call(module, src, mask, pad):
        return module(src, mask=mask, src_key_padding_mask=pad)

    check_module_parity(our_encoder(norm_first), torch_encoder(norm_first), [src, causal, pad],
                        call=call)
    # ours -> torch: fresh minidl weights loaded into a fresh torch model give the same outputs
    ours, theirs = our_encoder(norm_first), torch_encoder(norm_first)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})
    expected = theirs(torch.tensor(src), src_key_padding_mask=torch.tensor(pad))
    assert_close(ours(minidl.tensor(src), src_key_padding_mask=minidl.tensor(pad)), expected)


def test_encoder_layers_are_independent_copies():
    encoder = our_encoder()
    first, second = encoder.layers[0].linear1.weight, encoder.layers[1].linear1.weight
    assert first is not second
    np.testing.assert_array_equal(first.numpy(), second.numpy())  # copies of one layer, as PyTorch
    first.data[...] = 0
    assert np.abs(second.numpy()).max() > 0


@pytest.mark.parametrize("padding", [False, True])
def test_encoder_eval_mode_matches_torch_fast_path(padding):
    rng = np.random.default_rng(3)
    src = rng.standard_normal((2, 5, 8)).astype(np.float32)
    pad = np.zeros((2, 5), dtype=bool)
    pad[0, 2:] = padding
    layer = torch.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True)
    theirs = torch.nn.TransformerEncoder(layer, 2).eval()  # nested tensors for the padding
    layer = TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True)
    ours = TransformerEncoder(layer, 2).eval()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    with torch.no_grad():
        expected = theirs(torch.tensor(src), src_key_padding_mask=torch.tensor(pad)).numpy()
    output = ours(minidl.tensor(src), src_key_padding_mask=minidl.tensor(pad)).numpy()
    assert_close(output[~pad], expected[~pad], scale=5)  # padded rows: torch gives zeros there


def test_decoder_stack_parity():
    rng = np.random.default_rng(1)
    tgt, memory = rng.standard_normal((4, 2, 8)), rng.standard_normal((6, 2, 8))

    def make(nn):
        layer = nn.TransformerDecoderLayer(8, 2, dim_feedforward=16, dropout=0.0)
        return nn.TransformerDecoder(layer, 2, norm=nn.LayerNorm(8))

    causal = np.triu(np.ones((4, 4), dtype=bool), 1)
    check_module_parity(make(transformer), make(torch.nn), [tgt, memory, causal],
                        call=lambda m, t, mem, mask: m(t, mem, tgt_mask=mask, tgt_is_causal=True))


SECOND_ORDER_CASES = {
    "TransformerEncoderLayer": lambda nn: nn.TransformerEncoderLayer(4, 2, dim_feedforward=3,
                                                                      dropout=0.0),
    "TransformerEncoderLayer-norm_first-gelu": lambda nn: nn.TransformerEncoderLayer(
        4, 2, dim_feedforward=3, dropout=0.0, activation="gelu", norm_first=True),
    "TransformerDecoderLayer": lambda nn: nn.TransformerDecoderLayer(4, 2, dim_feedforward=3,
                                                                      dropout=0.0),
    "TransformerEncoder": lambda nn: nn.TransformerEncoder(
        nn.TransformerEncoderLayer(4, 1, dim_feedforward=3, dropout=0.0), 2,
        norm=nn.LayerNorm(4), **({} if nn is transformer else {"enable_nested_tensor": False})),
    "TransformerDecoder": lambda nn: nn.TransformerDecoder(
        nn.TransformerDecoderLayer(4, 1, dim_feedforward=3, dropout=0.0), 2, norm=nn.LayerNorm(4)),
    "Transformer": lambda nn: nn.Transformer(4, 1, num_encoder_layers=1, num_decoder_layers=1,
                                             dim_feedforward=3, dropout=0.0),
}


@pytest.mark.parametrize("name", SECOND_ORDER_CASES)
def test_second_order_gradgradcheck_and_hvp_parity(name):
    """Second derivatives through attention, LayerNorm and the feed-forward block, with a causal
    mask (decoders) or a key padding mask (encoders); parameters included."""
    make = SECOND_ORDER_CASES[name]
    rng = np.random.default_rng(0)
    x, memory = rng.standard_normal((3, 2, 4)), rng.standard_normal((2, 2, 4))
    if "Decoder" in name or name == "Transformer":  # the whole Transformer: src = memory's input
        causal = np.triu(np.ones((3, 3), dtype=bool), 1)
        inputs = [x, memory, causal]
        call = lambda m, t, mem, mask: m(t, mem, tgt_mask=mask)  # noqa: E731
        if name == "Transformer":
            call = lambda m, t, src, mask: m(src, t, tgt_mask=mask)  # noqa: E731
    else:
        inputs = [x, np.array([[False, False, True], [False, False, False]])]
        call = lambda m, src, pad: m(src, src_key_padding_mask=pad)  # noqa: E731
    assert gradgradcheck_module(make(transformer), inputs, call=call)
    with sdpa_kernel(SDPBackend.MATH):
        check_module_hvp_parity(make(transformer), make(torch.nn), inputs, call=call)


def test_transformer_gradcheck_and_parity():
    """nn.Transformer (encoder-decoder): the same state_dict keys as torch, outputs and all gradients
    equal for the same weights, and float64 finite differences."""
    def make(nn):
        return nn.Transformer(8, 2, num_encoder_layers=2, num_decoder_layers=1, dim_feedforward=16,
                              dropout=0.0, batch_first=True)

    rng = np.random.default_rng(2)
    src, tgt = rng.standard_normal((2, 5, 8)), rng.standard_normal((2, 4, 8))
    causal = np.triu(np.ones((4, 4), dtype=bool), 1)
    call = lambda m, s, t, mask: m(s, t, tgt_mask=mask, tgt_is_causal=True)  # noqa: E731
    assert sorted(make(transformer).state_dict()) == sorted(make(torch.nn).state_dict())
    check_module_parity(make(transformer), make(torch.nn), [src, tgt, causal], call=call)
    small = transformer.Transformer(4, 1, num_encoder_layers=1, num_decoder_layers=1,
                                    dim_feedforward=3, dropout=0.0)
    assert gradcheck_module(small, [src[:1, :3, :4].transpose(1, 0, 2),
                                    tgt[:1, :2, :4].transpose(1, 0, 2)])


def test_square_subsequent_mask_matches_torch():
    np.testing.assert_array_equal(generate_square_subsequent_mask(4).numpy(),
                                  torch.nn.Transformer.generate_square_subsequent_mask(4).numpy())


def test_transformer_errors():
    with pytest.raises(RuntimeError, match="activation should be 'relu', 'gelu' or a callable"):
        TransformerEncoderLayer(8, 2, activation="tanh")
    layer = TransformerEncoderLayer(8, 2, dim_feedforward=16)
    with pytest.raises(ValueError, match=r"query expected input of shape \(\.\.\., 8\), got"):
        layer(minidl.randn(5, 2, 6))
    with pytest.raises(RuntimeError, match="is_causal is a hint that needs attn_mask"):
        layer(minidl.randn(5, 2, 8), is_causal=True)
