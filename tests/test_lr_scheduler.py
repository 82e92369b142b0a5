"""Learning-rate schedulers: the lr (and momentum) sequences equal torch's; state_dict; errors."""
import warnings

import numpy as np
import pytest
import torch
import torch.optim.lr_scheduler as torch_schedulers
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl import optim
from minidl.nn.parameter import Parameter
from minidl.optim import lr_scheduler

STEPS = 50

# each entry: hypothesis strategy of keyword arguments -> factory(module, optimizer, kwargs)
SCHEDULERS = {
    "StepLR": (st.fixed_dictionaries({"step_size": st.integers(1, 12),
                                      "gamma": st.floats(0.1, 0.9)}),
               lambda m, o, kw: m.StepLR(o, **kw)),
    "MultiStepLR": (st.fixed_dictionaries({"milestones": st.lists(st.integers(0, 45), max_size=5),
                                           "gamma": st.floats(0.1, 0.9)}),
                    lambda m, o, kw: m.MultiStepLR(o, **kw)),
    "ExponentialLR": (st.fixed_dictionaries({"gamma": st.floats(0.8, 1.0)}),
                      lambda m, o, kw: m.ExponentialLR(o, **kw)),
    "CosineAnnealingLR": (st.fixed_dictionaries({"T_max": st.integers(1, 30),
                                                 "eta_min": st.sampled_from([0.0, 1e-3])}),
                          lambda m, o, kw: m.CosineAnnealingLR(o, **kw)),
    "LinearLR": (st.fixed_dictionaries({"start_factor": st.floats(0.05, 1.0),
                                        "end_factor": st.floats(0.0, 1.0),
                                        "total_iters": st.integers(1, 40)}),
                 lambda m, o, kw: m.LinearLR(o, **kw)),
    "LambdaLR": (st.fixed_dictionaries({"power": st.floats(0.5, 2.0)}),
                 lambda m, o, kw: m.LambdaLR(o, [lambda e: 1 / (1 + e) ** kw["power"],
                                                 lambda e: 0.97 ** e])),
    "OneCycleLR": (st.fixed_dictionaries({
        "max_lr": st.sampled_from([0.5, [1.0, 0.3]]), "pct_start": st.floats(0.1, 0.6),
        "anneal_strategy": st.sampled_from(["cos", "linear"]), "three_phase": st.booleans(),
        "div_factor": st.sampled_from([25.0, 4.0]), "final_div_factor": st.sampled_from([1e4, 10.0]),
        "base_momentum": st.sampled_from([0.85, 0.5]), "cycle_momentum": st.booleans()}),
        lambda m, o, kw: m.OneCycleLR(o, total_steps=STEPS + 1, **kw)),
    "SequentialLR": (st.fixed_dictionaries({"warmup": st.integers(1, 10), "decay": st.integers(10, 30)}),
                     lambda m, o, kw: m.SequentialLR(o, [
                         m.LinearLR(o, start_factor=0.1, total_iters=kw["warmup"]),
                         m.CosineAnnealingLR(o, T_max=kw["decay"], eta_min=1e-4),
                         m.ExponentialLR(o, gamma=0.9)],
                         milestones=[kw["warmup"], kw["warmup"] + kw["decay"]])),
}


def optimizers(kind: str):
    """The same two-group optimizer in minidl and torch (the groups have different lrs)."""
    options = {"SGD": {"lr": 0.1, "momentum": 0.9}, "Adam": {"lr": 0.01},
               "RMSprop": {"lr": 0.01, "momentum": 0.5}}[kind]
    ours = [Parameter(minidl.zeros(2)), Parameter(minidl.zeros(3))]
    theirs = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))]
    our_groups = [{"params": ours[:1]}, {"params": ours[1:], "lr": 3 * options["lr"]}]
    their_groups = [{"params": theirs[:1]}, {"params": theirs[1:], "lr": 3 * options["lr"]}]
    return getattr(optim, kind)(our_groups, **options), getattr(torch.optim, kind)(their_groups, **options)


def momenta(optimizer) -> list:
    key = "betas" if "betas" in optimizer.defaults else "momentum"
    return [group[key][0] if key == "betas" else group[key] for group in optimizer.param_groups]


def step_both(pairs, steps, metric=None):
    """Step each (optimizer, scheduler) pair; return the lrs and momenta seen after each step."""
    history = [[] for _ in pairs]
    for step in range(steps):
        for record, (optimizer, scheduler) in zip(history, pairs):
            optimizer.step()
            if metric is None:
                scheduler.step()
            else:
                scheduler.step(metric[step])
            lrs = scheduler.get_last_lr()
            assert lrs == [group["lr"] for group in optimizer.param_groups]
            record.append(lrs + momenta(optimizer))
    return [np.array(record, dtype=np.float64) for record in history]


