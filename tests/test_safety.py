"""No silent wrong gradient, no crash: version counters, validated hooks, copying load_state_dict,
freed graphs that keep nothing alive, and optimizer state and gradients checked before the fused
update kernels see them. Each case is a reproducer from the safety issue, compared with PyTorch."""
import gc
import subprocess
import sys
import textwrap
import weakref

import numpy as np
import pytest
import torch

import minidl
from minidl import nn

MODIFIED = "modified by an inplace operation"


def both(build):
    """Run ``build(m)`` for minidl and torch; each must raise a RuntimeError naming the in-place write."""
    for m in (minidl, torch):
        with pytest.raises(RuntimeError, match=MODIFIED):
            build(m)


def test_writing_a_saved_output_in_place_is_an_error():
    def build(m):
        x = m.randn(5, requires_grad=True)
        y = x.exp()  # exp saves its output
        z = y.sum()
        with m.no_grad():
            y.fill_(0)
        z.backward()

    both(build)


def test_writing_a_saved_input_in_place_under_no_grad_is_an_error():
    def build(m):
        w, x = m.randn(3, requires_grad=True), m.randn(3, requires_grad=True)
        loss = (w * x).sum()  # mul saves both inputs (torch: those the wanted gradients need)
        with m.no_grad():
            w.fill_(7)
        loss.backward()

    both(build)


def test_an_optimizer_step_between_forward_and_backward_is_an_error():
    """The classic GAN bug: the graph of a loss computed before D's step goes through D's old weights."""
    def build(m):
        layer = m.nn.Linear(3, 2)
        optimizer = m.optim.SGD(layer.parameters(), lr=0.1)
        x = m.randn(4, 3, requires_grad=True)  # G's output: its gradient needs D's weight
        first, second = layer(x).sum(), layer(x).pow(2).sum()
        first.backward()
        optimizer.step()  # updates the weight that `second`'s graph saved
        second.backward()

    both(build)


def test_an_in_place_write_of_a_value_nobody_saved_is_fine():
    """add saves nothing, so writing its input afterwards cannot change the gradient (as PyTorch)."""
    x, b = minidl.randn(3, requires_grad=True), minidl.randn(3)
    loss = (x + b).sum()
    with minidl.no_grad():
        b.fill_(3)
    loss.backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.ones(3))


def test_versions_count_in_place_writes_as_pytorch():
    for m in (minidl, torch):
        t = m.zeros(3)
        assert t._version == 0
        t.fill_(1)
        t.zero_()
        t.copy_(m.ones(3))
        assert t._version == 3, m.__name__
        layer = m.nn.Linear(2, 2)
        before = layer.weight._version
        layer(m.randn(1, 2)).sum().backward()
        m.optim.SGD(layer.parameters(), lr=0.1).step()
        assert layer.weight._version > before, m.__name__


@pytest.mark.parametrize("change", ["size", "type"])
@pytest.mark.parametrize("where", ["leaf", "non-leaf"])
def test_a_hook_may_not_change_the_gradients_shape_or_dtype(change, where):
    def bad(grad):
        return grad.reshape(-1)[:1] if change == "size" else grad.double()

    for m in (minidl, torch):
        x = m.randn(2, 3, requires_grad=True)
        hooked = x if where == "leaf" else x * 2
        hooked.register_hook(bad)
        with pytest.raises(RuntimeError, match=f"hook .* has changed the {change}"):
            (hooked * 3).sum().backward()


def test_load_state_dict_copies_into_the_parameters():
    """A target network loaded from the online one must not share its memory (as PyTorch)."""
    online, target = nn.Linear(3, 2), nn.Linear(3, 2)
    weight = target.weight
    target.load_state_dict(online.state_dict())
    assert target.weight is weight  # the same Parameter, its own memory
    assert not np.shares_memory(target.weight.numpy(), online.weight.numpy())
    np.testing.assert_array_equal(target.weight.numpy(), online.weight.numpy())
    with minidl.no_grad():
        online.weight.fill_(5)
    assert not (target.weight.numpy() == 5).any()
    source = {k: v.numpy().copy() for k, v in online.state_dict().items()}
    target.load_state_dict(source)
    source["weight"][...] = -1  # editing the dict afterwards leaves the model alone
    assert (target.weight.numpy() == 5).all()


