"""Optimizers: 100-step trajectories equal torch.optim's, param groups, state_dict, errors."""
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl import optim
from minidl.nn.parameter import Parameter
from minidl.tensors import Tensor

SHAPES = [(3, 4), (5,), (), (2, 1, 3)]
TOLERANCE = {np.float64: dict(rtol=1e-9, atol=1e-12), np.float32: dict(rtol=2e-4, atol=2e-5)}
FLAGS = st.booleans()


def sgd_options():
    options = st.fixed_dictionaries({
        "lr": st.sampled_from([1e-3, 0.05, 0.2]), "momentum": st.sampled_from([0, 0.5, 0.9]),
        "dampening": st.sampled_from([0, 0.3]), "weight_decay": st.sampled_from([0, 0.1]),
        "nesterov": FLAGS, "maximize": FLAGS})
    # Nesterov needs momentum and no dampening: drop the flag elsewhere
    return options.map(lambda o: {**o, "nesterov": o["nesterov"] and o["momentum"] > 0
                                  and o["dampening"] == 0})


def adam_options(weight_decays):
    return st.fixed_dictionaries({
        "lr": st.sampled_from([1e-3, 0.03]),
        "betas": st.tuples(st.sampled_from([0.9, 0.5, 0.0]), st.sampled_from([0.999, 0.9])),
        "eps": st.sampled_from([1e-8, 1e-3]), "weight_decay": st.sampled_from(weight_decays),
        "amsgrad": FLAGS, "maximize": FLAGS})


OPTIONS = {
    "SGD": sgd_options(),
    "Adam": adam_options([0, 0.1]),
    "AdamW": adam_options([0, 1e-2, 0.3]),
    "RMSprop": st.fixed_dictionaries({
        "lr": st.sampled_from([1e-3, 1e-2]), "alpha": st.sampled_from([0.99, 0.9, 0.3]),
        "eps": st.sampled_from([1e-8, 1e-4]), "weight_decay": st.sampled_from([0, 0.1]),
        "momentum": st.sampled_from([0, 0.5]), "centered": FLAGS, "maximize": FLAGS}),
    "Adagrad": st.fixed_dictionaries({
        "lr": st.sampled_from([1e-2, 0.1]), "lr_decay": st.sampled_from([0, 0.01]),
        "weight_decay": st.sampled_from([0, 0.1]),
        "initial_accumulator_value": st.sampled_from([0, 0.1]),
        "eps": st.sampled_from([1e-10, 1e-6]), "maximize": FLAGS}),
}

# two groups per optimizer, each with options of its own
GROUPS = {
    "SGD": ({"momentum": 0.9}, {"lr": 0.05, "momentum": 0.5, "nesterov": True, "weight_decay": 0.1}),
    "Adam": ({}, {"lr": 0.05, "amsgrad": True, "betas": (0.5, 0.9), "weight_decay": 0.1}),
    "AdamW": ({"weight_decay": 0}, {"lr": 0.05, "weight_decay": 0.2, "maximize": True}),
    "RMSprop": ({"momentum": 0.5}, {"lr": 0.05, "centered": True, "alpha": 0.9}),
    "Adagrad": ({"lr_decay": 0.01}, {"lr": 0.05, "weight_decay": 0.1}),
}


def make_params(dtype, seed: int = 0, device: str = "cpu"):
    """The same initial values as minidl Parameters and as torch Parameters."""
    rng = np.random.default_rng(seed)
    values = [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]
    ours = [Parameter(minidl.tensor(v, device=device)) for v in values]
    theirs = [torch.nn.Parameter(torch.tensor(v)) for v in values]
    return ours, theirs


def gradients(values: list, step: int, sign: float = 1.0) -> list:
    """Gradient of a fixed quadratic, ``sign * k (p - 0.3)``, plus noise seeded by the step."""
    rng = np.random.default_rng([7, step])
    return [np.asarray(sign * (0.5 + index) * (v - 0.3) + 0.1 * rng.standard_normal(v.shape, dtype=v.dtype))
            for index, v in enumerate(values)]


def set_grads(ours, theirs, step: int, sign: float = 1.0) -> None:
    for p, g in zip(ours, gradients([p.numpy() for p in ours], step, sign)):
        p.grad = minidl.tensor(g, device=p.device)
    for q, g in zip(theirs, gradients([q.detach().numpy() for q in theirs], step, sign)):
        q.grad = torch.from_numpy(g)


