"""Classify MNIST digits with a recurrent network that reads each image one row at a time.

What it shows: an image is a sequence too, 28 steps of 28 pixels. An RNN, LSTM or GRU (``--cell``)
carries its hidden state down the rows and the last step's state feeds a linear classifier.
Gradients through 28 steps can explode, so every step clips their norm
(``nn.utils.clip_grad_norm_``); AdamW with weight decay and a one-cycle schedule (warm-up, then
cosine decay) train it in a few epochs on a 20,000-image subset of MNIST.

Run::

    python examples/rnn_classifier.py               # GRU, test accuracy on all 10,000 test images
    python examples/rnn_classifier.py --cell lstm   # or rnn (plain tanh RNN)
    python examples/rnn_classifier.py --quick       # a few steps: checks that it runs

Prints the loss and the validation accuracy per epoch, then the test accuracy (target >= 95%);
writes ``loss.png`` (training loss per step) and ``confusion.png`` (test set) into ``--out``.
"""
from __future__ import annotations

import numpy as np
from _common import (
    Stopwatch,
    batches,
    classification_report,
    make_parser,
    plot_confusion_matrix,
    plot_losses,
    prepare,
)

import minidl
from minidl import nn
from minidl.datasets import load_mnist
from minidl.metrics import confusion_matrix
from minidl.optim import AdamW
from minidl.optim.lr_scheduler import OneCycleLR
from minidl.train import predict

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
MEAN, STD = 0.1307, 0.3081  # MNIST's pixel mean and standard deviation


class RowReader(nn.Module):
    """(B, 1, 28, 28) images -> (B, 10) logits: a recurrent layer over the rows, a linear head."""

    def __init__(self, cell: str, hidden_size: int, num_layers: int = 1, dropout: float = 0.1):
        super().__init__()
        self.recurrent = CELLS[cell](28, hidden_size, num_layers, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, 10)

    def forward(self, images):
        rows = images.reshape(images.shape[0], 28, 28)  # (B, T=28 rows, 28 pixels)
        outputs, _ = self.recurrent(rows)  # (B, T, H): the hidden state after every row
        return self.head(self.dropout(outputs[:, -1]))  # (B, 10) from the last row's state


def main(argv=None) -> dict:
    parser = make_parser(__doc__, name="rnn_classifier", epochs=3, lr=3e-3, batch_size=128)
    parser.add_argument("--cell", choices=sorted(CELLS), default="gru")
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--train-size", type=int, default=20000, help="MNIST training images used")
    parser.add_argument("--clip", type=float, default=1.0, help="max gradient norm")
    args = parser.parse_args(argv)
    out = prepare(args)
    if args.quick:
        args.epochs, args.train_size, args.hidden_size, args.batch_size = 3, 256, 32, 64

    images, labels = load_mnist(train=True)  # (60000, 1, 28, 28) in [0, 1], (60000,)
    test_images, test_labels = load_mnist(train=False)  # (10000, 1, 28, 28), (10000,)
    rng = np.random.default_rng(args.seed)
    chosen = rng.permutation(len(labels))[:args.train_size + 2000]
    images, labels = (images[chosen] - MEAN) / STD, labels[chosen]
    x_train, y_train = images[:args.train_size], labels[:args.train_size]
    x_val, y_val = images[args.train_size:], labels[args.train_size:]  # 2,000 held out per epoch
    if args.quick:
        x_val, y_val, test_images, test_labels = x_val[:200], y_val[:200], test_images[:200], \
            test_labels[:200]
    x_test = (test_images - MEAN) / STD
    print(f"MNIST: {len(y_train)} training, {len(y_val)} validation, {len(x_test)} test images")

    model = RowReader(args.cell, args.hidden_size).to(args.device)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    steps_per_epoch = -(-len(y_train) // args.batch_size)
    scheduler = OneCycleLR(optimizer, max_lr=args.lr, epochs=args.epochs,
                           steps_per_epoch=steps_per_epoch, pct_start=0.2)

    losses, clock = [], Stopwatch()
    for epoch in range(1, args.epochs + 1):
        model.train()
        for index in batches(len(y_train), args.batch_size, rng):
            x = minidl.tensor(x_train[index], device=args.device)  # (B, 1, 28, 28)
            y = minidl.tensor(y_train[index], device=args.device)  # (B,)
            loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        val_pred = predict(model, x_val, batch_size=500).numpy().argmax(axis=1)
        print(f"epoch {epoch}: training loss {np.mean(losses[-steps_per_epoch:]):.4f}  "
              f"validation accuracy {np.mean(val_pred == y_val):.4f}  ({clock():.0f}s)")

    y_pred = predict(model, x_test, batch_size=500).numpy().argmax(axis=1)
    report = classification_report(test_labels, y_pred, num_classes=10)
    print(f"{args.cell.upper()} test accuracy {report['accuracy']:.4f} (macro F1 "
          f"{report['f1_score']:.4f}) on {len(y_pred)} test images after {clock():.0f}s")
    plot_losses(out / "loss.png", losses, title=f"{args.cell.upper()} on MNIST rows: training loss")
    plot_confusion_matrix(out / "confusion.png", confusion_matrix(test_labels, y_pred, 10),
                          title=f"{args.cell.upper()}: MNIST test set")
    print(f"wrote {out / 'loss.png'} and {out / 'confusion.png'}")
    return {"losses": losses, "test_accuracy": report["accuracy"], **report}


if __name__ == "__main__":
    main()
