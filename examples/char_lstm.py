"""A character-level LSTM language model trained on Shakespeare, then asked to write some.

What it shows: language modelling as classification of the next character. An Embedding turns
character ids into vectors, an LSTM reads them left to right, a Linear layer scores the next
character at every position; the loss is cross-entropy over all positions at once and its
exponential is the perplexity (how many characters the model hesitates between). Training
clips the gradient norm (recurrent nets' gradients can explode) and uses AdamW with a cosine
learning-rate decay; dropout sits between the LSTM and the head. Sampling carries the LSTM's
state (h, c) from one character to the next, so each new character costs one step.

Run::

    python examples/char_lstm.py            # ~1M characters of the plays, a few minutes on a CPU
    python examples/char_lstm.py --quick    # a few steps: checks that it runs

An "epoch" here is ``--steps-per-epoch`` batches of random windows of the text, after which the
validation loss is measured on held-out text (the last 10%). Prints the losses, the perplexity and
a sample; writes ``loss.png`` (training and validation loss per epoch) and ``sample.txt``.
"""
from __future__ import annotations

import math

import numpy as np
from _common import (Stopwatch, make_parser, next_token_loss, plot_losses, prepare,
                     random_windows)

import minidl
from minidl import nn
from minidl.datasets import CharVocabulary, load_shakespeare
from minidl.optim import AdamW
from minidl.optim.lr_scheduler import CosineAnnealingLR


class CharLSTM(nn.Module):
    """(B, T) character ids -> (B, T, V) scores of the next character, and the LSTM state."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden_size: int, num_layers: int,
                 dropout: float):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, ids, state=None):
        outputs, state = self.lstm(self.embed(ids), state)  # (B, T, H), ((L, B, H), (L, B, H))
        return self.head(self.dropout(outputs)), state  # (B, T, V)


def sequence_loss(model, x, y, device):
    """Mean cross-entropy of the next character over every position of the batch."""
    logits, _ = model(minidl.tensor(x, device=device))  # (B, T, V)
    return next_token_loss(logits, y, device)


def sample(model, vocab: CharVocabulary, prompt: str, length: int, temperature: float,
           rng: np.random.Generator, device) -> str:
    """Continue ``prompt`` by ``length`` characters, drawn one at a time from the model."""
    model.eval()
    ids = list(vocab.encode(prompt))
    with minidl.no_grad():
        logits, state = model(minidl.tensor(np.array([ids]), device=device))  # read the prompt
        for _ in range(length):
            scores = logits.numpy()[0, -1] / temperature  # (V,) scores of the next character
            probabilities = np.exp(scores - scores.max())
            next_id = rng.choice(len(probabilities), p=probabilities / probabilities.sum())
            ids.append(next_id)
            logits, state = model(minidl.tensor(np.array([[next_id]]), device=device), state)
    model.train()
    return vocab.decode(ids)


def main(argv=None) -> dict:
    parser = make_parser(__doc__, name="char_lstm", epochs=15, lr=4e-3, batch_size=32)
    parser.add_argument("--steps-per-epoch", type=int, default=100)
    parser.add_argument("--length", type=int, default=64, help="characters per training window")
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--chars", type=int, default=1_000_000, help="characters of text used")
    parser.add_argument("--temperature", type=float, default=0.8)
    args = parser.parse_args(argv)
    out = prepare(args)
    if args.quick:
        args.epochs, args.steps_per_epoch, args.hidden_size, args.chars = 2, 5, 64, 50_000

    text = load_shakespeare(max_chars=args.chars)
    vocab = CharVocabulary(text)
    data = vocab.encode(text)  # (N,) int64 character ids
    split = int(0.9 * len(data))
    train, val = data[:split], data[split:]
    print(f"Shakespeare: {len(train):,} training and {len(val):,} validation characters, "
          f"{len(vocab)} distinct")

    model = CharLSTM(len(vocab), 48, args.hidden_size, num_layers=1, dropout=0.2).to(args.device)
    optimizer = AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    total_steps = args.epochs * args.steps_per_epoch
    scheduler = CosineAnnealingLR(optimizer, T_max=total_steps, eta_min=args.lr / 20)
    rng = np.random.default_rng(args.seed)
    val_rng = np.random.default_rng(args.seed + 1)
    val_batches = [random_windows(val, 64, args.length, val_rng)
                   for _ in range(2 if args.quick else 8)]

    losses, curves, clock = [], {"training": [], "validation": []}, Stopwatch()
    for epoch in range(1, args.epochs + 1):
        for _ in range(args.steps_per_epoch):
            loss = sequence_loss(model, *random_windows(train, args.batch_size, args.length, rng),
                                 args.device)
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

    text_out = sample(model, vocab, "ROMEO.\n", 60 if args.quick else 400, args.temperature, rng,
                      args.device)
    print(f"--- sample (temperature {args.temperature}) ---\n{text_out}\n---")
    val_loss = curves["validation"][-1]
    print(f"validation loss {val_loss:.3f} nats/char, perplexity {math.exp(val_loss):.2f} "
          f"(uniform guess: {len(vocab)}) after {total_steps} steps in {clock():.0f}s")
    plot_losses(out / "loss.png", curves, title="character LSTM on Shakespeare",
                xlabel=f"epoch ({args.steps_per_epoch} batches of {args.batch_size})")
    (out / "sample.txt").write_text(text_out + "\n", encoding="utf-8")
    print(f"wrote {out / 'loss.png'} and {out / 'sample.txt'}")
    return {"losses": losses, "val_loss": val_loss, "perplexity": math.exp(val_loss),
            "sample": text_out}


if __name__ == "__main__":
    main()
