"""Losses: float64 gradcheck and gradgradcheck (input and float targets), float32 PyTorch parity
and float64 Hessian-vector product (hvp) parity of every loss module over hypothesis-drawn
configurations; stability at extreme inputs; errors; reprs."""
import numpy as np
import pytest
import torch
from helpers import (assert_close, check_module_hvp_parity, check_module_parity, gradcheck_module,
                     gradgradcheck_module)
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl.nn import loss as nn_loss
from minidl.ops import loss as F

REDUCTIONS = st.sampled_from(["none", "mean", "sum"])


def _pair(ours_class, theirs_class, **kwargs):
    """The same loss in minidl and in PyTorch; array-valued options become each one's tensors."""
    ours = {k: minidl.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    theirs = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    return lambda: ours_class(**ours), theirs_class(**theirs)


def _check(make_ours, theirs, inputs):
    """First and second derivatives (gradgradcheck, and HVPs against torch's)."""
    assert gradcheck_module(make_ours(), inputs)
    check_module_parity(make_ours(), theirs, inputs)
    assert gradgradcheck_module(make_ours(), inputs)
    check_module_hvp_parity(make_ours(), theirs, inputs)


@given(shape=st.lists(st.integers(1, 4), min_size=0, max_size=2), classes=st.integers(1, 5),
       reduction=REDUCTIONS, weighted=st.booleans(), ignore_index=st.sampled_from([-100, 0]),
       smoothing=st.sampled_from([0.0, 0.25, 1.0]), seed=st.integers(0, 2**16))
def test_cross_entropy_class_indices(kernel_mode, shape, classes, reduction, weighted, ignore_index,
                                     smoothing, seed):
    rng = np.random.default_rng(seed)
    unbatched = not shape
    x = rng.standard_normal([classes] if unbatched else shape[:1] + [classes] + shape[1:]) * 3
    target = rng.integers(0, classes, [] if unbatched else shape)
    target[rng.random(target.shape) < 0.3] = ignore_index  # ignored targets are present
    target.reshape(-1)[0] = classes - 1 if ignore_index == 0 and classes > 1 else 0  # one counts
    if ignore_index == 0 and classes == 1:
        ignore_index = -100
    weight = rng.random(classes) + 0.2 if weighted else None
    make, theirs = _pair(nn_loss.CrossEntropyLoss, torch.nn.CrossEntropyLoss, weight=weight,
                         ignore_index=ignore_index, reduction=reduction, label_smoothing=smoothing)
    _check(make, theirs, [x, np.asarray(target)])


@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=3), reduction=REDUCTIONS,
       weighted=st.booleans(), smoothing=st.sampled_from([0.0, 0.3]), seed=st.integers(0, 2**16))
def test_cross_entropy_class_probabilities(shape, reduction, weighted, smoothing, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 2
    target = rng.random(shape)  # any float target takes part, as in PyTorch (and gets a gradient)
    classes = shape[0 if len(shape) == 1 else 1]
    weight = rng.random(classes) + 0.2 if weighted else None
    make, theirs = _pair(nn_loss.CrossEntropyLoss, torch.nn.CrossEntropyLoss, weight=weight,
                         reduction=reduction, label_smoothing=smoothing)
    _check(make, theirs, [x, target])


@given(shape=st.lists(st.integers(1, 4), min_size=0, max_size=2), classes=st.integers(1, 5),
       reduction=REDUCTIONS, weighted=st.booleans(), seed=st.integers(0, 2**16))
def test_nll_loss(kernel_mode, shape, classes, reduction, weighted, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal([classes] if not shape else shape[:1] + [classes] + shape[1:])
    target = rng.integers(0, classes, shape)
    target[rng.random(target.shape) < 0.3] = -100
    target.reshape(-1)[0] = 0
    weight = rng.random(classes) + 0.2 if weighted else None
    make, theirs = _pair(nn_loss.NLLLoss, torch.nn.NLLLoss, weight=weight, reduction=reduction)
    _check(make, theirs, [x, np.asarray(target)])


POINTWISE = {
    "MSELoss": lambda rng: {},
    "L1Loss": lambda rng: {},
    "SmoothL1Loss": lambda rng: {"beta": float(rng.choice([0.0, 0.5, 2.0]))},
    "HuberLoss": lambda rng: {"delta": float(rng.choice([0.5, 1.0, 2.0]))},
}


@pytest.mark.parametrize("name", POINTWISE)
@given(shape=st.lists(st.integers(1, 4), min_size=0, max_size=3), reduction=REDUCTIONS,
       seed=st.integers(0, 2**16))
def test_regression_losses(name, shape, reduction, seed):
    rng = np.random.default_rng(seed)
    x, target = rng.standard_normal(shape) * 2, rng.standard_normal(shape) * 2
    make, theirs = _pair(getattr(nn_loss, name), getattr(torch.nn, name), reduction=reduction,
                         **POINTWISE[name](rng))
    _check(make, theirs, [x, target])


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), reduction=REDUCTIONS,
       weighted=st.booleans(), seed=st.integers(0, 2**16))
