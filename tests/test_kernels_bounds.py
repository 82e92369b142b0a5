"""No kernel reads or writes out of bounds, on any input (issue 13, item 1).

Bad indices (cross-entropy targets, a max-pool argmax, scatter rows) and arrays of the wrong shape
must raise a Python exception that names the kernel, in both kernel modes. Every call that could
crash the interpreter without the checks runs in a fresh one (``run_python``): a death by signal
fails the test. The fuzzers are hypothesis tests run there, each comparing the compiled kernel
with its reference on random shapes and index values (in range, negative, huge). Also here, found
while timing the checks: the serial cross-entropy loop no longer loads the parallel one's cache.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from minidl.kernels import cross_entropy, im2col, norms, optim, pooling, recurrent, scatter

from minidl import kernels

HERE = Path(__file__).parent
CLEAR_ERRORS = (IndexError, ValueError, TypeError)


def run_python(code: str, mode: str = "auto") -> tuple:
    """Run ``code`` in a fresh interpreter under ``MINIDL_KERNELS=mode``: (its stdout, None), or
    (its stdout, what went wrong) when it failed or died by a signal."""
    path = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, MINIDL_KERNELS=mode, PYTHONPATH=path)
    result = subprocess.run([sys.executable, "-X", "faulthandler", "-c", code], capture_output=True,
                            text=True, env=env, timeout=600)
    if result.returncode == 0:
        return result.stdout, None
    how = (f"died by signal {-result.returncode}" if result.returncode < 0 else
           f"exited with status {result.returncode}")
    return result.stdout, f"the interpreter {how}:\n{result.stderr[-4000:]}"


def outcomes(cases: str, mode: str = "auto") -> dict:
    """name -> [exception type or "ok", message] for each case of ``cases`` (a function of this
    module returning names and zero-argument calls), all run in one fresh interpreter; under None,
    how it failed if it did (the cases after the one that crashed it are missing)."""
    code = (f"import json, test_kernels_bounds as t\n"
            f"for name, run in t.{cases}().items():\n"
            f"    print(json.dumps([name] + t.outcome(run)), flush=True)\n")
    stdout, failure = run_python(code, mode)
    results = {line[0]: line[1:] for line in map(json.loads, stdout.splitlines())}
    return {**results, None: failure}


def outcome(run) -> list:
    """[exception type or "ok", message] of ``run()``."""
    try:
        run()
    except Exception as error:  # noqa: BLE001 (the test judges it)
        return [type(error).__name__, str(error)]
    return ["ok", ""]


# ----- the reproducers of the issue, through the ops and autograd ---------------------------------
def reproducers() -> dict:
    import minidl
    import minidl.nn.functional as F

    def cross_entropy_backward(bad):
        def run():
            x = minidl.randn(64, 10, requires_grad=True)
            t = minidl.randint(0, 10, (64,))
            loss = F.cross_entropy(x, t)
            t.fill_(bad)  # the kernel's saved target is this tensor's data
            loss.backward()
            assert bad != -100 or not x.grad.numpy().any(), "ignored rows get no gradient"
        return run

    def max_pool_backward(bad):
        def run():
            x = minidl.randn(2, 3, 8, 8, requires_grad=True)
            y, idx = F.max_pool2d(x, 2, return_indices=True)
            idx.fill_(bad)  # the argmax the backward scatters to
            y.sum().backward()
        return run

    cases = {f"cross_entropy {bad}": cross_entropy_backward(bad)
             for bad in (10**12, 10, -1, -(10**12), -100)}
    cases.update({f"max_pool2d {bad}": max_pool_backward(bad) for bad in (10**12, 64, -1)})
    return cases


REPRODUCED = {  # the kernel's error for each case, or "ok"
    "cross_entropy 1000000000000": "cross_entropy: target 1000000000000 is out of bounds",
    "cross_entropy 10": "cross_entropy: target 10 is out of bounds: expected 0 <= target < 10 "
                        "(or ignore_index=-100)",
    "cross_entropy -1": "cross_entropy: target -1 is out of bounds",
    "cross_entropy -1000000000000": "cross_entropy: target -1000000000000 is out of bounds",
    "cross_entropy -100": "ok",
    "max_pool2d 1000000000000": "max_pool backward: invalid max index 1000000000000 for input "
                                "planes of size 1x8x8 (64 elements)",
    "max_pool2d 64": "max_pool backward: invalid max index 64",
    "max_pool2d -1": "max_pool backward: invalid max index -1",
}


@pytest.mark.parametrize("mode", ["auto", "reference"])
def test_reproducers_raise_instead_of_crashing(mode):
    results = outcomes("reproducers", mode)
    for name, expected in REPRODUCED.items():
        assert name in results, f"{name}: not run: {results[None]}"
        kind, message = results[name]
        if expected == "ok":
            assert kind == "ok", f"{name}: {kind}: {message}"
        elif not (kind == "RuntimeError" and "inplace" in message):  # autograd may catch it first
            assert kind == "IndexError" and message.startswith(expected), (name, kind, message)


# ----- every other guard, one bad argument at a time ----------------------------------------------
def _filled(*shape):
    return np.full(shape, np.nan, dtype=np.float32)


def _cells(B=3, H=4) -> dict:
    """The recurrent kernels' arguments at (B, H), each call with one array of a wrong shape."""
    rng = np.random.default_rng(0)

    def draw(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    stacked4, stacked3, state = draw(B, 4 * H), draw(B, 3 * H), draw(B, H)
    return {
        "lstm_cell_forward xw": lambda: recurrent.lstm_cell_forward(
            draw(B, 4 * H - 1), stacked4, state, _filled(B, H), _filled(B, H), _filled(B, 4 * H)),
        "lstm_cell_forward c_out": lambda: recurrent.lstm_cell_forward(
            stacked4, stacked4, state, _filled(B, H), _filled(B - 1, H), _filled(B, 4 * H)),
        "lstm_cell_backward gates": lambda: recurrent.lstm_cell_backward(
            draw(B, 3 * H), state, state, state, state, _filled(B, 4 * H), _filled(B, H)),
        "lstm_cell_backward gc_out": lambda: recurrent.lstm_cell_backward(
            stacked4, state, state, state, state, _filled(B, 4 * H), _filled(1, H)),
        "gru_cell_forward hw": lambda: recurrent.gru_cell_forward(
            stacked3, draw(B, 3 * H + 5), state, _filled(B, H), _filled(B, 3 * H)),
        "gru_cell_backward gh": lambda: recurrent.gru_cell_backward(
            stacked3, stacked3, state, draw(B, H - 1), _filled(B, 3 * H), _filled(B, 3 * H),
            _filled(B, H)),
        "lstm_cell_forward writes nothing": _rejected_call_writes_nothing,
    }


def _rejected_call_writes_nothing(B=2, H=3):
    h_out, c_out, gates = _filled(B, H), _filled(B, H), _filled(B, 4 * H)
    try:
        recurrent.lstm_cell_forward(np.zeros((B, 4 * H), np.float32),
                                    np.zeros((B, 4 * H + 1), np.float32),
                                    np.zeros((B, H), np.float32), h_out, c_out, gates)
    finally:  # an AssertionError here takes the ValueError's place
        assert np.isnan(h_out).all() and np.isnan(c_out).all() and np.isnan(gates).all()


def guards() -> dict:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5)).astype(np.float32)
    rows = rng.standard_normal((4, 6)).astype(np.float32)
    ones = np.ones(3, np.float32)
    p, zeros = np.ones((4, 5), np.float32), np.zeros((4, 5), np.float32)
    adam = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, step=1, work=np.empty_like(p))
    planes = rng.standard_normal((2, 1, 6, 6)).astype(np.float32)
    geometry = dict(kernel=(1, 2, 2), padding=(0, 0, 0), dilation=(1, 1, 1), out_size=(1, 3, 3))
    col = rng.standard_normal((2, 3, 3, 1, 4, 4)).astype(np.float32)
    return {
        **_cells(),
        "exp_nonpositive out": lambda: cross_entropy.exp_nonpositive(-np.ones(9), np.empty(4)),
        "max_pool_forward stride 0": lambda: pooling.max_pool_forward(
            planes, stride=(1, 0, 2), **geometry),
        "max_pool_forward stride -2": lambda: pooling.max_pool_forward(
            planes, stride=(1, -2, -2), **geometry),
        "max_pool_backward float index": lambda: pooling.max_pool_backward(
            np.ones((2, 1, 3, 3)), np.zeros((2, 1, 3, 3)), (1, 6, 6)),
        "col2im stride -1": lambda: im2col.col2im(col, (6, 6), (1, -1), (0, 0), (1, 1)),
        "col2im dilation -3": lambda: im2col.col2im(col, (6, 6), (1, 1), (0, 0), (-3, 1)),
        "col2im 4 dims": lambda: im2col.col2im_numba(col[..., None, None], (6, 6, 1, 1),
                                                     (1,) * 4, (0,) * 4, (1,) * 4),
        "batch_norm_forward weight": lambda: norms.batch_norm_forward(x, ones[:2], ones, 1e-5),
        "batch_norm_backward inv_std": lambda: norms.batch_norm_backward(x, x, ones[:1], ones),
        "batch_norm_backward x_hat": lambda: norms.batch_norm_backward(x, x[:1], ones, None),
        "layer_norm_forward bias": lambda: norms.layer_norm_forward(rows, None, np.ones(7), 1e-5),
        "layer_norm_backward rstd": lambda: norms.layer_norm_backward(rows, rows, ones, None),
        "adam_update g": lambda: optim.adam_update(p, p[:2], zeros.copy(), zeros.copy(), None,
                                                   **adam),
        "adam_update v_max": lambda: optim.adam_update(p, p, zeros.copy(), zeros.copy(),
                                                       zeros[:, :1].copy(), **adam),
    }


