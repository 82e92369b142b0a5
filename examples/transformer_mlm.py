"""A BERT-style masked language model over Shakespeare's characters.

What it shows: the encoder-only Transformer of BERT and its training task. A character window
has 15% of its positions chosen; of those, 80% are replaced by a [MASK] token, 10% by a random
character and 10% kept, and the model must recover the original characters there. Unlike a GPT
there is no causal mask: every position attends to both sides (``nn.TransformerEncoder``, learned
position embeddings). The loss is cross-entropy on the chosen positions only: every other target
is set to ``ignore_index`` (-100) of ``nn.CrossEntropyLoss``. AdamW, dropout, gradient clipping and
a one-cycle learning rate (warm-up, then cosine decay; ``OneCycleLR`` stepped every batch).

The score is the accuracy on masked positions of held-out text, next to the unigram baseline
(always guess the most frequent training character, a space), which a model that ignores the
context would not beat.

Run::

    python examples/transformer_mlm.py            # a few minutes on a CPU
    python examples/transformer_mlm.py --quick    # a few steps: checks that it runs

Prints the losses and masked-token accuracy per epoch and a held-out line with its masked
characters filled in; writes ``loss.png`` (training and validation loss per epoch).
"""
from __future__ import annotations

import numpy as np
from _common import Stopwatch, make_parser, plot_losses, prepare
from _language import shakespeare_splits, train_step

import minidl
from minidl import nn
from minidl.optim import AdamW
from minidl.optim.lr_scheduler import OneCycleLR

IGNORE = -100  # the target of a position that is not scored


class MaskedLM(nn.Module):
    """(B, T) ids (characters or the [MASK] id ``vocab_size``) -> (B, T, V) character scores."""

    def __init__(self, vocab_size: int, block_size: int, d_model: int = 64, nhead: int = 4,
                 num_layers: int = 2, dropout: float = 0.1):
        super().__init__()
        self.token_embed = nn.Embedding(vocab_size + 1, d_model)  # the extra row is [MASK]
        self.position_embed = nn.Embedding(block_size, d_model)
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward=4 * d_model,
                                           dropout=dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers)  # no mask: both directions
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, ids):
        positions = minidl.arange(ids.shape[1], device=ids.device)  # (T,)
        x = self.dropout(self.token_embed(ids) + self.position_embed(positions))  # (B, T, C)
        return self.head(self.norm(self.encoder(x)))  # (B, T, V)


def masked_batch(data: np.ndarray, batch_size: int, length: int, vocab_size: int,
                 rng: np.random.Generator, rate: float = 0.15):
    """Random windows, corrupted as BERT does: inputs (B, T) and targets (B, T), IGNORE where not
    chosen."""
    starts = rng.integers(0, len(data) - length, size=batch_size)
    original = np.stack([data[s:s + length] for s in starts])  # (B, T)
    chosen = rng.random(original.shape) < rate  # (B, T): the positions to predict
    roll = rng.random(original.shape)
    inputs = original.copy()
    inputs[chosen & (roll < 0.8)] = vocab_size  # [MASK]
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    inputs[swap] = rng.integers(0, vocab_size, size=swap.sum())  # a random character
    targets = np.where(chosen, original, IGNORE)  # the last 10% are chosen but left unchanged
    return inputs, targets


