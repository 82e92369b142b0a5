"""Smoke tests of the second-order examples (second_order.py, wgan_gp.py), and the WGAN-GP critic's
penalty gradient against PyTorch's.

Each example's ``main(["--quick", "--out", tmp])`` runs a few steps; the checks are the ones the
example is about: Newton beats gradient descent, power iteration on HVPs finds the Hessian's top
eigenvalue, the PINN and the critic losses go down, and the pictures are written.
"""
import numpy as np
import pytest
import torch
from test_examples_vision import load_example, needs_mnist, needs_sklearn, run_example

import minidl

pytest.importorskip("matplotlib", reason="the examples draw PNGs: pip install matplotlib")


@needs_sklearn
def test_second_order_example(tmp_path, monkeypatch):
    result = run_example("second_order", tmp_path, monkeypatch)
    assert result["newton_steps"] <= 10 < result["descent_steps"]
    assert result["power_eigenvalue"] == pytest.approx(result["exact_eigenvalue"], rel=1e-6)
    before, after = result["mlp_eigenvalues"]
    assert before > 0 and after > 0
    losses = result["losses"]
    assert losses[-1] < losses[0], f"PINN loss did not decrease: {losses[0]} -> {losses[-1]}"
    for picture in ("second_order.png", "pinn_loss.png"):
        assert (tmp_path / picture).stat().st_size > 0, f"second_order did not write {picture}"


@needs_mnist
def test_wgan_gp_example(tmp_path, monkeypatch):
    result = run_example("wgan_gp", tmp_path, monkeypatch)
    losses = result["losses"]
    assert losses[-1] < losses[0], f"critic loss did not decrease: {losses[0]} -> {losses[-1]}"
    assert all(np.isfinite(result["slopes"]))
    for picture in ("samples.png", "loss.png"):
        assert (tmp_path / picture).stat().st_size > 0, f"wgan_gp did not write {picture}"


def test_wgan_gp_penalty_gradients_match_torch(monkeypatch):
    """The penalty's gradient with respect to the critic's weights is a second derivative through
    two convolutions, LeakyReLU and a linear layer: same weights and inputs as torch, same result."""
    module = load_example("wgan_gp", monkeypatch)
    ours = module.build_critic()
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(1, 32, 4, stride=2, padding=1), torch.nn.LeakyReLU(0.2),
        torch.nn.Conv2d(32, 64, 4, stride=2, padding=1), torch.nn.LeakyReLU(0.2),
        torch.nn.Flatten(), torch.nn.Linear(64 * 7 * 7, 1))
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    rng = np.random.default_rng(0)
    real, fake = rng.standard_normal((2, 4, 1, 28, 28)).astype(np.float32)
    epsilon = np.random.default_rng(1).random((4, 1, 1, 1)).astype(np.float32)

    penalty, _ = module.gradient_penalty(ours, minidl.tensor(real), minidl.tensor(fake),
                                         np.random.default_rng(1))
    penalty.backward()
    mixed = torch.tensor(epsilon * real + (1 - epsilon) * fake, requires_grad=True)
    (slope,) = torch.autograd.grad(theirs(mixed).sum(), mixed, create_graph=True)
    expected = ((((slope * slope).sum(dim=(1, 2, 3)) + 1e-12).sqrt() - 1) ** 2).mean()
    expected.backward()
    np.testing.assert_allclose(penalty.item(), expected.item(), rtol=1e-5)
    params = dict(ours.named_parameters())
    as_array = lambda p: np.zeros(tuple(p.shape)) if p.grad is None else p.grad.numpy()  # noqa: E731
    assert params["5.bias"].grad is None  # the slope does not depend on the last bias
    for name, parameter in theirs.named_parameters():
        np.testing.assert_allclose(as_array(params[name]), as_array(parameter), rtol=2e-4,
                                   atol=1e-6, err_msg=f"penalty gradient of {name}")