GUARDED = {  # the exception type and the start of its message
    "lstm_cell_forward xw": ("ValueError", "lstm_cell_forward: expected xw of shape (3, 16) for c "
                                           "of shape (3, 4), got (3, 15)"),
    "lstm_cell_forward c_out": ("ValueError", "lstm_cell_forward: expected c_out of shape (3, 4)"),
    "lstm_cell_backward gates": ("ValueError", "lstm_cell_backward: expected gates of shape "
                                               "(3, 16)"),
    "lstm_cell_backward gc_out": ("ValueError", "lstm_cell_backward: expected gc_out of shape "
                                                "(3, 4)"),
    "gru_cell_forward hw": ("ValueError", "gru_cell_forward: expected hw of shape (3, 12)"),
    "gru_cell_backward gh": ("ValueError", "gru_cell_backward: expected gh of shape (3, 4)"),
    "lstm_cell_forward writes nothing": ("ValueError", "lstm_cell_forward: expected hw of shape"),
    "exp_nonpositive out": ("ValueError", "exp_nonpositive: expected out of shape (9,)"),
    "max_pool_forward stride 0": ("ValueError", "max_pool forward: expected a stride >= 1"),
    "max_pool_forward stride -2": ("ValueError", "max_pool forward: expected a stride >= 1"),
    "max_pool_backward float index": ("TypeError", "max_pool backward: expected an integer index"),
    "col2im stride -1": ("ValueError", "col2im: expected strides and dilations >= 1"),
    "col2im dilation -3": ("ValueError", "col2im: expected strides and dilations >= 1"),
    "col2im 4 dims": ("ValueError", "col2im: the compiled and CUDA kernels take 1 to 3"),
    "batch_norm_forward weight": ("ValueError", "batch_norm forward: expected weight of shape "
                                                "(3,)"),
    "batch_norm_backward inv_std": ("ValueError", "batch_norm backward: expected inv_std of shape"),
    "batch_norm_backward x_hat": ("ValueError", "batch_norm backward: expected x_hat of shape"),
    "layer_norm_forward bias": ("ValueError", "layer_norm forward: expected bias of shape (6,)"),
    "layer_norm_backward rstd": ("ValueError", "layer_norm backward: expected rstd of shape (4,)"),
    "adam_update g": ("ValueError", "adam_update: expected g of p's shape (4, 5)"),
    "adam_update v_max": ("ValueError", "adam_update: expected v_max of p's shape (4, 5)"),
}


