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

import numpy as np
from _common import make_parser, prepare
from _language import (draw_next, fit_next_token_model, next_token_loss, report_next_token_model,
                       shakespeare_splits)

import minidl
from minidl import nn
from minidl.datasets import CharVocabulary
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
            next_id = draw_next(logits.numpy()[0, -1], temperature, rng)  # from (V,) scores
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

    vocab, train, val = shakespeare_splits(args.chars)
    model = CharLSTM(len(vocab), 48, args.hidden_size, num_layers=1, dropout=0.2).to(args.device)
    optimizer = AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    total_steps = args.epochs * args.steps_per_epoch
    scheduler = CosineAnnealingLR(optimizer, T_max=total_steps, eta_min=args.lr / 20)
    rng = np.random.default_rng(args.seed)  # training windows, then the sample
    losses, curves, clock = fit_next_token_model(model, sequence_loss, optimizer, scheduler, train,
                                                 val, args.length, args, rng)
    text_out = sample(model, vocab, "ROMEO.\n", 60 if args.quick else 400, args.temperature, rng,
                      args.device)
    return report_next_token_model(out, args, "character LSTM on Shakespeare", len(vocab),
                                   text_out, losses, curves, clock)


if __name__ == "__main__":
    main()
