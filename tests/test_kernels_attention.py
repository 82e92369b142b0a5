"""The blocked attention kernels: the NumPy reference against the materialised definition, the
Numba and CUDA versions against the reference (forward and backward; no mask, causal, broadcast
bool and float masks with dead rows; sizes that are not multiples of the blocks; L != S; float32
and float64), in both kernel modes."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minidl.kernels import attention

TOLERANCE = {np.float32: {"rtol": 2e-5, "atol": 2e-6}, np.float64: {"rtol": 1e-12, "atol": 1e-13}}
# against the float64 definition: float32 rounding of E-long dots and S-long sums
DEFINITION_TOLERANCE = {np.float32: {"rtol": 1e-4, "atol": 1e-5},
                        np.float64: TOLERANCE[np.float64]}


def dense(q, k, v, mask, scale, causal, gy):
    """The definition on the whole (..., L, S) scores, in float64: (out, lse, gq, gk, gv)."""
    q, k, v, gy = (x.astype(np.float64) for x in (q, k, v, gy))
    s = q @ k.swapaxes(-1, -2) * scale  # (..., L, S)
    if mask is not None:
        s = np.where(mask, s, -np.inf) if mask.dtype == bool else s + mask
    if causal:
        s = np.where(np.tril(np.ones(s.shape[-2:], dtype=bool)), s, -np.inf)
    peak = s.max(axis=-1, keepdims=True, initial=-np.inf)
    exps = np.exp(s - np.where(np.isneginf(peak), 0, peak))
    total = exps.sum(axis=-1, keepdims=True)
    p = exps / np.where(total == 0, 1, total)  # a dead row: 0
    with np.errstate(divide="ignore"):
        lse = np.where(total == 0, np.inf, np.log(total) + peak)[..., 0]
    gp = gy @ v.swapaxes(-1, -2)
    gs = p * (gp - (gp * p).sum(axis=-1, keepdims=True))
    return (p @ v, lse, gs @ k * scale, gs.swapaxes(-1, -2) @ q * scale,
            p.swapaxes(-1, -2) @ gy)


def case(rng, dtype, batch, L, S, E, Ev, mask_kind, mask_batch):
    """q, k, v, gy and a mask (None, bool with a dead row, float with -inf) of broadcast shape."""
    q, k, v = (rng.standard_normal(batch + shape).astype(dtype)
               for shape in ((L, E), (S, E), (S, Ev)))
    gy = rng.standard_normal(batch + (L, Ev)).astype(dtype)
    shape = mask_batch + (L if L > 1 and rng.random() < 0.7 else 1, S)
    mask = None
    if mask_kind == "bool":
        mask = rng.random(shape) < 0.6
        mask[..., 0, :] = False  # query 0 (every query, if the mask broadcasts over L) sees none
    elif mask_kind == "float":
        mask = rng.standard_normal(shape).astype(dtype)
        mask[rng.random(shape) < 0.3] = -np.inf
    return q, k, v, gy, mask


def run(version, q, k, v, gy, mask, scale, causal):
    """(out, lse, gq, gk, gv) from a version's forward and backward."""
    forward, backward = version
    out, lse = forward(q, k, v, mask, scale, causal)
    return (out, lse) + tuple(backward(q, k, v, out, lse, gy, mask, scale, causal))


REFERENCE = (attention.flash_attention_forward_reference,
             attention.flash_attention_backward_reference)
NUMBA = (attention.flash_attention_forward_numba, attention.flash_attention_backward_numba)
DISPATCH = (attention.flash_attention_forward, attention.flash_attention_backward)
NAMES = ("out", "lse", "gq", "gk", "gv")


