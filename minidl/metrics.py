"""Classification and regression metrics on arrays or Tensors, matching scikit-learn's definitions.

Every function takes ``(y_true, y_pred)`` in scikit-learn's order and returns a Python float (or an
array for ``confusion_matrix``). Inputs may be NumPy arrays, lists or Tensors on any device.

Classification predictions are either labels (the same shape as ``y_true``) or scores: logits or
probabilities of shape (N, C), reduced with argmax over the class axis. Binary probabilities of
shape (N,) are not thresholded for you: pass ``probabilities > 0.5``.
"""
from __future__ import annotations

import numpy as np

from minidl import backend
from minidl.tensors import Tensor

AVERAGES = ("binary", "macro", "micro", "weighted")


def accuracy(y_true, y_pred) -> float:
    """The fraction of samples whose predicted label equals the true one."""
    y_true, y_pred = _labels("accuracy", y_true, y_pred)
    return float(np.mean(y_true == y_pred)) if y_true.size else 0.0


def top_k_accuracy(y_true, y_score, k: int = 5) -> float:
    """The fraction of samples whose true label is among the ``k`` highest of the (N, C) scores."""
    y_true, y_score = _numpy(y_true), _numpy(y_score)
    if y_score.ndim != 2 or y_true.shape != y_score.shape[:1]:
        raise ValueError(f"top_k_accuracy expected y_true of shape (N,) and y_score of shape "
                         f"(N, C), got {y_true.shape} and {y_score.shape}")
    # stable sort, highest first: among tied scores the higher class index wins, as scikit-learn
    top = np.argsort(y_score, axis=1, kind="mergesort")[:, ::-1][:, :k]  # (N, k)
    return float(np.mean((top == y_true[:, None]).any(axis=1)))


def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """Counts C[i, j] of samples with true label i predicted as j, for labels 0..num_classes-1.

    ``num_classes`` defaults to the largest label + 1 (scikit-learn uses the sorted labels present;
    both agree when every label in range occurs).
    """
    y_true, y_pred = _labels("confusion_matrix", y_true, y_pred)
    if num_classes is None:
        num_classes = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
    if y_true.size and min(y_true.min(), y_pred.min()) < 0:
        raise ValueError("confusion_matrix expected labels >= 0")
    if y_true.size and max(y_true.max(), y_pred.max()) >= num_classes:
        raise ValueError(f"confusion_matrix: a label is >= num_classes={num_classes}")
    counts = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)  # (true, predicted)


def precision(y_true, y_pred, average: str = "binary", num_classes: int | None = None,
              pos_label: int = 1, zero_division: float = 0.0) -> float:
    """tp / (tp + fp): of the samples predicted as a class, the fraction that belong to it.

    Args:
        average: ``"binary"`` (only ``pos_label``; labels must be binary), ``"macro"`` (unweighted
            mean over classes), ``"micro"`` (from the summed counts), ``"weighted"`` (mean weighted
            by each class's number of true samples).
        num_classes: classes 0..num_classes-1; default: the labels present in y_true or y_pred.
        zero_division: the value of a ratio whose denominator is 0.
    """
    return _score("precision", y_true, y_pred, average, num_classes, pos_label, zero_division)


def recall(y_true, y_pred, average: str = "binary", num_classes: int | None = None,
           pos_label: int = 1, zero_division: float = 0.0) -> float:
    """tp / (tp + fn): of the samples of a class, the fraction predicted as it (see precision)."""
    return _score("recall", y_true, y_pred, average, num_classes, pos_label, zero_division)


def f1_score(y_true, y_pred, average: str = "binary", num_classes: int | None = None,
             pos_label: int = 1, zero_division: float = 0.0) -> float:
    """2 tp / (2 tp + fp + fn), the harmonic mean of precision and recall (args: ``precision``)."""
    return _score("f1", y_true, y_pred, average, num_classes, pos_label, zero_division)


def mean_squared_error(y_true, y_pred) -> float:
    """mean((y_true - y_pred)^2) over all elements."""
    y_true, y_pred = _targets("mean_squared_error", y_true, y_pred)
    return float(np.mean((y_true - y_pred) ** 2))