@pytest.fixture(scope="module")
def guarded():
    return outcomes("guards")


@pytest.mark.parametrize("case", sorted(GUARDED))
def test_wrong_shapes_and_geometry_raise(guarded, case):
    assert case in guarded, f"{case}: not run: {guarded[None]}"
    kind, message = guarded[case]
    assert kind == GUARDED[case][0] and message.startswith(GUARDED[case][1]), guarded[case]


def test_adam_updates_strided_state_in_place():
    # reshape(-1) of a strided m copies: the compiled update must not write into that copy
    p, g = np.ones((4, 6), np.float32), np.full((4, 6), 0.5, np.float32)
    m_base, v = np.zeros((4, 12), np.float32), np.zeros((4, 6), np.float32)
    m, expected_m, expected_v = m_base[:, :6], np.zeros((4, 6), np.float32), v.copy()
    expected_p = p.copy()
    adam = dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, step=1, work=np.empty_like(p))
    optim.adam_update(expected_p, g, expected_m, expected_v, None, **adam)
    optim.adam_update(p, g, m, v, None, **adam)
    np.testing.assert_array_equal(m, expected_m)
    np.testing.assert_array_equal(p, expected_p)


@pytest.mark.parametrize("mode", ["auto", "reference"])
def test_ignore_index_rows_stay_allowed(mode):
    logits = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    weight = np.ones(4, np.float32)
    for ignore_index, target in ((-100, [0, -100, 3, -100, 1]), (2, [2, 2, 0, 3, 2]),
                                 (7, [7, 0, 7, 7, 3])):
        target = np.array(target)
        with kernels.use(mode):
            loss, probs = cross_entropy.softmax_cross_entropy_forward(logits, target, weight,
                                                                      ignore_index, 0.1)
            gx = cross_entropy.softmax_cross_entropy_backward(probs, target, weight, ignore_index,
                                                              0.1, np.ones(5, np.float32))
        ignored = target == ignore_index
        assert not loss[ignored].any() and not gx[ignored].any()
        assert (loss[~ignored] > 0).all() and gx[~ignored].any(axis=1).all()