def assert_same(ours, theirs, dtype, what: str) -> None:
    """All parameters equal within the dtype's tolerance (one flat comparison: it is fast)."""
    np.testing.assert_allclose(np.concatenate([p.numpy().ravel() for p in ours]),
                               np.concatenate([q.detach().numpy().ravel() for q in theirs]),
                               **TOLERANCE[dtype], err_msg=what)


def run_side_by_side(ours, our_optimizer, theirs, their_optimizer, dtype, steps, first=0, sign=1.0):
    """Step both with the same gradient function; compare every 10 steps and at the end."""
    for step in range(first, first + steps):
        set_grads(ours, theirs, step, sign)
        our_optimizer.step()
        their_optimizer.step()
        if step % 10 == 9 or step == first + steps - 1:
            assert_same(ours, theirs, dtype, f"after step {step}")


@pytest.mark.parametrize("name", list(OPTIONS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@given(data=st.data())
def test_trajectory_matches_torch(name, dtype, data):
    options = data.draw(OPTIONS[name], label="options")
    ours, theirs = make_params(dtype)
    sign = -1.0 if options["maximize"] else 1.0  # maximize a concave function: stays bounded
    run_side_by_side(ours, getattr(optim, name)(ours, **options),
                     theirs, getattr(torch.optim, name)(theirs, **options), dtype, 100, sign=sign)


@pytest.mark.parametrize("name", list(OPTIONS))
def test_on_every_device(name, device):
    ours, theirs = make_params(np.float64, device=device)
    run_side_by_side(ours, getattr(optim, name)(ours, lr=0.01),
                     theirs, getattr(torch.optim, name)(theirs, lr=0.01), np.float64, 20)
    assert all(p.device == minidl.device(device) for p in ours)


def grouped(module, name, params, **defaults):
    first, second = GROUPS[name]
    groups = [{"params": params[:2], **first}, {"params": params[2:], **second}]
    return getattr(module, name)(groups, **defaults)


@pytest.mark.parametrize("name", list(GROUPS))
def test_param_groups_with_their_own_options(name):
    ours, theirs = make_params(np.float64, seed=1)
    our_optimizer = grouped(optim, name, ours, lr=0.02)
    their_optimizer = grouped(torch.optim, name, theirs, lr=0.02)
    assert our_optimizer.param_groups[1]["lr"] == 0.05
    assert our_optimizer.param_groups[0]["lr"] == 0.02
    sign = -1.0 if name == "AdamW" else 1.0  # its second group maximizes; keep group 0 bounded
    for step in range(60):
        set_grads(ours[:2], theirs[:2], step)
        set_grads(ours[2:], theirs[2:], step, sign)
        our_optimizer.step()
        their_optimizer.step()
        assert_same(ours, theirs, np.float64, f"step {step}")


def plain(value):
    """What a pickle-free checkpoint gives back: NumPy arrays, lists, dicts and numbers."""
    if isinstance(value, (Tensor, torch.Tensor)):
        return np.array(value.detach().numpy() if isinstance(value, torch.Tensor) else value.numpy())
    if isinstance(value, dict):
        return {key: plain(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


@pytest.mark.parametrize("name", list(GROUPS))
def test_state_dict_round_trip_continues_the_same_trajectory(name):
    ours, theirs = make_params(np.float64, seed=2)
    our_optimizer = grouped(optim, name, ours, lr=0.02)
    their_optimizer = grouped(torch.optim, name, theirs, lr=0.02)
    run_side_by_side(ours, our_optimizer, theirs, their_optimizer, np.float64, 30)
    state = our_optimizer.state_dict()
    assert state["param_groups"][1]["params"] == [2, 3]
    assert set(state["state"]) == set(their_optimizer.state_dict()["state"])
    for index, values in state["state"].items():
        assert set(values) == set(their_optimizer.state_dict()["state"][index])
    # a fresh optimizer on copies of the parameters, loaded from the checkpoint form
    copies = [Parameter(minidl.tensor(p.numpy().copy())) for p in ours]
    resumed = grouped(optim, name, copies, lr=0.5)
    resumed.load_state_dict(plain(state))
    assert resumed.param_groups[0]["lr"] == 0.02
    for step in range(30, 60):  # the original and the resumed copy move in lockstep
        for params in (ours, copies):
            for p, g in zip(params, gradients([p.numpy() for p in params], step)):
                p.grad = minidl.tensor(g)
        our_optimizer.step()
        resumed.step()
        for a, b in zip(ours, copies):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=f"step {step}")


@pytest.mark.parametrize("name", list(GROUPS))
def test_loads_a_torch_state_dict_mid_run(name):
    ours, theirs = make_params(np.float64, seed=3)
    their_optimizer = grouped(torch.optim, name, theirs, lr=0.02)
    for step in range(20):
        set_grads(ours, theirs, step)
        their_optimizer.step()
    copies = [Parameter(minidl.tensor(q.detach().numpy().copy())) for q in theirs]
    our_optimizer = grouped(optim, name, copies, lr=0.02)
    our_optimizer.load_state_dict(plain(their_optimizer.state_dict()))
    run_side_by_side(copies, our_optimizer, theirs, their_optimizer, np.float64, 20, first=20)


def test_state_dict_layout_and_values_are_checkpoint_friendly():
    ours, _ = make_params(np.float32)
    optimizer = optim.Adam(ours, lr=0.1, amsgrad=True)
    for p in ours:
        p.grad = minidl.ones_like(p)
    optimizer.step()
    state = optimizer.state_dict()
    assert state["param_groups"] == [{"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8,
                                      "weight_decay": 0, "amsgrad": True, "maximize": False,
                                      "decoupled_weight_decay": False, "params": [0, 1, 2, 3]}]
    assert sorted(state["state"]) == [0, 1, 2, 3]
    entry = state["state"][1]
    assert entry["step"] == 1 and isinstance(entry["step"], int)
    assert sorted(entry) == ["exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step"]
    assert entry["exp_avg"].dtype == np.float32 and entry["exp_avg"].shape == (5,)
    np.testing.assert_allclose(entry["exp_avg"].numpy(), 0.1 * np.ones(5, np.float32))
    # loading float64 arrays casts them to the parameters' dtype and copies them
    loaded = optim.Adam(ours, lr=0.1, amsgrad=True)
    saved = plain(state)
    saved["state"][1]["exp_avg"] = saved["state"][1]["exp_avg"].astype(np.float64)
    loaded.load_state_dict(saved)
    assert loaded.state[ours[1]]["exp_avg"].dtype == np.float32
    saved["state"][1]["exp_avg"][:] = 7
    assert loaded.state[ours[1]]["exp_avg"].numpy()[0] == np.float32(0.1)


def test_sgd_without_momentum_keeps_no_state_and_skips_params_without_grad():
    ours, _ = make_params(np.float64)
    before = [p.numpy().copy() for p in ours]
    optimizer = optim.SGD(ours, lr=0.5)
    ours[0].grad = minidl.ones_like(ours[0])
    optimizer.step()
    np.testing.assert_allclose(ours[0].numpy(), before[0] - 0.5)
    for p, b in zip(ours[1:], before[1:]):
        np.testing.assert_array_equal(p.numpy(), b)
    assert optimizer.state_dict()["state"] == {}
    adam = optim.Adam(ours)
    ours[2].grad = minidl.ones_like(ours[2])
    adam.step()
    assert set(adam.state_dict()["state"]) == {0, 2}


def test_zero_grad_sets_to_none_or_zero():
    ours, _ = make_params(np.float32)
    optimizer = optim.SGD(ours, lr=0.1)
    for p in ours:
        p.grad = minidl.ones_like(p)
    optimizer.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.numpy().any() for p in ours)
    optimizer.zero_grad()
    assert all(p.grad is None for p in ours)


def test_step_evaluates_the_closure_with_grad_and_builds_no_graph():
    weight = Parameter(minidl.tensor([1.0, -2.0]))
    optimizer = optim.SGD([weight], lr=0.25)

    def closure():
        optimizer.zero_grad()
        loss = (weight * weight).sum()
        loss.backward()
        return loss

    with minidl.no_grad():
        loss = optimizer.step(closure)
    assert loss.item() == 5.0
    np.testing.assert_allclose(weight.numpy(), [0.5, -1.0])  # w - 0.25 * 2w
    assert weight.is_leaf and weight.grad_fn is None and minidl.is_grad_enabled()


def test_add_param_group_and_named_parameters():
    ours, _ = make_params(np.float64)
    optimizer = optim.SGD([("a", ours[0]), ("b", ours[1])], lr=0.1, momentum=0.9)
    assert optimizer.param_groups[0]["param_names"] == ["a", "b"]
    optimizer.add_param_group({"params": ours[2], "lr": 0.01})
    assert optimizer.param_groups[1]["params"] == [ours[2]]
    assert optimizer.param_groups[1]["momentum"] == 0.9
    assert "Parameter Group 1" in repr(optimizer) and "lr: 0.01" in repr(optimizer)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optimizer.add_param_group({"params": [ours[3], ours[0]]})
    with pytest.raises(ValueError, match="SGD: invalid lr -1"):
        optimizer.add_param_group({"params": [ours[3]], "lr": -1})


@pytest.mark.parametrize("make, error, message", [
    (lambda p: optim.SGD(p, lr=-0.1), ValueError, r"SGD: invalid lr -0\.1 \(expected lr >= 0\)"),
    (lambda p: optim.SGD(p, momentum=-1), ValueError, "SGD: invalid momentum -1"),
    (lambda p: optim.SGD(p, nesterov=True), ValueError, "SGD: Nesterov momentum requires momentum"),
    (lambda p: optim.SGD(p, momentum=0.9, dampening=0.1, nesterov=True), ValueError,
     "dampening=0.1"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.999)), ValueError,
     r"Adam: invalid beta parameter at index 0: 1\.0 \(expected 0 <= beta < 1\)"),
    (lambda p: optim.AdamW(p, betas=(0.9, -0.1)), ValueError, "AdamW: invalid beta parameter at index 1"),
    (lambda p: optim.Adam(p, eps=-1e-8), ValueError, "Adam: invalid eps"),
    (lambda p: optim.AdamW(p, weight_decay=-0.01), ValueError, "AdamW: invalid weight_decay -0.01"),
    (lambda p: optim.RMSprop(p, alpha=-0.5), ValueError, "RMSprop: invalid alpha -0.5"),
    (lambda p: optim.Adagrad(p, lr_decay=-1), ValueError, "Adagrad: invalid lr_decay -1"),
    (lambda p: optim.Adagrad(p, initial_accumulator_value=-1), ValueError,
     "Adagrad: invalid initial_accumulator_value"),
    (lambda p: optim.Adam([]), ValueError, "Adam got an empty parameter list"),
    (lambda p: optim.Adam(p[0]), TypeError, r"iterable of Tensors or dicts, got a single Tensor of shape \(3, 4\)"),
    (lambda p: optim.Adam([p[0], np.ones(3)]), TypeError, "Adam can only optimize Tensors.*ndarray"),
    (lambda p: optim.SGD([p[0] * 2]), ValueError, r"SGD can't optimize a non-leaf Tensor \(shape \(3, 4\)\)"),
    (lambda p: optim.SGD([{"params": p[:1]}, p[1:]]), TypeError, "SGD: a param group must be a dict, got list"),
    (lambda p: optim.SGD([{"params": set(p)}]), TypeError, "not a set"),
])
def test_bad_arguments_name_the_optimizer_and_value(make, error, message):
    ours = [Parameter(minidl.randn(3, 4)), Parameter(minidl.randn(2))]
    with pytest.raises(error, match=message):
        make(ours)


