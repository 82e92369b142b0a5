"""Train a classifier on scikit-learn's bundled 8x8 digits with ``minidl.train.fit``.

Runs offline (the digits ship inside scikit-learn: ``pip install "minidl[data]"``)::

    python examples/train_digits.py                 # the MNIST-style CNN, curves in runs/train_digits/
    python examples/train_digits.py --model mlp     # a two-hidden-layer MLP instead
    python examples/train_digits.py --quick         # 3 epochs, a smoke test

Prints the per-epoch loss and the test accuracy, saves the learning curves (``curves.png``) and
the best checkpoint (``best.safetensors``) in ``--out``.
"""
from __future__ import annotations

import argparse
import os
import time

import minidl
from minidl import nn
from minidl.datasets import load_digits, train_test_split
from minidl.train import EarlyStopping, ModelCheckpoint, evaluate, fit


def build_mlp(dropout: float = 0.2) -> nn.Module:
    """(N, 1, 8, 8) -> (N, 10) logits through two hidden layers."""
    return nn.Sequential(
        nn.Flatten(),  # (N, 64)
        nn.Linear(64, 128), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(128, 64), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(64, 10),
    )


def build_cnn(dropout: float = 0.2) -> nn.Module:
    """(N, 1, 8, 8) -> (N, 10) logits: the classic MNIST CNN (32 and 64 channels, 3x3, 2x2 pools)."""
    return nn.Sequential(
        nn.Conv2d(1, 32, kernel_size=3, padding=1), nn.ReLU(),  # (N, 32, 8, 8)
        nn.MaxPool2d(2),  # (N, 32, 4, 4)
        nn.Conv2d(32, 64, kernel_size=3, padding=1), nn.ReLU(),  # (N, 64, 4, 4)
        nn.MaxPool2d(2),  # (N, 64, 2, 2)
        nn.Flatten(), nn.Dropout(dropout),  # (N, 256)
        nn.Linear(256, 128), nn.ReLU(),
        nn.Linear(128, 10),
    )


MODELS = {"mlp": build_mlp, "cnn": build_cnn}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="cnn")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join("runs", "train_digits"),
                        help="folder for curves.png and the checkpoint")
    parser.add_argument("--quick", action="store_true", help="3 epochs: check that it runs")
    args = parser.parse_args(argv)
    epochs = 3 if args.quick else args.epochs
    os.makedirs(args.out, exist_ok=True)

    minidl.manual_seed(args.seed)
    images, labels = load_digits()  # (1797, 1, 8, 8) float32 in [0, 1], int64 labels
    x_train, x_test, y_train, y_test = train_test_split(images, labels, test_size=0.2)
    x_train, x_val, y_train, y_val = train_test_split(x_train, y_train, test_size=0.15)
    print(f"digits: {len(x_train)} train, {len(x_val)} validation, {len(x_test)} test images")

    model = MODELS[args.model]()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = minidl.optim.Adam(model.parameters(), lr=args.lr)
    checkpoint = os.path.join(args.out, "best.safetensors")
    callbacks = [ModelCheckpoint(checkpoint, monitor="val_accuracy", save_best_only=True),
                 EarlyStopping(monitor="val_loss", patience=8)]
    start = time.perf_counter()
    history = fit(model, (x_train, y_train), loss_fn, optimizer, epochs=epochs,
                  batch_size=args.batch_size, validation_data=(x_val, y_val),
                  metrics=["accuracy"], callbacks=callbacks)
    seconds = time.perf_counter() - start

    model.load_state_dict(minidl.load(checkpoint)["model"])  # the epoch with the best validation accuracy
    test = evaluate(model, (x_test, y_test), loss_fn, metrics=["accuracy"])
    print("per-epoch training loss: " + ", ".join(f"{loss:.4f}" for loss in history["loss"]))
    print(f"test accuracy {test['accuracy']:.4f} (loss {test['loss']:.4f}) after "
          f"{len(history['loss'])} epochs in {seconds:.1f}s")
    history.plot(os.path.join(args.out, "curves.png"))
    print(f"saved {os.path.join(args.out, 'curves.png')} and {checkpoint}")
    return {"losses": history["loss"], "test_accuracy": test["accuracy"], "seconds": seconds}


if __name__ == "__main__":
    main()