def assert_same_schedule(ours, theirs) -> None:
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", list(SCHEDULERS))
@pytest.mark.parametrize("kind", ["SGD", "Adam"])
@given(data=st.data())
def test_schedule_matches_torch(name, kind, data):
    strategy, make = SCHEDULERS[name]
    kwargs = data.draw(strategy, label="kwargs")
    our_optimizer, their_optimizer = optimizers(kind)
    ours = make(lr_scheduler, our_optimizer, kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns when a scheduler steps before the optimizer
        theirs = make(torch_schedulers, their_optimizer, kwargs)
        assert_same_schedule(ours.get_last_lr(), theirs.get_last_lr())
        assert_same_schedule(*step_both([(our_optimizer, ours), (their_optimizer, theirs)], STEPS))
    assert ours.last_epoch == theirs.last_epoch == STEPS


def test_one_cycle_cycles_rmsprop_momentum_like_torch():
    our_optimizer, their_optimizer = optimizers("RMSprop")
    ours = lr_scheduler.OneCycleLR(our_optimizer, max_lr=0.2, epochs=5, steps_per_epoch=10)
    theirs = torch_schedulers.OneCycleLR(their_optimizer, max_lr=0.2, epochs=5, steps_per_epoch=10)
    assert_same_schedule(*step_both([(our_optimizer, ours), (their_optimizer, theirs)], 49))
    assert our_optimizer.param_groups[0]["momentum"] != 0.5


plateau_options = st.fixed_dictionaries({
    "mode": st.sampled_from(["min", "max"]), "factor": st.sampled_from([0.1, 0.5]),
    "patience": st.integers(0, 4), "threshold": st.sampled_from([1e-4, 0.05]),
    "threshold_mode": st.sampled_from(["rel", "abs"]), "cooldown": st.integers(0, 3),
    "min_lr": st.sampled_from([0, 1e-3, [1e-3, 0.05]]), "eps": st.sampled_from([1e-8, 1e-3])})


@given(options=plateau_options,
       metrics=st.lists(st.sampled_from([1.0, 0.99, 0.9, 0.5, 1.2, 0.3]), min_size=STEPS, max_size=STEPS))
def test_reduce_on_plateau_matches_torch(options, metrics):
    our_optimizer, their_optimizer = optimizers("SGD")
    ours = lr_scheduler.ReduceLROnPlateau(our_optimizer, **options)
    theirs = torch_schedulers.ReduceLROnPlateau(their_optimizer, **options)
    assert_same_schedule(*step_both([(our_optimizer, ours), (their_optimizer, theirs)], STEPS,
                                    metric=metrics))
    assert (ours.best, ours.num_bad_epochs, ours.cooldown_counter) == \
        (theirs.best, theirs.num_bad_epochs, theirs.cooldown_counter)


def test_reduce_on_plateau_takes_a_tensor_metric_and_reduces_after_patience():
    optimizer, _ = optimizers("SGD")
    scheduler = lr_scheduler.ReduceLROnPlateau(optimizer, patience=2, factor=0.5)
    for _ in range(3):
        scheduler.step(minidl.tensor(1.0))
    assert scheduler.get_last_lr() == pytest.approx([0.1, 0.3])
    scheduler.step(minidl.tensor(1.0))
    assert scheduler.get_last_lr() == pytest.approx([0.05, 0.15])


class Warmup:
    """A callable object: its state goes into LambdaLR's state_dict (a lambda's cannot)."""

    def __init__(self, steps):
        self.steps = steps

    def __call__(self, epoch):
        return min(1.0, (epoch + 1) / self.steps)


ROUND_TRIP = {
    "StepLR": lambda o: lr_scheduler.StepLR(o, step_size=4, gamma=0.5),
    "MultiStepLR": lambda o: lr_scheduler.MultiStepLR(o, milestones=[5, 15, 15, 30]),
    "ExponentialLR": lambda o: lr_scheduler.ExponentialLR(o, gamma=0.95),
    "CosineAnnealingLR": lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=13, eta_min=0.001),
    "LinearLR": lambda o: lr_scheduler.LinearLR(o, start_factor=0.2, total_iters=30),
    "LambdaLR": lambda o: lr_scheduler.LambdaLR(o, Warmup(40)),
    "OneCycleLR": lambda o: lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=60, three_phase=True),
    "SequentialLR": lambda o: lr_scheduler.SequentialLR(o, [
        lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=5),
        lr_scheduler.CosineAnnealingLR(o, T_max=20)], milestones=[22]),
}


@pytest.mark.parametrize("name", list(ROUND_TRIP))
def test_state_dict_round_trip_continues_the_schedule(name):
    optimizer, _ = optimizers("SGD")
    scheduler = ROUND_TRIP[name](optimizer)
    step_both([(optimizer, scheduler)], 20)
    saved_optimizer, saved = optimizer.state_dict(), scheduler.state_dict()
    assert "optimizer" not in saved
    resumed_optimizer, _ = optimizers("SGD")
    if name == "LambdaLR":
        resumed = lr_scheduler.LambdaLR(resumed_optimizer, Warmup(1))
    else:
        resumed = ROUND_TRIP[name](resumed_optimizer)
    resumed.load_state_dict(saved)
    resumed_optimizer.load_state_dict(saved_optimizer)  # after the scheduler, as in PyTorch
    assert resumed.get_last_lr() == scheduler.get_last_lr()
    expected, got = step_both([(optimizer, scheduler), (resumed_optimizer, resumed)], 30)
    np.testing.assert_array_equal(got, expected)


