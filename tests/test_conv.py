"""Convolutions (functional, layers, plain, transposed): gradcheck, gradgradcheck, PyTorch parity
of outputs, gradients and Hessian-vector products (hvp), errors, init."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as torch_F
from helpers import (assert_close, assert_hvp_matches_torch, check_module_hvp_parity,
                     check_module_parity, gradcheck_module, gradgradcheck_module)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minidl
from minidl.nn.conv import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from minidl.ops.conv import (
    conv1d,
    conv2d,
    conv3d,
    conv_transpose1d,
    conv_transpose2d,
    conv_transpose3d,
)

OURS = {
    (False, 1): conv1d,
    (False, 2): conv2d,
    (False, 3): conv3d,
    (True, 1): conv_transpose1d,
    (True, 2): conv_transpose2d,
    (True, 3): conv_transpose3d,
}
LAYERS = {
    (False, 1): (Conv1d, torch.nn.Conv1d),
    (False, 2): (Conv2d, torch.nn.Conv2d),
    (False, 3): (Conv3d, torch.nn.Conv3d),
    (True, 1): (ConvTranspose1d, torch.nn.ConvTranspose1d),
    (True, 2): (ConvTranspose2d, torch.nn.ConvTranspose2d),
    (True, 3): (ConvTranspose3d, torch.nn.ConvTranspose3d),
}
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
# the kernel_mode fixture stays active across hypothesis examples, which is what we want
with_fixture = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@st.composite
def configs(draw, transposed: bool, dims: int):
    """A small convolution: sizes, per-dim kernel/stride/dilation, padding (strings too), groups."""
    per_dim = lambda low, high: tuple(draw(st.integers(low, high)) for _ in range(dims))
    groups = draw(st.integers(1, 2))
    kernel_size = per_dim(1, 3 if dims < 3 else 2)
    dilation = per_dim(1, 2)
    if transposed:
        stride, size = per_dim(1, 3), per_dim(1, 3)
        output_padding = tuple(
            draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation)
        )
        # keep the output (n - 1)·s - 2p + d·(k - 1) + output_padding + 1 positive
        padding = tuple(
            draw(st.integers(0, ((n - 1) * s + d * (k - 1) + q) // 2))
            for n, s, d, k, q in zip(size, stride, dilation, kernel_size, output_padding)
        )
        extra = {"output_padding": output_padding}
    else:
        padding = draw(st.sampled_from(["same", "valid", "int", "tuple"]))
        stride = (1,) * dims if padding == "same" else per_dim(1, 2)
        padding = {"int": draw(st.integers(0, 2)), "tuple": per_dim(0, 2)}.get(padding, padding)
        low = (
            (0,) * dims
            if isinstance(padding, str)
            else ((padding,) * dims if isinstance(padding, int) else padding)
        )
        size = tuple(
            max(1, d * (k - 1) + 1 - 2 * p) + draw(st.integers(0, 3 if dims < 3 else 1))
            for k, d, p in zip(kernel_size, dilation, low)
        )
        extra = {}
    return dict(
        dims=dims,
        batch=draw(st.integers(1, 2)),
        in_channels=groups * draw(st.integers(1, 2)),
        out_channels=groups * draw(st.integers(1, 2)),
        kernel_size=kernel_size,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias=draw(st.booleans()),
        size=size,
        unbatched=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
        **extra,
    )


def arrays(cfg, transposed: bool):
    """Input, weight and bias (float64 NumPy) for a config, weight in PyTorch's layout."""
    rng = np.random.default_rng(cfg["seed"])
    C, O, G = cfg["in_channels"], cfg["out_channels"], cfg["groups"]
    lead = () if cfg["unbatched"] else (cfg["batch"],)
    x = rng.standard_normal(lead + (C,) + cfg["size"])
    w = rng.standard_normal(((C, O // G) if transposed else (O, C // G)) + cfg["kernel_size"])
    b = rng.standard_normal(O) if cfg["bias"] else None
    return x, w, b


def functional_arguments(cfg, transposed: bool) -> dict:
    names = ["stride", "padding", "dilation", "groups"] + (["output_padding"] if transposed else [])
    return {name: cfg[name] for name in names}


def run_functional_case(cfg, transposed):
    x, w, b = arrays(cfg, transposed)
    ours, theirs = (
        OURS[transposed, cfg["dims"]],
        getattr(torch_F, OURS[transposed, cfg["dims"]].__name__),
    )
    kwargs = functional_arguments(cfg, transposed)
    inputs = [minidl.tensor(a, requires_grad=True) for a in (x, w, b) if a is not None]
    call = lambda x_, w_, b_=None: ours(x_, w_, b_, **kwargs)
    assert minidl.gradcheck(call, inputs)
    # parity in float32: output and the gradients of input, weight and bias
    ours32 = [
        minidl.tensor(a.astype(np.float32), requires_grad=True) for a in (x, w, b) if a is not None
    ]
    theirs32 = [
        torch.tensor(a.astype(np.float32), requires_grad=True) for a in (x, w, b) if a is not None
    ]
    y = call(*ours32)
    expected = theirs(*theirs32, **kwargs) if b is not None else theirs(*theirs32, None, **kwargs)
    assert_close(y, expected, what=f"{ours.__name__} output")
    gy = np.random.default_rng(1).standard_normal(expected.shape).astype(np.float32)
    (y * minidl.tensor(gy)).sum().backward()
    (expected * torch.tensor(gy)).sum().backward()
    for name, a, t in zip(["input", "weight", "bias"], ours32, theirs32):
        assert_close(a.grad, t.grad, what=f"{ours.__name__} grad of {name}", scale=2)


@pytest.mark.parametrize("transposed", [False, True], ids=["conv", "conv_transpose"])
@pytest.mark.parametrize("dims", [1, 2, 3])
@with_fixture
@given(data=st.data())
def test_functional_gradcheck_and_parity(kernel_mode, dims, transposed, data):
    run_functional_case(data.draw(configs(transposed, dims)), transposed)


@pytest.mark.parametrize("transposed", [False, True], ids=["conv", "conv_transpose"])
@pytest.mark.parametrize("dims", [1, 2, 3])
@with_fixture
@given(data=st.data())
def test_layers_gradcheck_and_parity(kernel_mode, dims, transposed, data):
    cfg = data.draw(configs(transposed, dims))
    x, _, _ = arrays(cfg, transposed)
    ours_cls, theirs_cls = LAYERS[transposed, cfg["dims"]]
    kwargs = functional_arguments(cfg, transposed) | {"bias": cfg["bias"]}
    make = lambda cls: cls(cfg["in_channels"], cfg["out_channels"], cfg["kernel_size"], **kwargs)
    assert gradcheck_module(make(ours_cls), [x])
    check_module_parity(make(ours_cls), make(theirs_cls), [x], scale=2)


@pytest.mark.parametrize("transposed", [False, True], ids=["conv", "conv_transpose"])
@pytest.mark.parametrize("dims", [1, 2, 3])
@with_fixture
@given(data=st.data())
def test_second_order_gradgradcheck_and_hvp_parity(kernel_mode, dims, transposed, data):
    """A convolution is bilinear: its second derivatives mix input and weight (the WGAN-GP penalty
    differentiates gx with respect to the weight). Functional and layer forms, against torch."""
    cfg = data.draw(configs(transposed, dims))
    x, w, b = arrays(cfg, transposed)
    ours = OURS[transposed, dims]
    kwargs = functional_arguments(cfg, transposed)
    arrays_ = [a for a in (x, w, b) if a is not None]
    assert minidl.autograd.gradgradcheck(lambda *t: ours(*t, **kwargs),
                                         [minidl.tensor(a, requires_grad=True) for a in arrays_])
    theirs = getattr(torch_F, ours.__name__)
    assert_hvp_matches_torch(lambda m, *t: (ours if m is minidl else theirs)(*t, **kwargs),
                             arrays_, ours.__name__)
    ours_cls, theirs_cls = LAYERS[transposed, dims]
    make = lambda cls: cls(cfg["in_channels"], cfg["out_channels"], cfg["kernel_size"],
                           **kwargs, bias=cfg["bias"])
    assert gradgradcheck_module(make(ours_cls), [x])
    check_module_hvp_parity(make(ours_cls), make(theirs_cls), [x])


REPR_CASES = [
    (Conv2d, torch.nn.Conv2d, (3, 16, 3), {}),
    (
        Conv2d,
        torch.nn.Conv2d,
        (4, 8, (3, 2)),
        {"stride": 2, "padding": 1, "dilation": (2, 1), "groups": 2, "bias": False},
    ),
    (Conv1d, torch.nn.Conv1d, (4, 6, 5), {"padding": "same", "groups": 2}),
    (Conv3d, torch.nn.Conv3d, (2, 4, 3), {"padding": "valid", "stride": (1, 2, 1)}),
    (
        ConvTranspose2d,
        torch.nn.ConvTranspose2d,
        (4, 8, 3),
        {"stride": 2, "padding": 1, "output_padding": 1},
    ),
    (
        ConvTranspose1d,
        torch.nn.ConvTranspose1d,
        (4, 6, 3),
        {"groups": 2, "dilation": 2, "bias": False},
    ),
    (ConvTranspose3d, torch.nn.ConvTranspose3d, (2, 3, (1, 2, 3)), {}),
]


@pytest.mark.parametrize("ours, theirs, args, kwargs", REPR_CASES)
def test_repr_state_dict_and_init_like_pytorch(ours, theirs, args, kwargs):
    layer, reference = ours(*args, **kwargs), theirs(*args, **kwargs)
    assert repr(layer) == repr(reference)
    ours_state, theirs_state = layer.state_dict(), reference.state_dict()
    assert list(ours_state) == list(theirs_state)
    for key, value in theirs_state.items():
        assert tuple(ours_state[key].shape) == tuple(value.shape), key
        assert ours_state[key].dtype == np.float32
    # kaiming_uniform(a=√5) and the bias share one bound 1/√fan_in, fan_in = dim 1 · prod(kernel)
    bound = 1 / math.sqrt(layer.weight.shape[1] * math.prod(layer.kernel_size))
    for param in layer.parameters():
        assert np.abs(param.numpy()).max() <= bound


def test_default_init_spreads_over_the_bound():
    minidl.manual_seed(0)
    weight = Conv2d(64, 64, 3).weight.numpy()
    bound = 1 / math.sqrt(64 * 9)
    assert abs(weight.std() - bound / math.sqrt(3)) < 0.02 * bound  # std of U(-b, b) is b/√3
    assert abs(weight.mean()) < 0.02 * bound


def test_layer_rejects_wrong_input():
    layer = Conv2d(3, 16, 3)
    expected = (
        r"Conv2d\(3, 16, kernel_size=\(3, 3\), stride=\(1, 1\)\) expected input of shape "
        r"\(N, 3, H, W\) or \(3, H, W\), got \(8, 1, 28, 28\)"
    )
    with pytest.raises(ValueError, match=expected):
        layer(minidl.randn(8, 1, 28, 28))
    with pytest.raises(
        ValueError, match=r"expected input of shape \(N, 3, H, W\) or \(3, H, W\), got \(3, 28\)"
    ):
        layer(minidl.randn(3, 28))
    with pytest.raises(
        ValueError, match=r"Conv1d\(2, 4, .*\(N, 2, L\) or \(2, L\), got \(1, 2, 5, 5\)"
    ):
        Conv1d(2, 4, 3)(minidl.randn(1, 2, 5, 5))
    with pytest.raises(
        ValueError, match=r"ConvTranspose3d\(2, 4, .*\(N, 2, D, H, W\) or \(2, D, H, W\)"
    ):
        ConvTranspose3d(2, 4, 3)(minidl.randn(1, 3, 2, 2, 2))
    with pytest.raises(TypeError, match="dtype float32 on cpu.*got dtype float64"):
        layer(minidl.randn(1, 3, 5, 5, dtype=minidl.float64))
    with pytest.raises(
        RuntimeError,
        match=r"conv2d: output size \(0, 0\) is not positive for input of spatial size \(2, 2\)",
    ):
        layer(minidl.randn(1, 3, 2, 2))


def test_layer_rejects_bad_arguments():
    with pytest.raises(
        NotImplementedError, match="Conv2d: padding_mode='reflect' is not implemented"
    ):
        Conv2d(3, 4, 3, padding_mode="reflect")
    with pytest.raises(NotImplementedError, match="ConvTranspose1d: padding_mode='circular'"):
        ConvTranspose1d(3, 4, 3, padding_mode="circular")
    with pytest.raises(
        ValueError,
        match=r"Conv2d: in_channels \(3\) and out_channels \(4\) must be divisible by groups \(2\)",
    ):
        Conv2d(3, 4, 3, groups=2)
    with pytest.raises(
        ValueError, match="padding='same' is not supported for strided convolutions"
    ):
        Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="ConvTranspose2d: padding='same' is not supported"):
        ConvTranspose2d(3, 4, 3, padding="same")
    with pytest.raises(
        ValueError,
        match=r"Conv3d: expected kernel_size to be an int or a tuple of 3 ints, each >= 1, got \(3, 3\)",
    ):
        Conv3d(3, 4, (3, 3))


def test_functional_errors_name_the_op_and_shapes():
    x = minidl.randn(2, 3, 8, 8)
    with pytest.raises(
        RuntimeError,
        match=r"conv2d: expected weight of shape \(out, in/groups, kH, kW\) for "
        r"input with 3 channels and groups=1, got \(4, 2, 3, 3\)",
    ):
        conv2d(x, minidl.randn(4, 2, 3, 3))
    with pytest.raises(
        RuntimeError,
        match=r"conv2d: expected input of shape \(N, C, H, W\) or \(C, H, W\), got \(8, 8\)",
    ):
        conv2d(minidl.randn(8, 8), minidl.randn(4, 3, 3, 3))
    with pytest.raises(
        RuntimeError,
        match=r"conv1d: expected weight of shape \(out, in/groups, kL\), got \(4, 3, 3, 3\)",
    ):
        conv1d(minidl.randn(2, 3, 8), minidl.randn(4, 3, 3, 3))
    with pytest.raises(
        RuntimeError, match="conv2d: input channels 3 are not divisible by groups=2"
    ):
        conv2d(x, minidl.randn(4, 1, 3, 3), groups=2)
    with pytest.raises(
        RuntimeError,
        match=r"conv2d: out channels 4 \(weight's dim 0\) are not divisible by groups=3",
    ):
        conv2d(minidl.randn(2, 6, 8, 8), minidl.randn(4, 2, 3, 3), groups=3)
    with pytest.raises(RuntimeError, match=r"conv2d: expected bias of shape \(4,\), got \(3,\)"):
        conv2d(x, minidl.randn(4, 3, 3, 3), minidl.randn(3))
    with pytest.raises(
        RuntimeError,
        match="conv2d: expected input, weight and bias of one dtype, got input float32, weight float64",
    ):
        conv2d(x, minidl.randn(4, 3, 3, 3, dtype=minidl.float64))
    with pytest.raises(RuntimeError, match=r"conv3d: output size \(1, 1, 0\) is not positive"):
        conv3d(minidl.randn(1, 1, 3, 3, 2), minidl.randn(1, 1, 3, 3, 3))
    with pytest.raises(
        ValueError, match="conv2d: padding must be an int, a tuple, 'valid' or 'same', got 'full'"
    ):
        conv2d(x, minidl.randn(4, 3, 3, 3), padding="full")
    with pytest.raises(
        ValueError,
        match=r"conv2d: expected stride to be an int or a tuple of 2 ints, each >= 1, got 0",
    ):
        conv2d(x, minidl.randn(4, 3, 3, 3), stride=0)
    with pytest.raises(
        RuntimeError,
        match=r"conv_transpose2d: expected weight of shape \(in, out/groups, kH, kW\) "
        r"for input with 3 channels and groups=1, got \(4, 3, 3, 3\)",
    ):
        conv_transpose2d(x, minidl.randn(4, 3, 3, 3))
    with pytest.raises(
        ValueError,
        match=r"conv_transpose1d: output_padding \(2,\) must be smaller than either "
        r"stride \(2,\) or dilation \(1,\)",
    ):
        conv_transpose1d(minidl.randn(1, 2, 4), minidl.randn(2, 1, 3), stride=2, output_padding=2)


@pytest.mark.parametrize("transposed", [False, True], ids=["conv", "conv_transpose"])
def test_empty_batch(kernel_mode, transposed):
    layer_class, torch_class = LAYERS[transposed, 2]
    ours, theirs = layer_class(4, 6, 3, stride=2, groups=2), torch_class(4, 6, 3, stride=2, groups=2)
    check_module_parity(ours, theirs, [np.zeros((0, 4, 7, 5))])
