"""Transformer encoder and decoder layers and their stacks (PyTorch's post- and pre-norm blocks)."""
from __future__ import annotations

import copy
import math

from minidl import backend, creation, ops
from minidl.nn.attention import MultiheadAttention
from minidl.nn.container import ModuleList
from minidl.nn import init
from minidl.nn.dropout import Dropout
from minidl.nn.linear import Linear
from minidl.nn.module import Module
from minidl.nn.normalization import LayerNorm
from minidl.ops.shape import reshape
from minidl.tensors import Tensor


def generate_square_subsequent_mask(sz: int, device=None, dtype=None) -> Tensor:
    """The (sz, sz) causal float mask: 0 where key j <= query i, -inf above the diagonal.

    PyTorch has it as the static method ``nn.Transformer.generate_square_subsequent_mask``.
    """
    full = creation.full((sz, sz), -math.inf, device=device, dtype=dtype)._data
    return Tensor(backend.get_array_module(full).triu(full, 1))  # (sz, sz)


class TransformerEncoderLayer(Module):
    """Self-attention and a feed-forward block, each in a residual branch with LayerNorm.

    post-norm (default): x = norm1(x + SA(x)); x = norm2(x + FF(x))
    pre-norm (norm_first): x = x + SA(norm1(x)); x = x + FF(norm2(x))
    with FF(x) = linear2(dropout(activation(linear1(x)))) and dropout on each branch's output.

    Args:
        d_model: the model dim E.
        nhead: number of attention heads.
        dim_feedforward: hidden size of the feed-forward block.
        dropout: dropout probability (attention weights, feed-forward hidden, both branches).
        activation: ``"relu"``, ``"gelu"`` or a callable (a function or a Module).
        layer_norm_eps: LayerNorm's eps.
        batch_first: inputs and outputs are (N, L, E) instead of (L, N, E).
        norm_first: pre-norm instead of post-norm.
        bias: biases in the linear layers and the LayerNorms.

    Shape:
        src (L, N, E), (N, L, E) with batch_first, or unbatched (L, E); output of the same shape.
        src_mask (L, S) or (N·nhead, L, S), src_key_padding_mask (N, S) or (S,), as
        :class:`MultiheadAttention` (bool True = ignore, float = added).

    Submodule names (``self_attn``, ``linear1``, ``dropout``, ``linear2``, ``norm1``, ``norm2``,
    ``dropout1``, ``dropout2``) and so state_dict keys are PyTorch's. There is no eval-mode fused
    "fast path" (PyTorch's gives the same values up to rounding, and nested tensors for padding).

    Examples:
        >>> layer = TransformerEncoderLayer(16, nhead=4, dim_feedforward=32, batch_first=True)
        >>> layer(minidl.randn(2, 5, 16)).shape
        (2, 5, 16)
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation="relu", layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, device=None, dtype=None):
        super().__init__()
        kwargs = dict(device=device, dtype=dtype)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first, **kwargs)
        _add_feed_forward(self, d_model, dim_feedforward, dropout, activation, bias, kwargs)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kwargs)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kwargs)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal: bool = False):
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self.dropout2(_feed_forward(self, self.norm2(x)))
        x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self.dropout2(_feed_forward(self, x)))

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           need_weights=False, is_causal=is_causal)[0]
        return self.dropout1(x)


class TransformerDecoderLayer(Module):
    """Self-attention, attention over the encoder's ``memory``, and a feed-forward block.

    post-norm (default): x = norm1(x + SA(x)); x = norm2(x + MHA(x, memory)); x = norm3(x + FF(x))
    pre-norm (norm_first): x = x + SA(norm1(x)); x = x + MHA(norm2(x), memory); x = x + FF(norm3(x))

    Args: as :class:`TransformerEncoderLayer`.

    Shape:
        tgt (T, N, E), memory (S, N, E) ((N, T, E), (N, S, E) with batch_first; or unbatched);
        tgt_mask (T, T) or (N·nhead, T, T), memory_mask (T, S) or (N·nhead, T, S),
        tgt_key_padding_mask (N, T), memory_key_padding_mask (N, S); output like tgt.

    Submodules (state_dict keys) as PyTorch: ``self_attn``, ``multihead_attn``, ``linear1``,
    ``dropout``, ``linear2``, ``norm1..3``, ``dropout1..3``.

    Examples:
        >>> layer = TransformerDecoderLayer(16, 4, dim_feedforward=32, batch_first=True)
        >>> layer(minidl.randn(2, 5, 16), minidl.randn(2, 7, 16)).shape
        (2, 5, 16)
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation="relu", layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, device=None, dtype=None):
        super().__init__()
        kwargs = dict(device=device, dtype=dtype)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first, **kwargs)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                                 batch_first=batch_first, **kwargs)
        _add_feed_forward(self, d_model, dim_feedforward, dropout, activation, bias, kwargs)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kwargs)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kwargs)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kwargs)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal: bool = False,
                memory_is_causal: bool = False):
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask,
                                    memory_is_causal)
            return x + self.dropout3(_feed_forward(self, self.norm3(x)))
        x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
        x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask,
                                           memory_is_causal))
        return self.norm3(x + self.dropout3(_feed_forward(self, x)))

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           need_weights=False, is_causal=is_causal)[0]
        return self.dropout1(x)

    def _mha_block(self, x, memory, attn_mask, key_padding_mask, is_causal):
        x = self.multihead_attn(x, memory, memory, attn_mask=attn_mask,
                                key_padding_mask=key_padding_mask, need_weights=False,
                                is_causal=is_causal)[0]
        return self.dropout2(x)


