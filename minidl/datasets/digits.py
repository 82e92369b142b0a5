"""scikit-learn's bundled 8x8 digits (1,797 images, no download) and a train/test split helper."""
from __future__ import annotations

import math

import numpy as np

from minidl import random


def load_digits() -> tuple:
    """The 8x8 handwritten digits that ship inside scikit-learn (the optional ``data`` extra).

    Returns:
        ``(images, labels)``: float32 images of shape (1797, 1, 8, 8) scaled to [0, 1] (the raw
        pixels are 0..16) and int64 labels of shape (1797,).

    Examples:
        >>> x, y = load_digits()
        >>> x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2)
    """
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise RuntimeError('load_digits needs scikit-learn: pip install "minidl[data]"') from None
    bunch = sklearn_digits()
    images = (bunch.images.astype(np.float32) / 16.0)[:, None]  # (N, 1, 8, 8)
    return images, bunch.target.astype(np.int64)


def train_test_split(*arrays, test_size: float | int = 0.25, shuffle: bool = True,
                     generator: random.Generator | None = None) -> list:
    """Split arrays with the same first dim into train and test parts, as scikit-learn's.

    Args:
        *arrays: arrays (or Tensors) of shape (N, ...).
        test_size: a fraction of N, or a number of samples (rounded up as scikit-learn does).
        shuffle: permute before splitting, drawing from ``generator`` (default: the global one).

    Returns:
        ``[a_train, a_test, b_train, b_test, ...]``.
    """
    sizes = {len(a) for a in arrays}
    if len(sizes) != 1:
        raise ValueError(f"train_test_split expected arrays with the same length, got "
                         f"{sorted(sizes)}")
    (total,) = sizes
    count = math.ceil(test_size * total) if isinstance(test_size, float) else int(test_size)
    if not 0 < count < total:
        raise ValueError(f"train_test_split: test_size={test_size} leaves an empty part of {total}")
    order = random.generator_for(np, generator).permutation(total) if shuffle else np.arange(total)
    test, train = order[:count], order[count:]
    return [part for a in arrays for part in (a[train], a[test])]