def test_bce_loss(shape, reduction, weighted, seed):
    rng = np.random.default_rng(seed)
    x, target = rng.uniform(0.05, 0.95, shape), rng.random(shape)
    weight = rng.random(shape[-1:]) + 0.2 if weighted else None  # broadcast along the last dim
    make, theirs = _pair(nn_loss.BCELoss, torch.nn.BCELoss, weight=weight, reduction=reduction)
    _check(make, theirs, [x, target])


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), reduction=REDUCTIONS,
       weighted=st.booleans(), pos_weighted=st.booleans(), seed=st.integers(0, 2**16))
def test_bce_with_logits_loss(shape, reduction, weighted, pos_weighted, seed):
    rng = np.random.default_rng(seed)
    x, target = rng.standard_normal(shape) * 4, rng.random(shape)
    weight = rng.random(shape[-1:]) + 0.2 if weighted else None
    pos_weight = rng.random(shape[-1:]) * 3 + 0.1 if pos_weighted else None
    make, theirs = _pair(nn_loss.BCEWithLogitsLoss, torch.nn.BCEWithLogitsLoss, weight=weight,
                         reduction=reduction, pos_weight=pos_weight)
    _check(make, theirs, [x, target])


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
       reduction=st.sampled_from(["none", "mean", "sum", "batchmean"]), log_target=st.booleans(),
       seed=st.integers(0, 2**16))
def test_kl_div_loss(shape, reduction, log_target, seed):
    rng = np.random.default_rng(seed)
    x = np.log(rng.uniform(0.05, 1, shape))
    target = rng.uniform(0.05, 1, shape)
    target = np.log(target) if log_target else target
    make, theirs = _pair(nn_loss.KLDivLoss, torch.nn.KLDivLoss, reduction=reduction, log_target=log_target)
    _check(make, theirs, [x, target])


def test_kl_div_zero_target_counts_as_zero():
    x = np.log(np.array([[0.2, 0.3, 0.5]], dtype=np.float32))
    target = np.array([[0.0, 0.4, 0.6]], dtype=np.float32)
    ours_x = minidl.tensor(x, requires_grad=True)
    ours = F.kl_div(ours_x, minidl.tensor(target), reduction="none")
    theirs_x = torch.tensor(x, requires_grad=True)
    theirs = torch.nn.functional.kl_div(theirs_x, torch.tensor(target), reduction="none")
    assert_close(ours, theirs)
    ours.sum().backward()
    theirs.sum().backward()
    assert_close(ours_x.grad, theirs_x.grad)


# ----- stability -------------------------------------------------------------------------------
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_is_stable_for_huge_logits(kernel_mode, smoothing):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0], [1e4, 1e4, 1e4]], dtype=np.float32)
    target = np.array([1, 1, 2])
    ours_x = minidl.tensor(x, requires_grad=True)
    ours = F.cross_entropy(ours_x, minidl.tensor(target), label_smoothing=smoothing)
    ours.backward()
    assert np.isfinite(ours.item()) and np.isfinite(ours_x.grad.numpy()).all()
    theirs_x = torch.tensor(x, requires_grad=True)
    theirs = torch.nn.functional.cross_entropy(theirs_x, torch.tensor(target), label_smoothing=smoothing)
    theirs.backward()
    assert_close(ours, theirs)
    assert_close(ours_x.grad, theirs_x.grad)


def test_bce_clamps_logs_at_minus_100_and_logits_are_stable():
    x = np.array([0.0, 1.0, 0.0, 1.0, 0.5], dtype=np.float32)
    target = np.array([1.0, 0.0, 0.0, 1.0, 1.0], dtype=np.float32)
    ours_x = minidl.tensor(x, requires_grad=True)
    ours = F.binary_cross_entropy(ours_x, minidl.tensor(target), reduction="none")
    ours.sum().backward()
    theirs_x = torch.tensor(x, requires_grad=True)
    theirs = torch.nn.functional.binary_cross_entropy(theirs_x, torch.tensor(target), reduction="none")
    theirs.sum().backward()
    assert_close(ours, theirs)
    assert_close(ours_x.grad, theirs_x.grad)
    logits = minidl.tensor(np.array([1e4, -1e4, 50.0, -50.0], dtype=np.float32), requires_grad=True)
    labels = np.array([0.0, 1.0, 1.0, 0.0], dtype=np.float32)
    ours = F.binary_cross_entropy_with_logits(logits, minidl.tensor(labels), reduction="sum")
    ours.backward()
    theirs = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor(logits.numpy()), torch.tensor(labels), reduction="sum")
    assert np.isfinite(logits.grad.numpy()).all()
    assert_close(ours, theirs)


