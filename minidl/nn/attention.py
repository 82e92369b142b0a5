"""Multi-head attention layer."""
from __future__ import annotations

from minidl import creation
from minidl.nn import init
from minidl.nn.checks import check_input
from minidl.nn.linear import Linear
from minidl.nn.module import Module
from minidl.nn.parameter import Parameter
from minidl.ops.multihead_attention import multi_head_attention_forward


class MultiheadAttention(Module):
    """Attention over ``num_heads`` subspaces: headₕ = softmax(Qₕ Kₕᵀ / sqrt(d) + M) Vₕ with
    Qₕ = query W_qₕᵀ + b_qₕ (likewise K, V), output = concat(heads) W_oᵀ + b_o.

    Args:
        embed_dim: the model dim E (of the query and the output).
        num_heads: number of heads; each has d = E / num_heads dims.
        dropout: dropout probability on the attention weights (in training mode).
        bias: learn in- and out-projection biases.
        add_bias_kv: must be False (NotImplementedError otherwise).
        add_zero_attn: must be False (NotImplementedError otherwise).
        kdim: the key's feature dim (default E).
        vdim: the value's feature dim (default E).
        batch_first: inputs and outputs are (N, L, E) instead of (L, N, E).

    Shape:
        query (L, N, E), key (S, N, kdim), value (S, N, vdim) (batch first: (N, L, E) ...; or
        unbatched (L, E) ...); key_padding_mask (N, S) or (S,), bool (True = ignore the key) or
        float (added); attn_mask (L, S) or (N·num_heads, L, S), bool (True = not allowed) or float.
        Returns attn_output (L, N, E) and attn_weights (N, L, S) averaged over heads, or
        (N, num_heads, L, S) with ``average_attn_weights=False``, or None with
        ``need_weights=False``.

    Weights: ``in_proj_weight`` (3E, E) packs W_q, W_k, W_v when kdim = vdim = E; otherwise
    ``q_proj_weight`` (E, E), ``k_proj_weight`` (E, kdim), ``v_proj_weight`` (E, vdim).
    ``in_proj_bias`` (3E,), ``out_proj`` a Linear(E, E). As PyTorch: xavier_uniform_ on the
    in-projection weights, zeros on both biases, out_proj.weight from Linear's default init.

    Unlike PyTorch, a query whose keys are all masked gets a zero output and zero weights (PyTorch
    gives NaN when need_weights=True), and there is no eval-mode fused "fast path".

    Examples:
        >>> attention = MultiheadAttention(16, 4, batch_first=True)
        >>> x = minidl.randn(2, 5, 16)
        >>> output, weights = attention(x, x, x)
        >>> output.shape, weights.shape
        ((2, 5, 16), (2, 5, 5))
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim=None, vdim=None,
                 batch_first: bool = False, device=None, dtype=None):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be positive and "
                             f"divisible by num_heads ({num_heads})")
        if add_bias_kv or add_zero_attn:
            raise NotImplementedError("MultiheadAttention: add_bias_kv and add_zero_attn are not "
                                      "implemented")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.head_dim, self.batch_first = embed_dim // num_heads, batch_first
        self.bias_k = self.bias_v = None
        self.add_zero_attn = False

        def weight(*shape):
            return Parameter(creation.empty(*shape, dtype=dtype, device=device))

        if self._qkv_same_embed_dim:
            self.in_proj_weight = weight(3 * embed_dim, embed_dim)
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.q_proj_weight = weight(embed_dim, embed_dim)
            self.k_proj_weight = weight(embed_dim, self.kdim)
            self.v_proj_weight = weight(embed_dim, self.vdim)
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = weight(3 * embed_dim)
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for projection in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(projection)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def forward(self, query, key, value, key_padding_mask=None, need_weights: bool = True,
                attn_mask=None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple:
        name, like = f"MultiheadAttention({self.extra_repr()})", self.out_proj.weight
        check_input(name, query, ("...", self.embed_dim), like=like, role="query")
        check_input(name, key, ("...", self.kdim), like=like, role="key")
        check_input(name, value, ("...", self.vdim), like=like, role="value")
        return multi_head_attention_forward(
            query, key, value, self.embed_dim, self.num_heads, self.in_proj_weight,
            self.in_proj_bias, None, None, False, self.dropout, self.out_proj.weight,
            self.out_proj.bias, training=self.training, key_padding_mask=key_padding_mask,
            need_weights=need_weights, attn_mask=attn_mask,
            use_separate_proj_weight=not self._qkv_same_embed_dim, q_proj_weight=self.q_proj_weight,
            k_proj_weight=self.k_proj_weight, v_proj_weight=self.v_proj_weight,
            average_attn_weights=average_attn_weights, is_causal=is_causal,
            batch_first=self.batch_first)

    def extra_repr(self) -> str:
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, "
                f"kdim={self.kdim}, vdim={self.vdim}, batch_first={self.batch_first}")