class TransformerEncoder(Module):
    """``num_layers`` deep copies of ``encoder_layer`` (``layers.0``, ...) in a row, then ``norm``.

    Args:
        encoder_layer: a :class:`TransformerEncoderLayer` (copied, not shared).
        num_layers: how many layers.
        norm: an optional final normalisation Module.
        enable_nested_tensor: accepted for PyTorch compatibility and ignored: minidl has no nested
            tensors, padded positions are computed and masked (PyTorch skips them in eval mode and
            returns zeros there; the non-padded outputs agree).
        mask_check: accepted and ignored (it only guards PyTorch's nested-tensor path).

    Shape:
        src as the layer; mask and src_key_padding_mask as the layer's src_mask and
        src_key_padding_mask. ``is_causal`` is a hint that needs ``mask`` (as PyTorch); the mask is
        what is used.
    """

    def __init__(self, encoder_layer: TransformerEncoderLayer, num_layers: int, norm=None,
                 enable_nested_tensor: bool = True, mask_check: bool = True):
        super().__init__()
        self.layers = ModuleList(copy.deepcopy(encoder_layer) for _ in range(num_layers))
        self.num_layers, self.norm = num_layers, norm

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        output = src
        for layer in self.layers:
            output = layer(output, src_mask=mask, src_key_padding_mask=src_key_padding_mask,
                           is_causal=bool(is_causal))
        return output if self.norm is None else self.norm(output)


class TransformerDecoder(Module):
    """``num_layers`` deep copies of ``decoder_layer`` (``layers.0``, ...) in a row, then ``norm``.

    Shape:
        tgt, memory and the masks as :class:`TransformerDecoderLayer`; output like tgt.
    """

    def __init__(self, decoder_layer: TransformerDecoderLayer, num_layers: int, norm=None):
        super().__init__()
        self.layers = ModuleList(copy.deepcopy(decoder_layer) for _ in range(num_layers))
        self.num_layers, self.norm = num_layers, norm

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal: bool = False):
        output = tgt
        for layer in self.layers:
            output = layer(output, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                           tgt_key_padding_mask=tgt_key_padding_mask,
                           memory_key_padding_mask=memory_key_padding_mask,
                           tgt_is_causal=bool(tgt_is_causal), memory_is_causal=memory_is_causal)
        return output if self.norm is None else self.norm(output)