CACHED_LOOP = """
import numpy as np
from minidl.kernels import cross_entropy as ce
loop = ce._backward_{variant}
loop(np.zeros((3, 4)), np.array([0, 1, -100]), np.ones(4), -100, 0.0, np.ones(3), np.empty((3, 4)))
print(sum(loop.stats.cache_hits.values()))
"""


def test_the_serial_loop_does_not_load_the_parallel_one_from_the_cache(tmp_path, monkeypatch):
    # the serial and parallel cross-entropy loops are one function compiled twice, which Numba's
    # cache filed under one name: the serial call then ran the cached parallel code, 3x slower
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    _, failure = run_python(CACHED_LOOP.format(variant="parallel"))
    assert failure is None, failure
    hits, failure = run_python(CACHED_LOOP.format(variant="serial"))
    assert failure is None, failure
    assert hits.strip() == "0", "the serial loop was loaded from the parallel one's cache entry"


# ----- fuzzers: run in a fresh interpreter by test_fuzz, not collected here -----------------------
HUGE = [-(2**63), -(2**62), -(10**12), -100, 10**12, 2**62, 2**63 - 1]
INDEX_DTYPES = [np.int64, np.int32, np.uint64]


def indices(draw, count: int, low: int, high: int, valid_only: bool) -> list:
    """``count`` indices in [low, high), or also just outside it and huge unless ``valid_only``
    (or the range is empty)."""
    outside = st.one_of(st.integers(low - 3, high + 3), st.sampled_from(HUGE))
    inside = st.integers(low, high - 1) if high > low else outside
    return draw(st.lists(inside if valid_only else st.one_of(inside, outside),
                         min_size=count, max_size=count))


