"""Logistic regression on scikit-learn's bundled breast-cancer data, written with the tensor core only.

What it shows: a model is just tensors and ops; ``loss.backward()`` fills ``.grad``; one SGD step is
``w -= lr * w.grad`` under ``no_grad``. The loss is binary cross-entropy on the sigmoid's output,
computed stably from logits: BCE = softplus(z) - y·z.

Run: ``python examples/logistic_regression.py`` (prints loss and test accuracy; target ≥ 95%).
"""
from __future__ import annotations

import argparse

import numpy as np

import minidl


def load_data(seed: int):
    """Standardised features, 0/1 labels, a 75/25 train/test split."""
    try:
        from sklearn.datasets import load_breast_cancer
    except ImportError as error:
        raise SystemExit('this example needs scikit-learn: pip install "minidl[data]"') from error
    features, labels = load_breast_cancer(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(labels))
    features, labels = features[order].astype(np.float32), labels[order].astype(np.float32)
    split = int(0.75 * len(labels))
    mean, std = features[:split].mean(axis=0), features[:split].std(axis=0) + 1e-8
    features = (features - mean) / std
    return features[:split], labels[:split], features[split:], labels[split:]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--quick", action="store_true", help="a few steps (used by the test suite)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    epochs = 10 if args.quick else args.epochs

    minidl.manual_seed(0)
    x_train, y_train, x_test, y_test = load_data(seed=0)
    x, y = minidl.tensor(x_train, device=args.device), minidl.tensor(y_train, device=args.device)
    weight = minidl.zeros(x.shape[1], requires_grad=True, device=args.device)  # (D,)
    bias = minidl.zeros(1, requires_grad=True, device=args.device)  # (1,)

    losses = []
    for epoch in range(1, epochs + 1):
        logits = x @ weight + bias  # (N,)
        loss = (minidl.softplus(logits) - y * logits).mean()
        weight.grad = bias.grad = None
        loss.backward()
        losses.append(loss.item())
        with minidl.no_grad():
            weight.data -= args.lr * weight.grad.data
            bias.data -= args.lr * bias.grad.data
        if epoch == 1 or epoch % max(1, epochs // 5) == 0:
            print(f"epoch {epoch:4d}  train loss {loss.item():.4f}")

    with minidl.no_grad():
        test_logits = minidl.tensor(x_test, device=args.device) @ weight + bias
    accuracy = float(((test_logits.numpy() > 0) == (y_test > 0.5)).mean())
    print(f"test accuracy {accuracy:.4f} on {len(y_test)} held-out tumours")
    return {"losses": losses, "test_accuracy": accuracy}


if __name__ == "__main__":
    main()
