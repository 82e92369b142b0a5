"""Smoke tests: each example runs in --quick mode and its training loss goes down."""
import importlib.util
import pathlib

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, *args: str) -> dict:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(["--quick", *args])


@pytest.mark.parametrize("name", ["logistic_regression"])
def test_example_runs_and_learns(name):
    result = run_example(name)
    losses = result["losses"]
    assert losses[-1] < losses[0], f"{name}: loss did not decrease: {losses[0]} -> {losses[-1]}"