def mean_absolute_error(y_true, y_pred) -> float:
    """mean(|y_true - y_pred|) over all elements."""
    y_true, y_pred = _targets("mean_absolute_error", y_true, y_pred)
    return float(np.mean(np.abs(y_true - y_pred)))


def r2_score(y_true, y_pred) -> float:
    """1 - sum((y - ŷ)^2) / sum((y - mean(y))^2), per output column, then averaged.

    A constant target scores 1 when predicted exactly and 0 otherwise (scikit-learn's rule).
    """
    y_true, y_pred = _targets("r2_score", y_true, y_pred)
    y_true = y_true.reshape(len(y_true), -1)  # (N, outputs)
    y_pred = y_pred.reshape(len(y_pred), -1)  # (N, outputs)
    residual = ((y_true - y_pred) ** 2).sum(axis=0)
    total = ((y_true - y_true.mean(axis=0)) ** 2).sum(axis=0)
    safe = np.where(total == 0, 1.0, total)
    scores = np.where(total == 0, np.where(residual == 0, 1.0, 0.0), 1 - residual / safe)
    return float(scores.mean())


# ----- helpers ------------------------------------------------------------------------------------
def _numpy(values) -> np.ndarray:
    if isinstance(values, Tensor):
        return values.numpy()
    if hasattr(values, "__cuda_array_interface__"):  # a CuPy array
        return backend.to_numpy(values)
    return np.asarray(values)


def _labels(name: str, y_true, y_pred) -> tuple:
    """Integer label arrays; (N, C) scores become labels by argmax."""
    y_true, y_pred = _numpy(y_true), _numpy(y_pred)
    if y_pred.ndim == y_true.ndim + 1:
        y_pred = y_pred.argmax(axis=-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{name} expected labels of shape {y_true.shape} or scores of shape "
                         f"{y_true.shape + ('C',)} as y_pred, got {y_pred.shape}")
    for what, values in (("y_true", y_true), ("y_pred", y_pred)):
        if values.dtype.kind == "f" and not np.all(values == np.round(values)):
            raise ValueError(f"{name} expected integer labels in {what}, got non-integer floats; "
                             "pass (N, C) scores, or threshold binary probabilities (p > 0.5)")
    return y_true.astype(np.int64).reshape(-1), y_pred.astype(np.int64).reshape(-1)


def _targets(name: str, y_true, y_pred) -> tuple:
    y_true, y_pred = _numpy(y_true).astype(np.float64), _numpy(y_pred).astype(np.float64)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"{name} expected y_true and y_pred of the same non-empty shape, got "
                         f"{y_true.shape} and {y_pred.shape}")
    return y_true, y_pred


def _divide(numerator, denominator, zero_division: float):
    safe = np.where(denominator == 0, 1, denominator)
    return np.where(denominator == 0, zero_division, numerator / safe)


def _score(kind: str, y_true, y_pred, average: str, num_classes, pos_label: int,
           zero_division: float) -> float:
    name = {"f1": "f1_score"}.get(kind, kind)
    if average not in AVERAGES:
        raise ValueError(f"{name}: average must be one of {AVERAGES}, got {average!r}")
    y_true, y_pred = _labels(name, y_true, y_pred)
    present = np.union1d(y_true, y_pred)
    if average == "binary":
        if len(present) > 2:
            raise ValueError(f"{name}: average='binary' needs at most 2 labels, got "
                             f"{present.tolist()}; choose average='macro', 'micro' or 'weighted'")
        labels = np.array([pos_label])
    else:
        labels = np.arange(num_classes) if num_classes is not None else present
    tp = np.array([np.sum((y_true == c) & (y_pred == c)) for c in labels], dtype=np.float64)
    predicted = np.array([np.sum(y_pred == c) for c in labels], dtype=np.float64)
    actual = np.array([np.sum(y_true == c) for c in labels], dtype=np.float64)
    if average == "micro":
        tp, predicted, actual = (a.sum(keepdims=True) for a in (tp, predicted, actual))
    if kind == "precision":
        per_class = _divide(tp, predicted, zero_division)
    elif kind == "recall":
        per_class = _divide(tp, actual, zero_division)
    else:
        per_class = _divide(2 * tp, predicted + actual, zero_division)
    if average == "weighted":
        return float(_divide(np.sum(per_class * actual), np.sum(actual), zero_division))
    return float(np.mean(per_class))