def main(argv=None) -> dict:
    parser = make_parser(__doc__, name="transformer_mlm", epochs=16, lr=3e-3, batch_size=64)
    parser.add_argument("--steps-per-epoch", type=int, default=100)
    parser.add_argument("--block-size", type=int, default=32, help="characters per window")
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--chars", type=int, default=1_000_000, help="characters of text used")
    parser.add_argument("--mask-rate", type=float, default=0.15, help="share of positions scored")
    args = parser.parse_args(argv)
    out = prepare(args)
    if args.quick:
        args.epochs, args.steps_per_epoch, args.d_model, args.layers = 2, 5, 32, 1
        args.block_size, args.chars = 32, 50_000

    vocab, train, val = shakespeare_splits(args.chars)
    V = len(vocab)
    most_frequent = np.bincount(train, minlength=V).argmax()
    print(f"the most frequent character is {vocab.decode([most_frequent])!r}")

    model = MaskedLM(V, args.block_size, args.d_model, num_layers=args.layers).to(args.device)
    loss_fn = nn.CrossEntropyLoss(ignore_index=IGNORE)
    optimizer = AdamW(model.parameters(), lr=args.lr, weight_decay=0.1)
    scheduler = OneCycleLR(optimizer, max_lr=args.lr, epochs=args.epochs,
                           steps_per_epoch=args.steps_per_epoch, pct_start=0.2)
    rng = np.random.default_rng(args.seed)
    val_rng = np.random.default_rng(args.seed + 1)
    val_batches = [masked_batch(val, 64, args.block_size, V, val_rng, args.mask_rate)
                   for _ in range(2 if args.quick else 8)]
    val_targets = np.concatenate([y[y != IGNORE] for _, y in val_batches])  # (M,)
    baseline = float(np.mean(val_targets == most_frequent))

    def scores(x):
        logits = model(minidl.tensor(x, device=args.device))  # (B, T, V)
        return logits.reshape(-1, V)  # (B·T, V)

    losses, curves, clock = [], {"training": [], "validation": []}, Stopwatch()
    for epoch in range(1, args.epochs + 1):
        for _ in range(args.steps_per_epoch):
            x, y = masked_batch(train, args.batch_size, args.block_size, V, rng, args.mask_rate)
            loss = loss_fn(scores(x), minidl.tensor(y.reshape(-1), device=args.device))
            losses.append(train_step(model, optimizer, scheduler, loss))
        model.eval()
        val_losses, predictions = [], []
        with minidl.no_grad():
            for x, y in val_batches:
                flat = scores(x)  # (B·T, V)
                val_losses.append(loss_fn(flat, minidl.tensor(y.reshape(-1),
                                                              device=args.device)).item())
                predictions.append(flat.numpy().argmax(axis=1)[y.reshape(-1) != IGNORE])
        model.train()
        accuracy = float(np.mean(np.concatenate(predictions) == val_targets))
        curves["training"].append(float(np.mean(losses[-args.steps_per_epoch:])))
        curves["validation"].append(float(np.mean(val_losses)))
        print(f"epoch {epoch}: training loss {curves['training'][-1]:.3f}  validation loss "
              f"{curves['validation'][-1]:.3f}  masked-token accuracy {accuracy:.3f}  "
              f"({clock():.0f}s)")

    x, y = val_batches[0][0][:1], val_batches[0][1][:1]  # (1, T): one held-out window
    model.eval()
    with minidl.no_grad():
        guess = scores(x).numpy().argmax(axis=1)  # (T,)
    shown = np.where(y[0] != IGNORE, V, x[0])  # every scored position drawn as "_"
    lines = {"input (scored as _)": "".join("_" if i == V else vocab.decode([i]) for i in shown),
             "model's fill-in": vocab.decode(np.where(y[0] != IGNORE, guess, x[0])),
             "original": vocab.decode(np.where(y[0] != IGNORE, y[0], x[0]))}
    for label, line in lines.items():  # newlines drawn as | to keep one row per line
        print(f"{label:>20}: {line.replace(chr(10), '|')}")
    print(f"masked-token accuracy {accuracy:.4f} on {len(val_targets)} held-out masked "
          f"characters; unigram baseline {baseline:.4f}; after {len(losses)} steps in "
          f"{clock():.0f}s")
    plot_losses(out / "loss.png", curves, title="masked character model on Shakespeare",
                xlabel=f"epoch ({args.steps_per_epoch} batches of {args.batch_size})")
    print(f"wrote {out / 'loss.png'}")
    return {"losses": losses, "masked_accuracy": accuracy, "unigram_baseline": baseline,
            "val_loss": curves["validation"][-1]}


if __name__ == "__main__":
    main()
