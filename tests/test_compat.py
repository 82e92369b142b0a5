"""What real PyTorch scripts use, against PyTorch: index assignment (gradcheck, gradgradcheck, hvp
parity), dtype aliases, the cuda/backends/accelerator namespaces, compile, inference_mode, the
factories' positional forms, the legacy Tensor constructor, Adadelta, flatten_parameters."""
import numpy as np
import pytest
import torch
from helpers import assert_close, assert_hvp_matches_torch
from hypothesis import given
from hypothesis import strategies as st

import minidl


# ----- index assignment -------------------------------------------------------------------------
def assign(m, x, v, kind):
    """y = 2x, then one assignment of ``kind`` into y; returns y (differentiable in x and v)."""
    y = x * 2
    if kind == "row":
        y[1] = v[0] * v[0]
    elif kind == "slice":
        y[:, :2] = v[:2].reshape(1, 2)  # broadcast over rows
    elif kind == "mask":
        y[m.tensor(np.array([[True, False, True], [False, True, False], [False, False, True]]))] = \
            v[0]
    elif kind == "fancy":
        y[m.tensor(np.array([0, 2])), 1] = v[1:]
    elif kind == "scalar":
        y[0, 0] = 5.0
    return y


KINDS = ["row", "slice", "mask", "fancy", "scalar"]


@pytest.mark.parametrize("kind", KINDS)
@given(seed=st.integers(0, 2**16))
def test_setitem_values_and_gradients_match_torch(kind, seed):
    rng = np.random.default_rng(seed)
    x, v = rng.standard_normal((3, 3)), rng.standard_normal(3)
    results = []
    for m in (minidl, torch):
        xt, vt = m.tensor(x, requires_grad=True), m.tensor(v, requires_grad=True)
        y = assign(m, xt, vt, kind)
        (y * y).sum().backward()
        results.append((y, xt.grad, vt.grad))
    for ours, theirs in zip(*results):
        if theirs is None:
            assert ours is None or not ours.numpy().any()
        else:
            assert_close(ours, theirs, np.float64)
    xt, vt = minidl.tensor(x, requires_grad=True), minidl.tensor(v, requires_grad=True)
    assert minidl.gradcheck(lambda a, b: assign(minidl, a, b, kind), [xt, vt])
    assert minidl.autograd.gradgradcheck(lambda a, b: assign(minidl, a, b, kind) ** 2, [xt, vt])
    assert_hvp_matches_torch(lambda m, a, b: assign(m, a, b, kind) ** 2, [x, v], f"setitem {kind}")


def test_setitem_rules_as_pytorch():
    leaf = minidl.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        leaf[0] = 2.0
    with minidl.no_grad():
        leaf[0] = 2.0  # allowed without a graph, as PyTorch
    assert leaf._version == 1 and leaf.is_leaf
    buffer = minidl.zeros(3)
    w = minidl.ones(1, requires_grad=True)
    buffer[1:2] = w * 3  # a buffer that receives a differentiable value joins the graph
    assert buffer.requires_grad and not buffer.is_leaf
    buffer.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [3.0])
    y = minidl.ones(3, requires_grad=True).exp()
    total = y.sum()
    y[0] = 0.0  # exp saved y: its backward would use the new value
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        total.backward()
    ints = minidl.zeros(3, dtype=minidl.int64)
    ints[0] = minidl.tensor(2.7)  # cast to the tensor's dtype, as PyTorch
    assert ints.tolist() == [2, 0, 0]
    with pytest.raises(IndexError, match="setitem: cannot assign"):
        minidl.zeros(3)[5] = 1.0


# ----- names scripts use ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["long", "int", "short", "float", "double", "half", "bool",
                                  "float16", "float32", "float64", "int64", "uint8"])
def test_dtype_aliases_match_torch(name):
    assert str(minidl.ones(2, dtype=getattr(minidl, name)).dtype) == \
        str(torch.ones(2, dtype=getattr(torch, name)).dtype).replace("torch.", "")


def test_bfloat16_is_a_dtype_that_says_it_is_unsupported():
    assert repr(minidl.bfloat16) == "minidl.bfloat16"
    for make in (lambda: minidl.zeros(2, dtype=minidl.bfloat16),
                 lambda: minidl.ones(2).to(minidl.bfloat16),
                 lambda: minidl.tensor([1.0], dtype=minidl.bfloat16)):
        with pytest.raises(TypeError, match="minidl.bfloat16 is not supported"):
            make()