def assert_results(ours, expected, dtype, tolerance=TOLERANCE):
    for name, a, b in zip(NAMES, ours, expected):
        assert a.dtype == dtype and a.shape == b.shape, (name, a.dtype, a.shape, b.shape)
        np.testing.assert_allclose(a, b, err_msg=name, **tolerance[dtype])  # inf where b is


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 4 queries and 3 keys, so that a few rows span several blocks and ragged ends."""
    monkeypatch.setattr(attention, "BLOCK_Q", 4)
    monkeypatch.setattr(attention, "BLOCK_K", 3)


shapes = st.fixed_dictionaries({
    "batch": st.lists(st.integers(1, 3), max_size=2).map(tuple), "L": st.integers(1, 11),
    "S": st.integers(1, 11), "E": st.integers(1, 5), "Ev": st.integers(1, 4),
    "mask_kind": st.sampled_from(["none", "bool", "float", "causal"]),
    "mask_batched": st.booleans(), "scale": st.sampled_from([1.0, 0.37])})


def draw_case(shape, dtype, seed) -> tuple:
    """(q, k, v, gy, mask, scale, causal) for a drawn shape; a batched mask has the batch's
    trailing dims only, so it still broadcasts over the leading ones."""
    batch, causal = shape["batch"], shape["mask_kind"] == "causal"
    mask_batch = batch[len(batch) // 2:] if shape["mask_batched"] else ()
    q, k, v, gy, mask = case(np.random.default_rng(seed), dtype, batch, shape["L"], shape["S"],
                             shape["E"], shape["Ev"], "none" if causal else shape["mask_kind"],
                             mask_batch)
    return q, k, v, gy, mask, shape["scale"], causal


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_dispatch_matches_the_definition(small_blocks, kernel_mode, dtype, shape, seed):
    """Numba (auto) or the reference (reference mode) against the materialised definition."""
    args = draw_case(shape, dtype, seed)
    q, k, v, gy, mask, scale, causal = args
    assert_results(run(DISPATCH, *args), dense(q, k, v, mask, scale, causal, gy), dtype,
                   DEFINITION_TOLERANCE)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_numba_matches_reference(small_blocks, dtype, shape, seed):
    args = draw_case(shape, dtype, seed)
    assert_results(run(NUMBA, *args), run(REFERENCE, *args), dtype)


@pytest.mark.parametrize("causal", [False, True])
def test_default_blocks_with_ragged_ends(causal):
    """L = 70 and S = 131 with the default 64-row and 64-key blocks; a float32 case through Numba."""
    q, k, v, gy, _ = case(np.random.default_rng(1), np.float32, (2,), 70, 131, 8, 6, "none", ())
    expected = dense(q, k, v, None, 0.35, causal, gy)
    assert_results(run(DISPATCH, q, k, v, gy, None, 0.35, causal), expected, np.float32,
                   DEFINITION_TOLERANCE)


@pytest.mark.parametrize("version", [REFERENCE, NUMBA], ids=["reference", "numba"])
def test_no_keys_or_no_queries(version):
    """S = 0: every row is dead (out 0, lse +inf, zero gradients); L = 0: empty results."""
    rng = np.random.default_rng(2)
    q, k, v = rng.standard_normal((2, 3, 4)), np.zeros((2, 0, 4)), np.zeros((2, 0, 5))
    out, lse, gq, gk, gv = run(version, q, k, v, rng.standard_normal((2, 3, 5)), None, 0.5, False)
    assert (out == 0).all() and out.shape == (2, 3, 5) and (lse == np.inf).all()
    assert (gq == 0).all() and gk.shape == (2, 0, 4) and gv.shape == (2, 0, 5)
    results = run(version, q[:, :0], rng.standard_normal((2, 6, 4)),
                  rng.standard_normal((2, 6, 5)), np.zeros((2, 0, 5)), None, 0.5, True)
    assert [r.shape for r in results] == [(2, 0, 5), (2, 0), (2, 0, 4), (2, 6, 4), (2, 6, 5)]
    assert (results[3] == 0).all() and (results[4] == 0).all()


def test_errors_name_the_kernel_and_the_shapes():
    q, k, v = np.zeros((2, 3, 4)), np.zeros((2, 5, 4)), np.zeros((2, 5, 6))
    with pytest.raises(ValueError, match=r"flash_attention forward: .*\(2, 3, 4\), \(1, 5, 4\)"):
        attention.flash_attention_forward(q, k[:1], v[:1], None, 1.0, False)
    with pytest.raises(ValueError, match="one batch shape and dtype"):
        attention.flash_attention_forward(q, k, v.astype(np.float32), None, 1.0, False)
    with pytest.raises(ValueError, match=r"flash_attention backward: mask of shape \(4, 5\) "
                                         r"does not broadcast to \(2, 3, 5\)"):
        attention.flash_attention_backward(q, k, v, q[..., :1], q[..., 0], q, np.ones((4, 5), bool),
                                           1.0, False)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("head", [5, attention.HEAD_MAX + 1], ids=["kernel", "reference-fallback"])
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_cupy_matches_reference(dtype, head, shape, seed):
    import cupy

    q, k, v, gy, mask, scale, causal = draw_case({**shape, "E": head}, dtype, seed)
    expected = run(REFERENCE, q, k, v, gy, mask, scale, causal)
    on_gpu = [None if x is None else cupy.asarray(x) for x in (q, k, v, gy, mask)]
    ours = run(DISPATCH, *on_gpu, scale, causal)
    assert all(isinstance(x, cupy.ndarray) for x in ours)
    assert_results([cupy.asnumpy(x) for x in ours], expected, dtype, DEFINITION_TOLERANCE)
