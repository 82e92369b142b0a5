"""Every metric against scikit-learn on random inputs, as arrays, Tensors and scores."""
import numpy as np
import pytest
import sklearn.metrics as sk
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl import metrics

CLASSIFICATION = [(metrics.precision, sk.precision_score), (metrics.recall, sk.recall_score),
                  (metrics.f1_score, sk.f1_score)]


def draw_labels(seed, n, classes):
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((n, classes))
    return rng.integers(0, classes, n), rng.integers(0, classes, n), scores


@given(seed=st.integers(0, 2**16), n=st.integers(1, 40), classes=st.integers(2, 5),
       average=st.sampled_from(["macro", "micro", "weighted"]), as_tensor=st.booleans())
def test_multiclass_scores_match_sklearn(seed, n, classes, average, as_tensor):
    y_true, y_pred, _ = draw_labels(seed, n, classes)
    wrap = minidl.tensor if as_tensor else np.asarray
    for ours, theirs in CLASSIFICATION:
        expected = theirs(y_true, y_pred, average=average, zero_division=0.0)
        assert ours(wrap(y_true), wrap(y_pred), average=average) == pytest.approx(expected)
        every = list(range(classes + 1))  # a class that never occurs counts in macro averages
        expected = theirs(y_true, y_pred, average=average, labels=every, zero_division=0.0)
        got = ours(y_true, y_pred, average=average, num_classes=classes + 1)
        assert got == pytest.approx(expected)


@given(seed=st.integers(0, 2**16), n=st.integers(1, 30), pos_label=st.sampled_from([0, 1]))
def test_binary_scores_match_sklearn(seed, n, pos_label):
    y_true, y_pred, _ = draw_labels(seed, n, 2)
    for ours, theirs in CLASSIFICATION:
        expected = theirs(y_true, y_pred, pos_label=pos_label, zero_division=0.0)
        assert ours(y_true, y_pred, pos_label=pos_label) == pytest.approx(expected)


# from 3 classes: with 2, scikit-learn's top_k_accuracy_score switches to its binary mode
@given(seed=st.integers(0, 2**16), n=st.integers(1, 40), classes=st.integers(3, 6))
def test_accuracy_confusion_and_top_k_match_sklearn(seed, n, classes):
    y_true, y_pred, scores = draw_labels(seed, n, classes)
    assert metrics.accuracy(y_true, y_pred) == pytest.approx(sk.accuracy_score(y_true, y_pred))
    assert metrics.accuracy(y_true, minidl.tensor(scores)) == pytest.approx(
        sk.accuracy_score(y_true, scores.argmax(1)))
    np.testing.assert_array_equal(metrics.confusion_matrix(y_true, y_pred, num_classes=classes),
                                  sk.confusion_matrix(y_true, y_pred, labels=list(range(classes))))
    for k in range(1, classes):
        expected = sk.top_k_accuracy_score(y_true, scores, k=k, labels=list(range(classes)))
        assert metrics.top_k_accuracy(y_true, scores, k=k) == pytest.approx(expected)


@given(seed=st.integers(0, 2**16), n=st.integers(2, 30), outputs=st.integers(0, 3),
       constant=st.booleans())
def test_regression_metrics_match_sklearn(seed, n, outputs, constant):
    rng = np.random.default_rng(seed)
    shape = (n,) if outputs == 0 else (n, outputs)
    y_true = np.ones(shape) if constant else rng.standard_normal(shape)
    y_pred = y_true + rng.standard_normal(shape) * rng.random()
    pairs = [(metrics.mean_squared_error, sk.mean_squared_error),
             (metrics.mean_absolute_error, sk.mean_absolute_error), (metrics.r2_score, sk.r2_score)]
    for ours, theirs in pairs:
        assert ours(minidl.tensor(y_true), y_pred) == pytest.approx(theirs(y_true, y_pred))
    assert metrics.r2_score(y_true, y_true) == sk.r2_score(y_true, y_true) == 1.0


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"accuracy expected labels of shape \(3,\) or scores "
                                         r"of shape \(3, 'C'\) as y_pred, got \(4,\)"):
        metrics.accuracy([0, 1, 1], [0, 1, 1, 0])
    with pytest.raises(ValueError, match=r"non-integer floats.*\(p > 0.5\)"):
        metrics.accuracy([0, 1], [0.2, 0.9])
    with pytest.raises(ValueError, match=r"average='binary' needs at most 2 labels, got \[0, 1, 2"):
        metrics.f1_score([0, 1, 2], [0, 1, 1])
    with pytest.raises(ValueError, match="average must be one of"):
        metrics.recall([0, 1], [0, 1], average="samples")
    with pytest.raises(ValueError, match=r"top_k_accuracy expected .* got \(2,\) and \(2,\)"):
        metrics.top_k_accuracy([0, 1], [0.5, 0.5])
    with pytest.raises(ValueError, match="a label is >= num_classes=2"):
        metrics.confusion_matrix([0, 2], [0, 1], num_classes=2)
    with pytest.raises(ValueError, match=r"mean_squared_error expected .* same non-empty shape"):
        metrics.mean_squared_error([1.0, 2.0], [1.0])