def test_a_kept_loss_keeps_no_activation_alive_after_backward():
    model = nn.Sequential(nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 1))
    losses, refs = [], []
    for _ in range(3):
        x = minidl.randn(64, 100)
        hidden = model[0](x)
        refs += [weakref.ref(x), weakref.ref(hidden)]
        loss = model[2](model[1](hidden)).mean()
        loss.backward()
        losses.append(loss)  # the usual mistake: keeping the tensor, not loss.item()
        del x, hidden, loss
    gc.collect()
    assert all(ref() is None for ref in refs), "a freed graph still holds its forward's tensors"
    with pytest.raises(RuntimeError, match="second time"):
        losses[0].backward()


def run(code: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter: a crash (a signal) shows as a negative return code."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120)


def test_adam_state_of_other_shapes_is_refused_naming_the_parameter():
    result = run("""
        import minidl
        from minidl import nn
        small, big = nn.Linear(4, 4), nn.Linear(256, 256)
        source = minidl.optim.Adam(small.parameters())
        small(minidl.randn(2, 4)).sum().backward()
        source.step()
        target = minidl.optim.Adam(big.parameters())
        try:
            target.load_state_dict(source.state_dict())
        except ValueError as error:
            print("refused:", error)
        big(minidl.randn(2, 256)).sum().backward()
        target.step()
    """)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "refused: Adam: loaded state 'exp_avg' of parameter 0 has shape (4, 4), the " \
           "parameter has shape (256, 256)" in result.stdout


def test_a_gradient_of_the_wrong_shape_is_refused_before_the_fused_update():
    result = run("""
        import minidl
        from minidl import nn
        layer = nn.Linear(512, 512)
        optimizer = minidl.optim.Adam(layer.parameters())
        layer.weight.grad = minidl.zeros(4, 4)
        try:
            optimizer.step()
        except RuntimeError as error:
            print("refused:", error)
    """)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "refused: Adam.step: a parameter of shape (512, 512) and dtype float32 has a .grad of " \
           "shape (4, 4) and dtype float32" in result.stdout


# ----- numerics and type promotion ----------------------------------------------------------------
@pytest.mark.parametrize("case", ["std of a constant", "x ** 0 at 0", "std along a dim"])
def test_gradients_where_pytorch_gives_zero_not_nan(case):
    grads = []
    for m in (minidl, torch):
        x = m.tensor(np.array([[1.0, 1.0, 1.0], [0.0, 2.0, 3.0]]), requires_grad=True)
        if case == "std of a constant":
            y = x[0].std()
        elif case == "x ** 0 at 0":
            y = (x ** 0).sum() + (x ** 0.0).sum()
        else:
            y = x.std(dim=1).sum()
        y.backward()
        grads.append(x.grad.numpy())
    assert np.isfinite(grads[0]).all()
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-6, atol=1e-12)


PROMOTIONS = [
    ("f32 * np.float64 scalar", lambda m: m.ones(3) * np.float64(2)),
    ("f32 + 0-d f64 tensor", lambda m: m.ones(3) + m.tensor(2.0, dtype=m.float64)),
    ("int64 + f32", lambda m: m.tensor([1, 2]) + m.ones(2)),
    ("f32 + int64", lambda m: m.ones(2) + m.tensor([1, 2])),
    ("int64 * 2.5", lambda m: m.tensor([1, 2]) * 2.5),
    ("bool + 1", lambda m: m.tensor([True, False]) + 1),
    ("int32 + 0-d int64", lambda m: m.tensor([1, 2], dtype=m.int32) + m.tensor(5)),
    ("f64 * f32", lambda m: m.ones(2, dtype=m.float64) * m.ones(2)),
    ("2 ** int64", lambda m: 2 ** m.tensor([1, 2])),
    ("int64 / int64", lambda m: m.tensor([1, 2]) / m.tensor([2, 2])),
]


@pytest.mark.parametrize("name, build", PROMOTIONS, ids=[p[0] for p in PROMOTIONS])
def test_type_promotion_follows_pytorch(name, build):
    ours, theirs = build(minidl), build(torch)
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", ""), name
    np.testing.assert_allclose(ours.numpy(), theirs.numpy())