def as_index(values: list, dtype) -> np.ndarray:
    """``values`` as an array of ``dtype``, wrapping the ones that do not fit (more bad values)."""
    return np.array(values, dtype=np.int64).astype(dtype)


def _result(run):
    try:
        return run(), None
    except CLEAR_ERRORS as error:  # any other exception fails the fuzzer
        return None, error


def compare(fast, reference, kernel: str, **tolerance) -> bool:
    """The fast call's result (a tuple of arrays) equals the reference's (True), or both raise a
    clear error, the fast one's message naming the kernel (False). (Their types may differ where
    two things are wrong and each checks another first.)"""
    fast_result, fast_error = _result(fast)
    reference_result, reference_error = _result(reference)
    if fast_error is None and reference_error is None:
        for ours, theirs in zip(fast_result, reference_result, strict=True):
            np.testing.assert_allclose(ours, theirs, **tolerance)
        return True
    assert fast_error is not None and reference_error is not None, (fast_error, reference_error)
    assert str(fast_error).startswith(kernel), fast_error
    return False


def in_mode(mode, run):
    """``run`` under kernel mode ``mode``."""
    def call():
        with kernels.use(mode):
            return run()
    return call


@given(rows=st.integers(0, 6), classes=st.integers(0, 5), valid_only=st.booleans(),
       ignore_index=st.sampled_from([-100, 0, 3]), smoothing=st.sampled_from([0.0, 0.2]),
       dtype=st.sampled_from([np.float32, np.float64]), index_dtype=st.sampled_from(INDEX_DTYPES),
       wrong=st.sampled_from([None, None, None, "target", "weight", "grow"]),
       parallel_min_size=st.sampled_from([0, cross_entropy.PARALLEL_MIN_SIZE]), data=st.data())
def fuzz_cross_entropy(rows, classes, valid_only, ignore_index, smoothing, dtype, index_dtype,
                       wrong, parallel_min_size, data):
    cross_entropy.PARALLEL_MIN_SIZE = parallel_min_size  # 0: the parallel loops on small inputs
    rng = np.random.default_rng(rows * 10 + classes)
    logits = rng.standard_normal((rows, classes)).astype(dtype)
    values = indices(data.draw, rows, 0, classes, valid_only)
    values = [ignore_index if data.draw(st.booleans()) else v for v in values]
    shape = {name: (n + (name == wrong),) for name, n in
             (("target", rows), ("weight", classes), ("grow", rows))}
    target = as_index((values + [0])[:shape["target"][0]], index_dtype)
    weight = (rng.random(shape["weight"]) + 0.5).astype(dtype)
    grow = rng.standard_normal(shape["grow"]).astype(dtype)
    exps = np.exp(logits - logits.max(axis=1, keepdims=True)) if classes else logits
    probs = exps / exps.sum(axis=1, keepdims=True) if classes else logits
    print(f"cross_entropy {logits.shape} {target.dtype} {target.tolist()} {weight.shape} "
          f"{grow.shape}", file=sys.stderr)  # the example a crash would stop at
    tolerance = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    for call in (lambda: cross_entropy.softmax_cross_entropy_forward(
                     logits, target, weight, ignore_index, smoothing),
                 lambda: (cross_entropy.softmax_cross_entropy_backward(
                     probs, target, weight, ignore_index, smoothing, grow),)):
        compare(in_mode("auto", call), in_mode("reference", call), "cross_entropy", **tolerance)


