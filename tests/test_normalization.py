"""BatchNorm1d/2d/3d, GroupNorm and their functional forms (batch_norm, group_norm): gradcheck,
gradgradcheck, and PyTorch parity of outputs, gradients and Hessian-vector products (hvp)."""

import numpy as np
import pytest
import torch
from helpers import (assert_close, check_module_hvp_parity, check_module_parity, gradcheck_module,
                     gradgradcheck_module)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minidl
from minidl.nn.normalization import BatchNorm1d, BatchNorm2d, BatchNorm3d, GroupNorm
from minidl.ops.normalization import batch_norm, group_norm

with_fixture = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
BATCH_NORMS = {
    0: (BatchNorm1d, torch.nn.BatchNorm1d),
    1: (BatchNorm1d, torch.nn.BatchNorm1d),
    2: (BatchNorm2d, torch.nn.BatchNorm2d),
    3: (BatchNorm3d, torch.nn.BatchNorm3d),
}


@with_fixture
@given(
    spatial=st.integers(0, 3),
    channels=st.integers(1, 4),
    affine=st.booleans(),
    track=st.booleans(),
    momentum=st.sampled_from([0.1, 0.5, None]),
    seed=st.integers(0, 2**16),
)
def test_batch_norm_training_steps_then_eval_match_torch(
    kernel_mode, spatial, channels, affine, track, momentum, seed
):
    ours_class, theirs_class = BATCH_NORMS[spatial]
    config = {"affine": affine, "track_running_stats": track, "momentum": momentum}
    ours, theirs = ours_class(channels, **config), theirs_class(channels, **config)
    rng = np.random.default_rng(seed)
    if affine:  # start from non-trivial weights so their gradients and effect are checked
        with torch.no_grad():
            theirs.weight.copy_(torch.tensor(rng.standard_normal(channels)))
            theirs.bias.copy_(torch.tensor(rng.standard_normal(channels)))
    shape = (3, channels) + (2,) * spatial
    for step in range(3):  # running stats must follow torch's step by step
        x = rng.standard_normal(shape) * 2 + 1
        check_module_parity(ours, theirs, [x], seed=step) if step == 0 else _step(ours, theirs, x)
        for name, buffer in theirs.named_buffers():
            assert_close(getattr(ours, name), buffer, np.float32, f"{name} after step {step}")
    ours.eval()
    theirs.eval()
    _step(ours, theirs, rng.standard_normal(shape))


def _step(ours, theirs, x):
    """One more forward and backward without reloading torch's state into ours."""
    a, b = (
        minidl.tensor(x.astype(np.float32), requires_grad=True),
        torch.tensor(x.astype(np.float32), requires_grad=True),
    )
    weight = np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    ours.zero_grad()
    theirs.zero_grad()
    out, their_out = ours(a), theirs(b)
    assert_close(out, their_out, np.float32, "output")
    (out * minidl.tensor(weight)).sum().backward()
    (their_out * torch.tensor(weight)).sum().backward()
    assert_close(a.grad, b.grad, np.float32, "grad of input")
    for name, param in theirs.named_parameters():
        assert_close(getattr(ours, name).grad, param.grad, np.float32, f"grad of {name}")


BATCH_NORM_CASES = dict(spatial=st.integers(0, 3), channels=st.integers(1, 3), affine=st.booleans(),
                        training=st.booleans(), seed=st.integers(0, 2**16))


@with_fixture
@given(**BATCH_NORM_CASES)
def test_batch_norm_gradcheck(kernel_mode, spatial, channels, affine, training, seed):
    layer = BATCH_NORMS[spatial][0](channels, affine=affine)
    rng = np.random.default_rng(seed)
    layer.running_mean.data[...] = rng.standard_normal(channels)
    layer.running_var.data[...] = rng.uniform(0.5, 2, channels)
    if affine:
        layer.weight.data[...] = rng.standard_normal(channels)
        layer.bias.data[...] = rng.standard_normal(channels)
    layer.train(training)
    assert gradcheck_module(layer, [rng.standard_normal((3, channels) + (2,) * spatial)])


@with_fixture
@given(**BATCH_NORM_CASES)
def test_batch_norm_second_order(kernel_mode, spatial, channels, affine, training, seed):
    """Training mode differentiates through the batch statistics (the fused op's composed replay);
    evaluation mode is composed from ops."""
    ours, theirs = (cls(channels, affine=affine) for cls in BATCH_NORMS[spatial])
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        theirs.running_mean.copy_(torch.tensor(rng.standard_normal(channels)))
        theirs.running_var.copy_(torch.tensor(rng.uniform(0.5, 2, channels)))
        if affine:
            theirs.weight.normal_()
            theirs.bias.normal_()
    ours.train(training)
    theirs.train(training)
    x = rng.standard_normal((3, channels) + (2,) * spatial)
    check_module_hvp_parity(ours, theirs, [x])
    assert gradgradcheck_module(ours, [x])