def test_cuda_backends_accelerator_and_compile_namespaces():
    assert minidl.cuda.is_available() == torch.cuda.is_available() is False  # the CI machine
    assert minidl.cuda.device_count() == 0
    minidl.cuda.manual_seed(3)
    first = minidl.randn(2)
    minidl.cuda.manual_seed_all(3)
    np.testing.assert_array_equal(first.numpy(), minidl.randn(2).numpy())  # one generator
    minidl.cuda.synchronize()
    minidl.cuda.empty_cache()
    minidl.backends.cuda.matmul.allow_tf32 = True  # scripts set these; they change nothing here
    minidl.backends.cudnn.benchmark = True
    assert minidl.backends.mps.is_available() is False
    assert minidl.accelerator.is_available() is False
    model = minidl.nn.Linear(2, 2)
    assert minidl.compile(model) is model and minidl.compile(mode="max-autotune")(model) is model
    t = minidl.ones(2)
    assert t.is_cpu and not t.is_cuda and (t.is_cpu, t.is_cuda) == (torch.ones(2).is_cpu, False)


def test_inference_mode_as_context_manager_and_decorator():
    @minidl.inference_mode
    def bare():
        return minidl.is_grad_enabled()

    @minidl.inference_mode()
    def called():
        return minidl.is_grad_enabled()

    with minidl.inference_mode():
        assert not minidl.is_grad_enabled()
        with minidl.inference_mode(False):
            assert minidl.is_grad_enabled()
    assert bare() is False and called() is False and minidl.is_grad_enabled()
    x = minidl.ones(2, requires_grad=True)
    with minidl.inference_mode():
        assert not (x * 2).requires_grad


@pytest.mark.parametrize("args, kwargs", [((10, (3,)), {}), ((2, 5, (4,)), {}),
                                          ((3,), {"size": (2, 2)}), ((0, 4), {"size": (5,)})])
def test_randint_positional_forms_mean_what_pytorch_means(args, kwargs):
    ours, theirs = minidl.randint(*args, **kwargs), torch.randint(*args, **kwargs)
    assert tuple(ours.shape) == tuple(theirs.shape) and str(ours.dtype) == "int64"
    low, high = (0, args[0]) if len(args) == 1 or isinstance(args[1], tuple) else args[:2]
    assert ours.numpy().min() >= low and ours.numpy().max() < high


def test_legacy_tensor_constructor_builds_float32_values():
    ours, theirs = minidl.Tensor([1, 2.5]), torch.Tensor([1, 2.5])
    assert str(ours.dtype) == "float32" == str(theirs.dtype).replace("torch.", "")
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    with pytest.raises(TypeError, match="uninitialised-size form is not supported"):
        minidl.Tensor(2, 3)


@given(lr=st.sampled_from([1.0, 0.3]), rho=st.sampled_from([0.9, 0.5]),
       weight_decay=st.sampled_from([0.0, 0.1]), maximize=st.booleans())
def test_adadelta_matches_torch(lr, rho, weight_decay, maximize):
    results = []
    for m in (minidl, torch):
        w = m.tensor(np.linspace(-1, 1, 6).reshape(2, 3), requires_grad=True)
        optimizer = m.optim.Adadelta([w], lr=lr, rho=rho, weight_decay=weight_decay,
                                     maximize=maximize)
        for _ in range(4):
            optimizer.zero_grad()
            (w ** 3).sum().backward()
            optimizer.step()
        results.append((w, optimizer.state_dict()["state"][0]))
    (ours, our_state), (theirs, their_state) = results
    assert_close(ours, theirs, np.float64)
    for key in ("square_avg", "acc_delta"):
        assert_close(our_state[key], their_state[key], np.float64, key)
    with pytest.raises(ValueError, match="invalid rho"):
        minidl.optim.Adadelta([minidl.ones(1, requires_grad=True)], rho=1.5)


def test_flatten_parameters_is_a_no_op():
    lstm = minidl.nn.LSTM(2, 3)
    before = {k: v.numpy().copy() for k, v in lstm.state_dict().items()}
    lstm.flatten_parameters()
    assert all((lstm.state_dict()[k].numpy() == v).all() for k, v in before.items())


# ----- tensor methods -----------------------------------------------------------------------------
IN_PLACE = {
    "add_": lambda y, w: y.add_(w, alpha=2),
    "sub_": lambda y, w: y.sub_(w * w, alpha=0.5),
    "mul_": lambda y, w: y.mul_(w),
    "div_": lambda y, w: y.div_(w * w + 1),
    "pow_": lambda y, w: y.pow_(2),
    "clamp_": lambda y, w: y.clamp_(min=-0.5, max=0.5),
    "neg_": lambda y, w: y.neg_(),
    "exp_": lambda y, w: y.exp_(),
}


