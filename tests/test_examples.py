"""Smoke tests: each example runs in --quick mode and its training loss goes down."""
import importlib.util
import pathlib

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, *args: str) -> dict:
    """Import ``examples/<name>.py`` and call its ``main(["--quick", ...])``."""
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(["--quick", *args])


@pytest.mark.parametrize("name, writes", [("logistic_regression", []),
                                          ("train_digits", ["curves.png", "best.safetensors"])])
def test_example_runs_and_learns(name, writes, tmp_path):
    result = run_example(name, *(["--out", str(tmp_path)] if writes else []))
    for file_name in writes:
        assert (tmp_path / file_name).exists(), f"{name} did not write {file_name}"
    losses = result["losses"]
    assert losses[-1] < losses[0], f"{name}: loss did not decrease: {losses[0]} -> {losses[-1]}"