def test_cross_entropy_mean_with_every_target_ignored_is_nan_as_pytorch():
    loss = F.cross_entropy(minidl.randn(3, 4), minidl.tensor([-100, -100, -100]))
    assert np.isnan(loss.item())
    assert np.isnan(torch.nn.functional.cross_entropy(torch.randn(3, 4), torch.tensor([-100] * 3)).item())


# ----- errors ----------------------------------------------------------------------------------
def test_cross_entropy_errors():
    x = minidl.randn(4, 10)
    with pytest.raises(TypeError, match="cross_entropy: expected class indices of an integer dtype"):
        F.cross_entropy(x, minidl.randn(4))
    with pytest.raises(ValueError, match=r"cross_entropy: expected target of shape \(4,\) for input "
                                         r"of shape \(4, 10\), got \(5,\)"):
        F.cross_entropy(x, minidl.tensor([1, 2, 3, 4, 5]))
    with pytest.raises(IndexError, match=r"cross_entropy: target 10 is out of bounds: expected "
                                         r"0 <= target < 10 \(or ignore_index=-100\)"):
        F.cross_entropy(x, minidl.tensor([1, 10, -100, 2]))
    with pytest.raises(IndexError, match="target -1 is out of bounds"):
        F.cross_entropy(x, minidl.tensor([1, -1, 0, 2]))
    with pytest.raises(ValueError, match=r"expected weight of shape \(C,\) = \(10,\), got \(3,\)"):
        F.cross_entropy(x, minidl.tensor([1, 2, 3, 4]), weight=minidl.ones(3))
    with pytest.raises(TypeError, match=r"integer dtype \(or class probabilities of the input's "
                                        r"shape \(4, 10\)\), got target of dtype float32 and shape \(4, 9\)"):
        F.cross_entropy(x, minidl.randn(4, 9))
    with pytest.raises(TypeError, match="expected class probabilities of the input's dtype float32"):
        F.cross_entropy(x, minidl.randn(4, 10, dtype=minidl.float64))
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        F.cross_entropy(x, minidl.tensor([1, 2, 3, 4]), label_smoothing=1.5)
    with pytest.raises(ValueError, match="reduction must be one of"):
        nn_loss.CrossEntropyLoss(reduction="avg")(x, minidl.tensor([1, 2, 3, 4]))


def test_pointwise_loss_errors():
    with pytest.raises(ValueError, match=r"mse_loss: expected target of the input's shape \(3, 2\), got \(3,\)"):
        nn_loss.MSELoss()(minidl.randn(3, 2), minidl.randn(3))
    with pytest.raises(TypeError, match="l1_loss: expected target of the input's dtype float32, got float64"):
        nn_loss.L1Loss()(minidl.randn(3), minidl.randn(3, dtype=minidl.float64))
    with pytest.raises(TypeError, match="nll_loss: expected class indices of an integer dtype"):
        nn_loss.NLLLoss()(minidl.randn(3, 2), minidl.randn(3))
    with pytest.raises(ValueError, match="binary_cross_entropy: all elements of input should be between 0 and 1"):
        nn_loss.BCELoss()(minidl.tensor([0.5, 1.5]), minidl.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"pos_weight of shape \(3,\) does not broadcast"):
        nn_loss.BCEWithLogitsLoss(pos_weight=minidl.ones(3))(minidl.randn(2, 2), minidl.rand(2, 2))
    with pytest.raises(ValueError, match="smooth_l1_loss: beta must be non-negative"):
        nn_loss.SmoothL1Loss(beta=-1.0)(minidl.randn(2), minidl.randn(2))


# ----- modules ---------------------------------------------------------------------------------
def test_module_reprs_and_buffers():
    assert repr(nn_loss.MSELoss()) == "MSELoss(reduction='mean')"
    assert repr(nn_loss.CrossEntropyLoss(label_smoothing=0.1)) == \
        "CrossEntropyLoss(ignore_index=-100, reduction='mean', label_smoothing=0.1)"
    assert repr(nn_loss.KLDivLoss(reduction="batchmean")) == "KLDivLoss(reduction='batchmean', log_target=False)"
    assert repr(nn_loss.HuberLoss(delta=2.0)) == "HuberLoss(reduction='mean', delta=2.0)"
    assert list(nn_loss.CrossEntropyLoss(weight=minidl.ones(3)).state_dict()) == ["weight"]
    assert list(nn_loss.CrossEntropyLoss().state_dict()) == []
    both = nn_loss.BCEWithLogitsLoss(weight=minidl.ones(3), pos_weight=minidl.ones(3))
    assert list(both.state_dict()) == list(torch.nn.BCEWithLogitsLoss(torch.ones(3), pos_weight=torch.ones(3)).state_dict())