def test_reduce_on_plateau_state_dict_round_trip():
    optimizer, _ = optimizers("SGD")
    scheduler = lr_scheduler.ReduceLROnPlateau(optimizer, patience=1, cooldown=2)
    metrics = [1.0, 0.9, 0.95, 0.97, 0.99, 0.98, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    step_both([(optimizer, scheduler)], 6, metric=metrics)
    resumed_optimizer, _ = optimizers("SGD")
    resumed = lr_scheduler.ReduceLROnPlateau(resumed_optimizer, mode="max", patience=9)
    resumed.load_state_dict(scheduler.state_dict())
    resumed_optimizer.load_state_dict(optimizer.state_dict())
    expected, got = step_both([(optimizer, scheduler), (resumed_optimizer, resumed)], 6,
                              metric=metrics[6:])
    np.testing.assert_array_equal(got, expected)


def test_resuming_with_last_epoch_matches_torch():
    pairs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for module, optimizer in zip((lr_scheduler, torch_schedulers), optimizers("SGD")):
            first = module.CosineAnnealingLR(optimizer, T_max=10)
            step_both([(optimizer, first)], 4)
            pairs.append((optimizer, module.CosineAnnealingLR(optimizer, T_max=10, last_epoch=4)))
        assert_same_schedule(pairs[0][1].get_last_lr(), pairs[1][1].get_last_lr())
        assert_same_schedule(*step_both(pairs, 20))
    fresh, _ = optimizers("SGD")
    with pytest.raises(KeyError, match=r"CosineAnnealingLR: param_groups\[0\] has no 'initial_lr'"):
        lr_scheduler.CosineAnnealingLR(fresh, T_max=10, last_epoch=3)


@pytest.mark.parametrize("make, error, message", [
    (lambda o: lr_scheduler.StepLR("sgd", 3), TypeError, "StepLR: str is not an Optimizer"),
    (lambda o: lr_scheduler.LinearLR(o, start_factor=0), ValueError,
     r"LinearLR: start_factor must be in \(0, 1\], got 0"),
    (lambda o: lr_scheduler.LinearLR(o, end_factor=1.5), ValueError, "end_factor must be in"),
    (lambda o: lr_scheduler.LambdaLR(o, [lambda e: 1.0]), ValueError, "LambdaLR: expected 2 lr_lambdas, got 1"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=1.0), ValueError, "give either total_steps or both"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=0), ValueError,
     "positive integer total_steps, got 0"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=9, pct_start=1), ValueError,
     "float pct_start"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=[1.0], total_steps=9), ValueError,
     "max_lr must have one value per param group: got 1 values for 2 groups"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=9, anneal_strategy="exp"),
     ValueError, "anneal_strategy must be 'cos' or 'linear'"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, factor=1.0), ValueError, "factor should be < 1.0, got 1.0"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, mode="up"), ValueError, "mode must be 'min' or 'max'"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, threshold_mode="x"), ValueError, "threshold_mode"),
    (lambda o: lr_scheduler.SequentialLR(o, [lr_scheduler.StepLR(o, 2)], milestones=[3]), ValueError,
     "one milestone fewer than schedulers, got 1 schedulers and 1 milestones"),
    (lambda o: lr_scheduler.SequentialLR(o, [lr_scheduler.StepLR(o, 2),
                                             lr_scheduler.ReduceLROnPlateau(o)], milestones=[3]),
     ValueError, r"does not support ReduceLROnPlateau \(index 1\)"),
    (lambda o: lr_scheduler.SequentialLR(o, [lr_scheduler.StepLR(optimizers("Adam")[0], 2)], []),
     ValueError, "StepLR at index 0 has another one"),
])
def test_bad_arguments_name_the_scheduler(make, error, message):
    optimizer, _ = optimizers("SGD")
    with pytest.raises(error, match=message):
        make(optimizer)


def test_one_cycle_errors_past_its_steps_and_without_momentum():
    optimizer, _ = optimizers("SGD")
    scheduler = lr_scheduler.OneCycleLR(optimizer, max_lr=1.0, total_steps=3)
    for _ in range(3):
        scheduler.step()
    with pytest.raises(ValueError, match="OneCycleLR: tried to step 4 times, but total_steps is 3"):
        scheduler.step()
    adagrad = optim.Adagrad([Parameter(minidl.zeros(2))])
    with pytest.raises(ValueError, match="cycle_momentum needs an optimizer with momentum or betas, Adagrad"):
        lr_scheduler.OneCycleLR(adagrad, max_lr=1.0, total_steps=3)