class Transformer(Module):
    """The encoder-decoder of "Attention Is All You Need" (``torch.nn.Transformer``): an encoder
    stack over ``src`` and a decoder stack over ``tgt`` that attends to the encoder's output.

    Args: as PyTorch's (d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6,
    dim_feedforward=2048, dropout=0.1, activation, custom_encoder, custom_decoder,
    layer_norm_eps, batch_first, norm_first, bias). Each stack ends with a LayerNorm; every weight
    with more than one dim is drawn from Xavier's uniform distribution, as PyTorch does.

    Shape:
        src (S, N, E), tgt (T, N, E) (batch first: (N, S, E), (N, T, E)); output like tgt. Masks as
        the layers': src_mask (S, S), tgt_mask (T, T), memory_mask (T, S), key padding masks
        (N, S) / (N, T).
    """

    def __init__(self, d_model: int = 512, nhead: int = 8, num_encoder_layers: int = 6,
                 num_decoder_layers: int = 6, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation="relu", custom_encoder=None, custom_decoder=None,
                 layer_norm_eps: float = 1e-5, batch_first: bool = False, norm_first: bool = False,
                 bias: bool = True, device=None, dtype=None):
        super().__init__()
        layer = dict(d_model=d_model, nhead=nhead, dim_feedforward=dim_feedforward,
                     dropout=dropout, activation=activation, layer_norm_eps=layer_norm_eps,
                     batch_first=batch_first, norm_first=norm_first, bias=bias, device=device,
                     dtype=dtype)
        norm = dict(eps=layer_norm_eps, bias=bias, device=device, dtype=dtype)
        self.encoder = custom_encoder or TransformerEncoder(
            TransformerEncoderLayer(**layer), num_encoder_layers, LayerNorm(d_model, **norm))
        self.decoder = custom_decoder or TransformerDecoder(
            TransformerDecoderLayer(**layer), num_decoder_layers, LayerNorm(d_model, **norm))
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first
        for parameter in self.parameters():
            if parameter.ndim > 1:
                init.xavier_uniform_(parameter)

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None,
                src_key_padding_mask=None, tgt_key_padding_mask=None, memory_key_padding_mask=None,
                src_is_causal=None, tgt_is_causal=None, memory_is_causal: bool = False):
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
                              is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask,
                            tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)

    generate_square_subsequent_mask = staticmethod(generate_square_subsequent_mask)


def _add_feed_forward(layer: Module, d_model: int, dim_feedforward: int, dropout: float,
                      activation, bias: bool, kwargs: dict) -> None:
    """Give ``layer`` PyTorch's feed-forward submodules: linear1, dropout, linear2, activation."""
    if activation == "relu":
        activation = ops.relu
    elif activation == "gelu":
        activation = ops.gelu
    elif isinstance(activation, str) or not callable(activation):
        raise RuntimeError(f"{type(layer).__name__}: activation should be 'relu', 'gelu' or a "
                           f"callable, not {activation!r}")
    layer.linear1 = Linear(d_model, dim_feedforward, bias=bias, **kwargs)
    layer.dropout = Dropout(dropout)
    layer.linear2 = Linear(dim_feedforward, d_model, bias=bias, **kwargs)
    layer.activation = activation


def _feed_forward(layer: Module, x):
    """linear2(dropout(activation(linear1(x)))) on the rows of x (one 2-D GEMM per linear)."""
    rows = reshape(x, (-1, x.shape[-1]))  # (N·L, E): NumPy runs 3-D @ 2-D as many small GEMMs
    hidden = layer.dropout(layer.activation(layer.linear1(rows)))  # (N·L, dim_feedforward)
    return reshape(layer.linear2(hidden), x.shape)  # (..., E)