@given(B=st.integers(0, 3), in_size=st.tuples(*[st.integers(0, 3)] * 3),
       out_size=st.tuples(*[st.integers(0, 3)] * 3), valid_only=st.booleans(),
       index_dtype=st.sampled_from(INDEX_DTYPES), wrong_shape=st.booleans(), data=st.data())
def fuzz_max_pool_backward(B, in_size, out_size, valid_only, index_dtype, wrong_shape, data):
    plane = int(np.prod(in_size))
    shape = (B,) + out_size
    count = int(np.prod(shape)) + (2 if wrong_shape else 0)
    index = as_index(indices(data.draw, count, 0, plane, valid_only), index_dtype)
    index = index.reshape(shape) if not wrong_shape else index.reshape(count, 1, 1, 1)
    gy = np.random.default_rng(count).standard_normal(shape).astype(np.float32)
    print(f"max_pool_backward {gy.shape} {index.dtype} {index.tolist()} {in_size}", file=sys.stderr)

    def call():
        return (pooling.max_pool_backward(gy, index, in_size),)

    compare(in_mode("auto", call), in_mode("reference", call), "max_pool backward", rtol=1e-6)


@given(rows=st.integers(0, 5), trailing=st.lists(st.integers(0, 3), max_size=2),
       index_shape=st.lists(st.integers(0, 4), max_size=2), valid_only=st.booleans(),
       index_dtype=st.sampled_from(INDEX_DTYPES),
       values_shape=st.sampled_from(["full", "row", "scalar", "wrong"]), strided=st.booleans(),
       data=st.data())
def fuzz_index_add(rows, trailing, index_shape, valid_only, index_dtype, values_shape, strided,
                   data):
    rng = np.random.default_rng(rows)
    count = int(np.prod(index_shape))
    index = as_index(indices(data.draw, count, -rows, rows, valid_only), index_dtype)
    index = index.reshape(index_shape)
    full = tuple(index_shape) + tuple(trailing)
    shape = {"full": full, "row": tuple(trailing), "scalar": (),
             "wrong": full[:-1] + (full[-1] + 1,) if full else (2,)}[values_shape]
    values = rng.standard_normal(shape)
    base = rng.standard_normal([2 * rows] + trailing)
    target = base[::2] if strided else base[:rows]  # strided: added through a contiguous copy
    print(f"index_add {target.shape} {index.dtype} {index.tolist()} {values.shape}",
          file=sys.stderr)
    ours, theirs = (base.copy()[::2] if strided else target.copy()), target.copy()

    def call():
        scatter.index_add(ours, index, values)
        return (ours,)

    def reference():
        # NumPy indexes with intp, so uint64 wraps (np.add.at too, but for a 0-d index it makes
        # a Python int of it and overflows): the cast spells out the wrap for every shape
        np.add.at(theirs, index.astype(np.int64), values)
        return (theirs,)

    if not compare(in_mode("auto", call), reference, "index_add", rtol=1e-12):
        np.testing.assert_array_equal(ours, target)  # a rejected index adds nothing


FUZZERS = {"cross_entropy": fuzz_cross_entropy, "max_pool_backward": fuzz_max_pool_backward,
           "index_add": fuzz_index_add}


def fuzz(name: str, examples: int) -> None:
    settings(max_examples=examples, deadline=None, derandomize=True, database=None,
             suppress_health_check=list(HealthCheck))(FUZZERS[name])()


@pytest.mark.parametrize("name", sorted(FUZZERS))
def test_fuzz(name):
    examples = 25 * settings().max_examples  # 200 with the ci profile
    _, failure = run_python(f"import test_kernels_bounds as t; t.fuzz({name!r}, {examples})")
    assert failure is None, failure
