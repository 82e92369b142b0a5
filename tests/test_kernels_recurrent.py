"""LSTM / GRU gate kernels: Numba against the NumPy reference (float32, float64), edge cases, CUDA."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minidl.kernels import recurrent as kernels

TOLERANCE = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-14)}


def lstm_arrays(rng, B, H, dtype, scale):
    """Inputs of the LSTM forward and backward kernels and fresh output buffers."""
    draw = lambda *shape: (rng.standard_normal(shape) * scale).astype(dtype)  # noqa: E731
    gates = np.concatenate([rng.uniform(0, 1, (B, 2 * H)), rng.uniform(-1, 1, (B, H)),
                            rng.uniform(0, 1, (B, H))], axis=1).astype(dtype)  # i f in (0, 1), g in (-1, 1)
    return dict(xw=draw(B, 4 * H), hw=draw(B, 4 * H), c=draw(B, H), c_new=draw(B, H), gh=draw(B, H),
                gc=draw(B, H), gates=gates)


def run_lstm(implementation, a):
    B, H = a["c"].shape
    h, c, gates = (np.full((B, n), np.nan, a["c"].dtype) for n in (H, H, 4 * H))
    implementation[0](a["xw"], a["hw"], a["c"], h, c, gates)
    g_pre, gc = np.full((B, 4 * H), np.nan, a["c"].dtype), np.full((B, H), np.nan, a["c"].dtype)
    implementation[1](a["gates"], a["c"], a["c_new"], a["gh"], a["gc"], g_pre, gc)
    return dict(h=h, c=c, gates=gates, g_pre=g_pre, gc=gc)


def run_gru(implementation, a):
    B, H = a["c"].shape
    xw, hw = a["xw"][:, :3 * H].copy(), a["hw"][:, :3 * H].copy()
    h, gates = np.full((B, H), np.nan, xw.dtype), np.full((B, 3 * H), np.nan, xw.dtype)
    implementation[0](xw, hw, a["c"], h, gates)
    g_xw, g_hw = np.full((B, 3 * H), np.nan, xw.dtype), np.full((B, 3 * H), np.nan, xw.dtype)
    gh = np.full((B, H), np.nan, xw.dtype)
    implementation[1](a["gates"][:, :3 * H].copy(), hw, a["c"], a["gh"], g_xw, g_hw, gh)
    return dict(h=h, gates=gates, g_xw=g_xw, g_hw=g_hw, gh=gh)


CELLS = {
    "lstm": (run_lstm, (kernels.lstm_cell_forward_reference, kernels.lstm_cell_backward_reference),
             (kernels.lstm_cell_forward_numba, kernels.lstm_cell_backward_numba)),
    "gru": (run_gru, (kernels.gru_cell_forward_reference, kernels.gru_cell_backward_reference),
            (kernels.gru_cell_forward_numba, kernels.gru_cell_backward_numba)),
}


def assert_same(ours, reference, dtype):
    for name in reference:
        assert not np.isnan(ours[name]).any(), f"{name}: an output element was not written"
        np.testing.assert_allclose(ours[name], reference[name], err_msg=name, **TOLERANCE[dtype])


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(B=st.integers(1, 5), H=st.integers(1, 9), scale=st.sampled_from([0.1, 1.0, 4.0]),
       seed=st.integers(0, 2**16))
def test_numba_matches_reference(cell, dtype, B, H, scale, seed):
    run, reference, numba = CELLS[cell]
    a = lstm_arrays(np.random.default_rng(seed), B, H, dtype, scale)
    assert_same(run(numba, a), run(reference, a), dtype)


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_wide_rows(cell, dtype):
    """H = 133: each gate loop's vectorised body and its remainder (H ≤ 9 runs only the latter)."""
    run, reference, numba = CELLS[cell]
    a = lstm_arrays(np.random.default_rng(3), 2, 133, dtype, 2.0)
    assert_same(run(numba, a), run(reference, a), dtype)


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_saturation_and_zeros(cell, dtype):
    """Pre-activations of ±100 saturate the gates without inf or nan; zeros give σ = 1/2, tanh = 0."""
    run, reference, numba = CELLS[cell]
    a = lstm_arrays(np.random.default_rng(0), 3, 4, dtype, 1.0)
    a["xw"][0], a["xw"][1], a["xw"][2] = 100, -100, 0
    a["hw"][2] = 0
    ours = run(numba, a)
    assert all(np.isfinite(v).all() for v in ours.values())
    assert_same(ours, run(reference, a), dtype)
    np.testing.assert_array_equal(ours["gates"][2, :2 * 4], 0.5)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_empty_batch(cell):
    run, reference, numba = CELLS[cell]
    a = lstm_arrays(np.random.default_rng(0), 0, 3, np.float32, 1.0)
    assert all(v.shape[0] == 0 for v in run(numba, a).values())


def test_in_place_cell_gradient():
    """lstm_cell_backward documents that gc_out may be gc itself."""
    a = lstm_arrays(np.random.default_rng(1), 2, 3, np.float64, 1.0)
    expected = run_lstm(CELLS["lstm"][1], a)["gc"]
    for backward in (kernels.lstm_cell_backward_reference, kernels.lstm_cell_backward_numba):
        gc = a["gc"].copy()
        backward(a["gates"], a["c"], a["c_new"], a["gh"], gc, np.empty((2, 12)), gc)
        np.testing.assert_allclose(gc, expected, rtol=1e-12)


def test_float32_tanh_is_accurate():
    """The vectorisable rational tanh of the float32 kernels, on a dense grid and far out."""
    x = np.concatenate([np.linspace(-12, 12, 200_001), [-1e30, -50, 0.0, 1e-30, 50, 1e30]]).astype(np.float32)
    ours = np.array([kernels._tanh_float32(v) for v in x[::97]] + [kernels._tanh_float32(v) for v in x[-6:]])
    exact = np.tanh(np.concatenate([x[::97], x[-6:]]).astype(np.float64))
    np.testing.assert_allclose(ours, exact, rtol=1e-6, atol=5e-7)
    assert np.all(np.abs(ours) <= 1)


@pytest.mark.gpu
@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cupy_matches_reference(cell, dtype):
    import cupy

    run, reference, _ = CELLS[cell]
    a = lstm_arrays(np.random.default_rng(0), 5, 7, dtype, 2.0)
    expected = run(reference, a)
    gpu = tuple(getattr(kernels, f"{cell}_cell_{d}_cupy") for d in ("forward", "backward"))

    def on_device(fn):
        def call(*arrays):
            device = [cupy.asarray(x) for x in arrays]
            fn(*device)
            for host, dev in zip(arrays, device):
                host[...] = cupy.asnumpy(dev)
        return call

    assert_same(run(tuple(on_device(f) for f in gpu), a), expected, dtype)