def test_functional_batch_norm_matches_torch():
    rng = np.random.default_rng(0)
    x, mean, var = rng.standard_normal((4, 3, 5)), rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    weight, bias = rng.standard_normal(3), rng.standard_normal(3)
    for training in (True, False):
        ours_stats = [minidl.tensor(mean.copy()), minidl.tensor(var.copy())]
        theirs_stats = [torch.tensor(mean.copy()), torch.tensor(var.copy())]
        ours = batch_norm(
            minidl.tensor(x),
            *ours_stats,
            minidl.tensor(weight),
            minidl.tensor(bias),
            training=training,
            momentum=0.3,
            eps=1e-3,
        )
        theirs = torch.nn.functional.batch_norm(
            torch.tensor(x),
            *theirs_stats,
            torch.tensor(weight),
            torch.tensor(bias),
            training=training,
            momentum=0.3,
            eps=1e-3,
        )
        assert_close(ours, theirs, np.float64, f"output, training={training}")
        for a, b in zip(ours_stats, theirs_stats):
            assert_close(a, b, np.float64, f"running stats, training={training}")


@given(
    groups_and_channels=st.sampled_from([(1, 1), (1, 4), (2, 4), (4, 4), (3, 6)]),
    spatial=st.integers(0, 2),
    affine=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_group_norm_gradcheck_and_parity(groups_and_channels, spatial, affine, seed):
    groups, channels = groups_and_channels
    if (
        groups == channels and spatial == 0
    ):  # one element per group normalises to 0: only noise left
        return
    x = np.random.default_rng(seed).standard_normal((2, channels) + (3,) * spatial) + 1
    assert gradcheck_module(GroupNorm(groups, channels, affine=affine), [x])
    theirs = torch.nn.GroupNorm(groups, channels, affine=affine)
    if affine:
        with torch.no_grad():
            theirs.weight.normal_()
            theirs.bias.normal_()
    check_module_parity(GroupNorm(groups, channels, affine=affine), theirs, [x])
    assert gradgradcheck_module(GroupNorm(groups, channels, affine=affine), [x])
    check_module_hvp_parity(GroupNorm(groups, channels, affine=affine), theirs, [x])


def test_group_norm_functional_without_affine():
    x = np.random.default_rng(0).standard_normal((2, 6, 4)).astype(np.float32)
    assert_close(
        group_norm(minidl.tensor(x), 3), torch.nn.functional.group_norm(torch.tensor(x), 3)
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda m: m.BatchNorm1d(4),
        lambda m: m.BatchNorm2d(3, eps=1e-3, momentum=None, affine=False),
        lambda m: m.BatchNorm3d(2, track_running_stats=False),
        lambda m: m.BatchNorm1d(2, bias=False),
        lambda m: m.GroupNorm(2, 4, affine=False),
        lambda m: m.GroupNorm(1, 3, bias=False),
    ],
)
def test_state_dict_keys_and_repr_match_torch(make):
    from minidl.nn import normalization

    ours, theirs = make(normalization), make(torch.nn)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for key, value in theirs.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[key].numpy(), value.numpy(), err_msg=key)
        assert ours.state_dict()[key].dtype == value.numpy().dtype, key


def test_normalization_errors_name_the_layer_and_shapes():
    with pytest.raises(
        ValueError,
        match=r"BatchNorm2d\(4, .*expected input of shape \(N, 4, H, W\), got \(2, 3, 5, 5\)",
    ):
        BatchNorm2d(4)(minidl.randn(2, 3, 5, 5))
    with pytest.raises(
        ValueError,
        match=r"BatchNorm1d\(3, .*expected input of shape \(N, 3, L\) or \(N, 3\), got \(3,\)",
    ):
        BatchNorm1d(3)(minidl.randn(3))
    with pytest.raises(
        ValueError,
        match=r"batch_norm: expected more than 1 value per channel when training, got input of shape \(1, 3\)",
    ):
        BatchNorm1d(3)(minidl.randn(1, 3))
    with pytest.raises(TypeError, match=r"BatchNorm1d.*dtype float32 on cpu.*got dtype float64"):
        BatchNorm1d(3)(minidl.randn(2, 3, dtype=minidl.float64))
    with pytest.raises(
        ValueError, match=r"GroupNorm: num_channels \(5\) must be divisible by num_groups \(2\)"
    ):
        GroupNorm(2, 5)
    with pytest.raises(
        ValueError,
        match=r"GroupNorm\(2, 4, .*expected input of shape \(N, 4, \*\), got \(2, 3, 7\)",
    ):
        GroupNorm(2, 4)(minidl.randn(2, 3, 7))
    with pytest.raises(
        ValueError,
        match=r"batch_norm: expected weight of shape \(3,\) for input \(2, 3\), got \(4,\)",
    ):
        batch_norm(minidl.randn(2, 3), None, None, minidl.randn(4), training=True)
