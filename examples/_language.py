"""Plumbing shared by the three Shakespeare examples (char_lstm, tiny_gpt, transformer_mlm).

``shakespeare_splits`` loads the plays as character ids; ``train_step`` is one clipped update;
``random_windows``/``next_token_loss`` make and score next-character batches; ``draw_next``
samples a character; ``fit_next_token_model`` and ``report_next_token_model`` are the training
loop and the final report of the two next-character models.
"""
from __future__ import annotations

import math

import numpy as np
from _common import Stopwatch, plot_losses

import minidl
from minidl import nn
from minidl.datasets import CharVocabulary, load_shakespeare


def shakespeare_splits(max_chars: int):
    """The plays' first ``max_chars`` characters as ids: (vocabulary, first 90%, last 10%)."""
    text = load_shakespeare(max_chars=max_chars)
    vocab = CharVocabulary(text)
    data = vocab.encode(text)  # (N,) int64 character ids
    split = int(0.9 * len(data))
    train, val = data[:split], data[split:]
    print(f"Shakespeare: {len(train):,} training and {len(val):,} validation characters, "
          f"{len(vocab)} distinct")
    return vocab, train, val


def train_step(model, optimizer, scheduler, loss) -> float:
    """One update from ``loss``: gradients clipped to norm 1 (a sequence model's can explode),
    then the optimizer's and the schedule's step. Returns the loss as a float."""
    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    return loss.item()


def random_windows(data: np.ndarray, batch_size: int, length: int, rng: np.random.Generator):
    """``batch_size`` random windows of the id array: inputs (B, T) and next-token targets."""
    starts = rng.integers(0, len(data) - length - 1, size=batch_size)
    windows = np.stack([data[s:s + length + 1] for s in starts])  # (B, T + 1)
    return windows[:, :-1], windows[:, 1:]  # (B, T), (B, T): the target is the input shifted by one


def next_token_loss(logits, targets: np.ndarray, device):
    """Mean cross-entropy of the next token over every position of a (B, T, V) batch of logits."""
    flat = logits.reshape(-1, logits.shape[-1])  # (B·T, V)
    return minidl.nn.functional.cross_entropy(flat, minidl.tensor(targets.reshape(-1), device=device))


def draw_next(scores: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    """An id drawn from softmax(scores / temperature), ``scores`` (V,) a model's last output."""
    scaled = scores / temperature
    probabilities = np.exp(scaled - scaled.max())  # (V,)
    return int(rng.choice(len(probabilities), p=probabilities / probabilities.sum()))


def fit_next_token_model(model, sequence_loss, optimizer, scheduler, train, val, length: int,
                         args, rng: np.random.Generator):
    """``args.epochs`` × ``args.steps_per_epoch`` updates on random windows of ``train`` (drawn
    with ``rng``), each epoch ending with the mean loss on fixed windows of ``val``; prints one
    line per epoch. ``sequence_loss(model, x, y, device)`` scores a batch.

    Returns the per-step training losses, the per-epoch curves and the stopwatch started with
    training.
    """
    val_rng = np.random.default_rng(args.seed + 1)
    val_batches = [random_windows(val, 64, length, val_rng) for _ in range(2 if args.quick else 8)]
    losses, curves, clock = [], {"training": [], "validation": []}, Stopwatch()
    for epoch in range(1, args.epochs + 1):
        for _ in range(args.steps_per_epoch):
            x, y = random_windows(train, args.batch_size, length, rng)
            losses.append(train_step(model, optimizer, scheduler,
                                     sequence_loss(model, x, y, args.device)))
        model.eval()
        with minidl.no_grad():
            val_loss = float(np.mean([sequence_loss(model, x, y, args.device).item()
                                      for x, y in val_batches]))
        model.train()
        curves["training"].append(float(np.mean(losses[-args.steps_per_epoch:])))
        curves["validation"].append(val_loss)
        print(f"epoch {epoch}: training loss {curves['training'][-1]:.3f}  validation loss "
              f"{val_loss:.3f}  perplexity {math.exp(val_loss):.2f}  ({clock():.0f}s)")
    return losses, curves, clock


def report_next_token_model(out, args, title: str, vocab_size: int, sample: str, losses, curves,
                            clock) -> dict:
    """Print the sample and the final validation loss, write ``loss.png`` and ``sample.txt``;
    the example's result for its tests."""
    print(f"--- sample (temperature {args.temperature}) ---\n{sample}\n---")
    val_loss = curves["validation"][-1]
    print(f"validation loss {val_loss:.3f} nats/char, perplexity {math.exp(val_loss):.2f} "
          f"(uniform guess: {vocab_size}) after {len(losses)} steps in {clock():.0f}s")
    plot_losses(out / "loss.png", curves, title=title,
                xlabel=f"epoch ({args.steps_per_epoch} batches of {args.batch_size})")
    (out / "sample.txt").write_text(sample + "\n", encoding="utf-8")
    print(f"wrote {out / 'loss.png'} and {out / 'sample.txt'}")
    return {"losses": losses, "val_loss": val_loss, "perplexity": math.exp(val_loss),
            "sample": sample}