def test_load_state_dict_checks_the_groups():
    ours, _ = make_params(np.float64)
    optimizer = optim.Adam([{"params": ours[:2]}, {"params": ours[2:]}])
    with pytest.raises(ValueError, match="Adam: the loaded state dict has 1 parameter groups, the optimizer has 2"):
        optimizer.load_state_dict(optim.Adam(ours).state_dict())
    other = optim.Adam([{"params": ours[:1]}, {"params": ours[1:]}])
    with pytest.raises(ValueError, match="group 0 has 1 parameters, the optimizer's has 2"):
        optimizer.load_state_dict(other.state_dict())


def test_adagrad_honours_a_groups_initial_accumulator_value():
    """A deliberate difference: PyTorch fills every group's sum with the constructor's value."""
    ours, _ = make_params(np.float64)
    optimizer = optim.Adagrad([{"params": ours[:1]}, {"params": ours[1:2], "lr": 0.5,
                                                      "initial_accumulator_value": 3.0}],
                              initial_accumulator_value=1.0)
    assert optimizer.state[ours[0]]["sum"].numpy().max() == 1.0
    before = ours[1].numpy().copy()
    ours[1].grad = minidl.ones_like(ours[1])
    optimizer.step()
    np.testing.assert_allclose(optimizer.state[ours[1]]["sum"].numpy(), np.full(5, 4.0))
    np.testing.assert_allclose(ours[1].numpy(), before - 0.5 / (2 + 1e-10))


def test_adam_bias_correction_first_step_moves_by_lr():
    """Sanity independent of torch: Adam's first step is lr * sign(g) (up to eps)."""
    weight = Parameter(minidl.tensor([3.0, -1.0, 0.5], dtype=minidl.float64))
    weight.grad = minidl.tensor([2.0, -0.001, 40.0], dtype=minidl.float64)
    optim.Adam([weight], lr=0.1, eps=0).step()
    np.testing.assert_allclose(weight.numpy(), [2.9, -0.9, 0.4], rtol=1e-12)
