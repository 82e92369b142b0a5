"""Fused softmax cross-entropy kernels: Numba equals the NumPy reference (the CUDA sources compile:
tests/test_kernels_cuda.py)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from minidl.kernels import cross_entropy as ce

from minidl import kernels

TOLERANCE = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


def _case(rng, rows, classes, dtype, ignore_index, weighted, scale=3.0):
    logits = (rng.standard_normal((rows, classes)) * scale).astype(dtype)
    target = rng.integers(0, classes, rows)
    target[rng.random(rows) < 0.3] = ignore_index
    weight = (rng.random(classes) + 0.1 if weighted else np.ones(classes)).astype(dtype)
    grow = rng.standard_normal(rows).astype(dtype)
    return logits, target, weight, grow


def _assert_numba_matches_reference(logits, target, weight, grow, ignore_index, smoothing, loops):
    parallel, backward_loop, blocks = loops
    dtype = logits.dtype.type
    loss_ref, probs_ref = ce.forward_reference(logits, target, weight, ignore_index, smoothing)
    loss, probs = ce.forward_passes(parallel, logits, target, weight, ignore_index, smoothing,
                                    min(blocks, len(logits)))
    np.testing.assert_allclose(loss, loss_ref, **TOLERANCE[dtype])
    np.testing.assert_allclose(probs, probs_ref, **TOLERANCE[dtype])
    gx_ref = ce.backward_reference(probs_ref, target, weight, ignore_index, smoothing, grow)
    gx = np.empty_like(probs)
    backward_loop(probs, target, weight, ignore_index, smoothing, grow, gx)
    np.testing.assert_allclose(gx, gx_ref, **TOLERANCE[dtype])
    assert loss.dtype == probs.dtype == gx.dtype == logits.dtype


# the parallel loop splits the rows into blocks (here 3, to make them uneven)
LOOPS = {"serial": (False, ce._backward_serial, 1), "parallel": (True, ce._backward_parallel, 3)}


@pytest.mark.parametrize("loops", LOOPS.values(), ids=LOOPS.keys())
@given(rows=st.integers(1, 9), classes=st.integers(1, 8), dtype=st.sampled_from([np.float32, np.float64]),
       ignore_index=st.sampled_from([-100, 0]), weighted=st.booleans(),
       smoothing=st.sampled_from([0.0, 0.1, 1.0]), seed=st.integers(0, 2**16))
def test_numba_matches_reference(loops, rows, classes, dtype, ignore_index, weighted, smoothing, seed):
    logits, target, weight, grow = _case(np.random.default_rng(seed), rows, classes, dtype,
                                         ignore_index, weighted)
    _assert_numba_matches_reference(logits, target, weight, grow, ignore_index, smoothing, loops)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dispatch_takes_the_parallel_path_on_large_inputs(dtype):
    classes = 700
    rows = ce.PARALLEL_MIN_SIZE // classes + 3
    logits, target, weight, grow = _case(np.random.default_rng(1), rows, classes, dtype, -100, True)
    loss, probs = ce.softmax_cross_entropy_forward(logits, target, weight, -100, 0.2)
    loss_ref, probs_ref = ce.forward_reference(logits, target, weight, -100, 0.2)
    np.testing.assert_allclose(loss, loss_ref, **TOLERANCE[dtype])
    gx = ce.softmax_cross_entropy_backward(probs, target, weight, -100, 0.2, grow)
    np.testing.assert_allclose(gx, ce.backward_reference(probs_ref, target, weight, -100, 0.2, grow),
                               **TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["auto", "reference"])
def test_extreme_logits_stay_finite(dtype, mode):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [3e4, 3e4, -3e4]], dtype=dtype)
    target = np.array([1, 2, 0])
    weight = np.ones(3, dtype=dtype)
    with kernels.use(mode):
        loss, probs = ce.softmax_cross_entropy_forward(logits, target, weight, -100, 0.1)
        gx = ce.softmax_cross_entropy_backward(probs, target, weight, -100, 0.1, np.ones(3, dtype))
    assert np.isfinite(loss).all() and np.isfinite(gx).all()
    np.testing.assert_allclose(loss[0], 0.9 * 2e4 + 0.1 / 3 * 3e4, rtol=1e-6)  # (1-ε)·2e4 + ε/C·(0 + 2e4 + 1e4)
    np.testing.assert_allclose(loss[1], np.log(3), rtol=1e-6)


def test_edge_cases_all_ignored_and_single_class():
    rng = np.random.default_rng(2)
    for rows, classes, ignore_index in ((4, 3, -100), (5, 1, -100), (3, 4, 2)):
        logits, target, weight, grow = _case(rng, rows, classes, np.float64, ignore_index, True)
        if rows == 4:
            target[:] = ignore_index
        for loops in LOOPS.values():
            _assert_numba_matches_reference(logits, target, weight, grow, ignore_index, 0.3, loops)
    loss, probs = ce.forward_numba(logits, np.full(3, 2), weight, 2, 0.0)
    assert (loss == 0).all()
    assert (ce.backward_numba(probs, np.full(3, 2), weight, 2, 0.0, np.ones(3)) == 0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_nonpositive_is_within_one_ulp(dtype):
    rng = np.random.default_rng(0)
    cutoff = {np.float32: -86.0, np.float64: -707.0}[dtype]
    y = np.concatenate([-rng.exponential(5.0, 5000), rng.uniform(cutoff, 0, 5000),
                        [0.0, -0.0, cutoff, cutoff - 1, -np.inf, np.nan]]).astype(dtype)
    out = np.empty_like(y)
    ce.exp_nonpositive(y, out)
    exact = np.exp(y.astype(np.longdouble))
    normal = y >= cutoff
    ulps = np.abs(out[normal] - exact[normal]) / (exact[normal] * np.finfo(dtype).eps)
    assert ulps.max() <= 1.0
    assert (out[y < cutoff] == 0).all()  # below the cutoff (and -inf): 0
    assert np.isnan(out[-1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_exp_matches_numpy_exp_on_shifted_scores_in_both_modes(dtype, kernel_mode):
    rng = np.random.default_rng(3)
    scores = rng.normal(0, 30, (3, 5, 7, 33)).astype(dtype)
    scores[0, 0, 0] = -np.inf  # a dead row, shifted as the softmax shifts it (peak 0)
    scores -= np.where(np.isneginf(scores.max(-1, keepdims=True)), 0, scores.max(-1, keepdims=True))
    got = ce.softmax_exp(scores)
    assert got.shape == scores.shape and got.dtype == scores.dtype and got is not scores
    # below the cutoff (exp(-86) in float32) the kernel gives 0 where NumPy gives a subnormal
    tiny = 0 if kernel_mode == "reference" else 4 * np.finfo(dtype).tiny
    np.testing.assert_allclose(got, np.exp(scores), rtol=4 * np.finfo(dtype).eps, atol=tiny)
    assert np.all(got[0, 0, 0] == 0)
