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

import math

import numpy as np
from _common import (Stopwatch, make_parser, next_token_loss, plot_losses, prepare,
                     random_windows)

import minidl
from minidl import nn
from minidl.datasets import CharVocabulary, load_shakespeare
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
            scores = model(minidl.tensor(context, device=device)).numpy()[0, -1] / temperature
            probabilities = np.exp(scores - scores.max())  # (V,)
            ids.append(rng.choice(len(probabilities), p=probabilities / probabilities.sum()))
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

    text = load_shakespeare(max_chars=args.chars)
    vocab = CharVocabulary(text)
    data = vocab.encode(text)  # (N,) int64 character ids
    split = int(0.9 * len(data))
    train, val = data[:split], data[split:]
    print(f"Shakespeare: {len(train):,} training and {len(val):,} validation characters, "
          f"{len(vocab)} distinct")

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
    rng = np.random.default_rng(args.seed)
    val_rng = np.random.default_rng(args.seed + 1)
    val_batches = [random_windows(val, 64, args.block_size, val_rng)
                   for _ in range(2 if args.quick else 8)]

    losses, curves, clock = [], {"training": [], "validation": []}, Stopwatch()
    for epoch in range(1, args.epochs + 1):
        for _ in range(args.steps_per_epoch):
            x, y = random_windows(train, args.batch_size, args.block_size, rng)
            loss = sequence_loss(model, x, y, args.device)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        model.eval()
        with minidl.no_grad():
            val_loss = float(np.mean([sequence_loss(model, x, y, args.device).item()
                                      for x, y in val_batches]))
        model.train()
        curves["training"].append(float(np.mean(losses[-args.steps_per_epoch:])))
        curves["validation"].append(val_loss)
        print(f"epoch {epoch}: training loss {curves['training'][-1]:.3f}  validation loss "
              f"{val_loss:.3f}  perplexity {math.exp(val_loss):.2f}  ({clock():.0f}s)")

    text_out = generate(model, vocab, "ROMEO.\n", 60 if args.quick else 400, args.temperature,
                        rng, args.device)
    print(f"--- sample (temperature {args.temperature}) ---\n{text_out}\n---")
    val_loss = curves["validation"][-1]
    print(f"validation loss {val_loss:.3f} nats/char, perplexity {math.exp(val_loss):.2f} "
          f"(uniform guess: {len(vocab)}) after {total_steps} steps in {clock():.0f}s")
    plot_losses(out / "loss.png", curves, title="tiny GPT on Shakespeare",
                xlabel=f"epoch ({args.steps_per_epoch} batches of {args.batch_size})")
    (out / "sample.txt").write_text(text_out + "\n", encoding="utf-8")
    print(f"wrote {out / 'loss.png'} and {out / 'sample.txt'}")
    return {"losses": losses, "val_loss": val_loss, "perplexity": math.exp(val_loss),
            "sample": text_out}


if __name__ == "__main__":
    main()