@pytest.mark.parametrize("name", IN_PLACE)
def test_in_place_arithmetic_is_differentiable_as_pytorch(name):
    values = np.random.default_rng(0).standard_normal(4)
    results = []
    for m in (minidl, torch):
        w = m.tensor(values, requires_grad=True)
        y = w * 3
        same = IN_PLACE[name](y, w)
        assert same is y and y._version == 1
        (y * y).sum().backward()
        results.append((y, w.grad))
    for ours, theirs in zip(*results):
        assert_close(ours, theirs, np.float64, name)


def test_in_place_updates_without_a_graph_and_their_errors():
    p = minidl.ones(3, requires_grad=True)
    with minidl.no_grad():
        p.add_(minidl.full((3,), 2.0), alpha=-0.5)  # an optimizer-style update of a leaf
    assert p.is_leaf and p.requires_grad and p.tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        p.mul_(2)
    for m in (minidl, torch):
        with pytest.raises(RuntimeError, match="can't be cast to the desired output type"):
            m.tensor([1, 2]).add_(1.5)


def test_new_tensors_type_and_format_as_pytorch():
    for m in (minidl, torch):
        t = m.ones(2, dtype=m.float64)
        assert str(t.new_zeros(2, 3).dtype).endswith("float64") and tuple(t.new_ones((4,)).shape) == (4,)
        assert t.new_full((2,), 7.0).tolist() == [7.0, 7.0] and tuple(t.new_empty(3).shape) == (3,)
        assert str(t.new_tensor([1, 2]).dtype).endswith("float64")
        assert str(t.type(m.float32).dtype).endswith("float32")
        assert f"{m.tensor(3.14159):.3f}" == "3.142"
        assert m.ones(3).argmax().ndim == 0
    assert minidl.ones(2).type() == "minidl.FloatTensor"


def test_multinomial_as_pytorch():
    weights = minidl.tensor([[0.1, 0.0, 0.9], [0.5, 0.5, 0.0]])
    draws = minidl.multinomial(weights, 2)
    assert tuple(draws.shape) == tuple(torch.multinomial(torch.tensor(weights.numpy()), 2).shape)
    assert str(draws.dtype) == "int64"
    assert all(len(set(row)) == 2 and 1 not in row[:1] for row in draws.tolist()[:1])
    assert (draws.numpy()[1] != 2).all()  # a zero weight is never drawn
    frequencies = np.bincount(minidl.multinomial(minidl.tensor([1.0, 3.0]), 4000,
                                                 replacement=True).numpy(), minlength=2) / 4000
    np.testing.assert_allclose(frequencies, [0.25, 0.75], atol=0.03)
    minidl.manual_seed(5)
    first = weights.multinomial(1).tolist()
    minidl.manual_seed(5)
    assert weights.multinomial(1).tolist() == first  # seeded like every other draw
    for m in (minidl, torch):
        assert sorted(m.multinomial(m.tensor([[0.5, 0.5, 0.0]]), 3)[0].tolist()) == [0, 1, 2]
        assert m.multinomial(m.tensor([[0.5, 0.5, 0.0]]), 3)[0].tolist()[2] == 2  # zero last
        with pytest.raises(RuntimeError):
            m.multinomial(m.tensor([[0.5, 0.5, 0.0]]), 4)


def test_data_is_a_tensor_sharing_memory_outside_the_graph_as_pytorch():
    for m in (minidl, torch):
        m.manual_seed(0)
        layer = m.nn.Linear(3, 2)
        p = layer.weight
        assert isinstance(p.data, m.Tensor) and not p.data.requires_grad
        version = p._version
        p.data.add_(m.ones(2, 3))  # PyTorch idiom: an update nobody records
        p.data.mul_(0.5)
        p.data.copy_(p.data * 2)
        assert p._version == version  # .data's writes are invisible to its version, as PyTorch's
        loss = layer(m.ones(1, 3)).sum()
        p.data.normal_(0, 0.01)  # nor to a graph that saved p: .data is the documented escape
        loss.backward()
        assert p.grad is not None
        p.data = m.zeros(2, 3)  # assigning .data replaces the values, keeps the Parameter
        assert p is layer.weight and not p.detach().numpy().any()
    t = minidl.ones(3)
    assert t.array is t.data.array and isinstance(t.array, np.ndarray)  # the raw backend array
    minidl.manual_seed(1)
    first = minidl.empty(1000).uniform_(-2, 2)
    assert -2 <= float(first.min()) and float(first.max()) < 2 and abs(float(first.mean())) < 0.2
