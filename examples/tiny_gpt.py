"""A tiny GPT: a causal Transformer language model over Shakespeare's characters, then a sample.

What it shows: the decoder-only Transformer of GPT, read top to bottom. Token and learned
position embeddings are added; pre-norm Transformer blocks (``nn.TransformerEncoderLayer`` with
``norm_first=True``, GELU) attend only to earlier positions because a causal mask (-inf above
the diagonal) is added to the attention scores; a final LayerNorm and a Linear head score the
next character at every position. Training follows the usual recipe: AdamW with weight decay,
dropout, gradient-norm clipping and a learning rate that warms up linearly then decays along a
cosine (``SequentialLR(LinearLR, CosineAnnealingLR)``, stepped every batch). Generation feeds
the last ``block_size`` characters back in, one new character at a time.

Run::

    python examples/tiny_gpt.py            # ~1M characters of the plays, a few minutes on a CPU
    python examples/tiny_gpt.py --quick    # a few steps: checks that it runs

An "epoch" here is ``--steps-per-epoch`` batches of random windows, after which the validation
loss is measured on held-out text (the last 10%). Prints the losses, perplexity and a sample;
writes ``loss.png`` (training and validation loss per epoch) and ``sample.txt`` into ``--out``.
"""
from __future__ import annotations

import numpy as np
from _common import make_parser, prepare
from _language import (draw_next, fit_next_token_model, next_token_loss, report_next_token_model,
                       shakespeare_splits)

import minidl
from minidl import nn
from minidl.datasets import CharVocabulary
from minidl.nn.transformer import generate_square_subsequent_mask
from minidl.optim import AdamW
from minidl.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR


class TinyGPT(nn.Module):
    """(B, T) character ids, T <= block_size -> (B, T, V) scores of the next character."""

    def __init__(self, vocab_size: int, block_size: int, d_model: int = 96, nhead: int = 4,
                 num_layers: int = 2, dropout: float = 0.1):
        super().__init__()
        self.block_size = block_size
        self.token_embed = nn.Embedding(vocab_size, d_model)
        self.position_embed = nn.Embedding(block_size, d_model)
        self.dropout = nn.Dropout(dropout)
        block = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward=4 * d_model,
                                           dropout=dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(block, num_layers)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)
        # -inf above the diagonal: position t sees positions 0..t only
        self.register_buffer("causal_mask", generate_square_subsequent_mask(block_size))

    def forward(self, ids):
        T = ids.shape[1]
        positions = minidl.arange(T, device=ids.device)  # (T,)
        x = self.dropout(self.token_embed(ids) + self.position_embed(positions))  # (B, T, C)
        x = self.blocks(x, mask=self.causal_mask[:T, :T], is_causal=True)  # (B, T, C)
        return self.head(self.norm(x))  # (B, T, V)


def sequence_loss(model, x, y, device):
    """Mean cross-entropy of the next character over every position of the batch."""
    logits = model(minidl.tensor(x, device=device))  # (B, T, V)
    return next_token_loss(logits, y, device)


def generate(model, vocab: CharVocabulary, prompt: str, length: int, temperature: float,
             rng: np.random.Generator, device) -> str:
    """Continue ``prompt`` by ``length`` characters, each drawn from the model given the last
    ``block_size`` characters."""
    model.eval()
    ids = list(vocab.encode(prompt))
    with minidl.no_grad():
        for _ in range(length):
            context = np.array([ids[-model.block_size:]])  # (1, T)
            scores = model(minidl.tensor(context, device=device)).numpy()[0, -1]  # (V,)
            ids.append(draw_next(scores, temperature, rng))
    model.train()
    return vocab.decode(ids)


def main(argv=None) -> dict:
    parser = make_parser(__doc__, name="tiny_gpt", epochs=12, lr=3e-3, batch_size=32)
    parser.add_argument("--steps-per-epoch", type=int, default=80)
    parser.add_argument("--block-size", type=int, default=64, help="context length in characters")
    parser.add_argument("--d-model", type=int, default=96)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--chars", type=int, default=1_000_000, help="characters of text used")
    parser.add_argument("--temperature", type=float, default=0.8)
    args = parser.parse_args(argv)
    out = prepare(args)
    if args.quick:
        args.epochs, args.steps_per_epoch, args.d_model, args.layers = 2, 5, 32, 1
        args.block_size, args.chars = 32, 50_000

    vocab, train, val = shakespeare_splits(args.chars)
    model = TinyGPT(len(vocab), args.block_size, args.d_model, num_layers=args.layers)
    model.to(args.device)
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters")
    optimizer = AdamW(model.parameters(), lr=args.lr, weight_decay=0.1)
    total_steps = args.epochs * args.steps_per_epoch
    warmup = max(1, total_steps // 10)
    scheduler = SequentialLR(optimizer, [LinearLR(optimizer, start_factor=0.05, total_iters=warmup),
                                         CosineAnnealingLR(optimizer, T_max=total_steps - warmup,
                                                           eta_min=args.lr / 20)],
                             milestones=[warmup])
    rng = np.random.default_rng(args.seed)  # training windows, then the sample
    losses, curves, clock = fit_next_token_model(model, sequence_loss, optimizer, scheduler, train,
                                                 val, args.block_size, args, rng)
    text_out = generate(model, vocab, "ROMEO.\n", 60 if args.quick else 400, args.temperature,
                        rng, args.device)
    return report_next_token_model(out, args, "tiny GPT on Shakespeare", len(vocab), text_out,
                                   losses, curves, clock)


if __name__ == "__main__":
    main()