def test_the_gradient_of_a_promoted_operand_has_its_own_dtype():
    x = minidl.tensor([1.0, 2.0], dtype=minidl.float64, requires_grad=True)
    y = minidl.tensor([3.0, 4.0], requires_grad=True)  # float32
    (x * y).sum().backward()
    assert x.grad.dtype == np.float64 and y.grad.dtype == np.float32


# ----- degenerate sizes -----------------------------------------------------------------------------
DEGENERATE = {
    "LSTM batch 0": lambda m: m.nn.LSTM(3, 4)(m.zeros(5, 0, 3, requires_grad=True))[0],
    "GRU batch 0": lambda m: m.nn.GRU(3, 4)(m.zeros(5, 0, 3, requires_grad=True))[0],
    "RNN batch 0": lambda m: m.nn.RNN(3, 4)(m.zeros(5, 0, 3, requires_grad=True))[0],
    "attention without keys": lambda m: m.nn.functional.scaled_dot_product_attention(
        m.ones(2, 3, 4, requires_grad=True), m.ones(2, 0, 4), m.ones(2, 0, 4)),
    "attention without queries": lambda m: m.nn.functional.scaled_dot_product_attention(
        m.ones(2, 0, 4, requires_grad=True), m.ones(2, 3, 4), m.ones(2, 3, 4)),
    "MultiheadAttention, sequence 0": lambda m: m.nn.MultiheadAttention(4, 2)(
        *[m.zeros(0, 2, 4, requires_grad=True)] * 3)[0],
    "Linear(0, 3)": lambda m: m.nn.Linear(0, 3)(m.zeros(2, 0, requires_grad=True)),
    "Linear(3, 0)": lambda m: m.nn.Linear(3, 0)(m.zeros(2, 3, requires_grad=True)),
}


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors is a no-op")
@pytest.mark.parametrize("name", DEGENERATE)
def test_degenerate_sizes_work_as_in_pytorch(name):
    results = []
    for m in (minidl, torch):
        m.manual_seed(0)
        output = DEGENERATE[name](m)
        output.sum().backward()
        results.append(output)
    ours, theirs = results
    assert tuple(ours.shape) == tuple(theirs.shape), name
    if name.startswith("Linear(0"):  # zero weights: the output is the bias, random in each
        return
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), atol=1e-6)


def test_chunk_zero_is_a_clear_error_as_in_pytorch():
    for m in (minidl, torch):
        with pytest.raises(RuntimeError, match="chunk expects `chunks` to be greater than 0"):
            m.ones(4).chunk(0)


def test_a_0d_result_converts_to_a_numpy_array():
    assert np.asarray(minidl.ones(3).argmax()).shape == ()
    assert np.asarray(minidl.tensor(2.5)) == 2.5


FLOAT16_OPS = {
    "cross_entropy": lambda F, x: F.cross_entropy(x, minidl.tensor([0, 1, 2, 0])),
    "layer_norm": lambda F, x: F.layer_norm(x, (6,)),
    "max_pool1d": lambda F, x: F.max_pool1d(x[None], 2),
    "avg_pool1d": lambda F, x: F.avg_pool1d(x[None], 2),
    "gelu": lambda F, x: F.gelu(x),
    "log_softmax": lambda F, x: F.log_softmax(x, 1),
}


@pytest.mark.parametrize("name", FLOAT16_OPS)
def test_float16_runs_through_the_reference_kernels(name):
    """Numba cannot compile float16 (a bare NotImplementedError before): float16 inputs take the
    array-code kernels, forward and backward, close to the float32 result."""
    values = np.random.default_rng(0).standard_normal((4, 6))
    results = []
    for dtype in (minidl.float16, minidl.float32):
        x = minidl.tensor(values).to(dtype).requires_grad_()
        y = FLOAT16_OPS[name](minidl.nn.functional, x)
        y.sum().backward()
        assert y.dtype == dtype and x.grad.dtype == dtype
        results.append((y.numpy().astype(np.float32), x.grad.numpy().astype(np.float32)))
    for half, single in zip(*results):
        np.testing.assert_allclose(half, single, rtol=2e-2, atol=2e-2)
