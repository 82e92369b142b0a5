"""Every public layer and functional op is exercised by a test file that gradchecks and compares with torch.

The core ops have their own table (tests/op_specs.py); this covers ``minidl.nn`` and
``minidl.nn.functional``, whose tests live per family.
"""
import inspect
import pathlib
import re

import pytest

import minidl.nn
import minidl.nn.functional as F

# this file names every layer and the checks it looks for, so it cannot count as a checking test
TESTS = {p.name: p.read_text() for p in pathlib.Path(__file__).parent.glob("test_*.py")
         if p.name != pathlib.Path(__file__).name}
TESTS["op_specs.py"] = (pathlib.Path(__file__).parent / "op_specs.py").read_text()
# files that gradcheck (directly or through gradcheck_module) and compare with torch
CHECKING = {name: text for name, text in TESTS.items()
            if re.search(r"gradcheck", text) and re.search(r"\btorch\b", text)}
# files that gradgradcheck (float64) and compare second derivatives (HVPs) with torch
SECOND_ORDER = {name: text for name, text in TESTS.items()
                if re.search(r"gradgradcheck", text) and re.search(r"hvp", text)}
SECOND_ORDER["op_specs.py"] = TESTS["op_specs.py"]  # test_ops.py gradgradchecks every spec
# layers/functional ops whose second backward raises an error naming the op (the target: none)
NO_DOUBLE_BACKWARD: set = set()
NOT_DIFFERENTIABLE = {"Module", "Parameter", "Sequential", "ModuleList", "ModuleDict", "Identity",
                      "Flatten", "Unflatten", "Dropout", "dropout"}


def public(namespace, kind):
    return sorted(n for n, v in vars(namespace).items()
                  if not n.startswith("_") and kind(v) and n not in NOT_DIFFERENTIABLE)


LAYERS = public(minidl.nn, lambda v: inspect.isclass(v) and issubclass(v, minidl.nn.Module))
FUNCTIONS = public(F, inspect.isfunction)


# a functional form is also covered through its layer, which calls it (max_pool3d -> MaxPool3d)
LAYER_OF = {"multi_head_attention_forward": "MultiheadAttention"}


def layer_of(function: str) -> str:
    return LAYER_OF.get(function, "".join(part.capitalize() for part in function.split("_")))


def named_in_a_checking_test(name: str, files=CHECKING) -> bool:
    return any(re.search(rf"\b{name}\b", text) for text in files.values())


@pytest.mark.parametrize("name", LAYERS)
def test_every_layer_is_gradchecked_and_compared(name):
    assert named_in_a_checking_test(name), f"{name} is not named in a test that gradchecks and compares with torch"


@pytest.mark.parametrize("name", FUNCTIONS)
def test_every_functional_op_is_gradchecked_and_compared(name):
    assert named_in_a_checking_test(name) or named_in_a_checking_test(layer_of(name)), (
        f"F.{name} (or its layer {layer_of(name)}) is not named in a test that gradchecks and "
        "compares with torch")


@pytest.mark.parametrize("name", LAYERS)
def test_every_layer_is_gradgradchecked_and_its_second_derivatives_compared(name):
    assert name in NO_DOUBLE_BACKWARD or named_in_a_checking_test(name, SECOND_ORDER), (
        f"{name} is not named in a test that gradgradchecks and compares HVPs with torch")


@pytest.mark.parametrize("name", FUNCTIONS)
def test_every_functional_op_is_gradgradchecked_and_its_second_derivatives_compared(name):
    assert name in NO_DOUBLE_BACKWARD or named_in_a_checking_test(name, SECOND_ORDER) or (
        named_in_a_checking_test(layer_of(name), SECOND_ORDER)), (
        f"F.{name} (or its layer {layer_of(name)}) is not named in a test that gradgradchecks and "
        "compares HVPs with torch")


def test_the_lists_are_not_empty():
    assert "Conv2d" in LAYERS and "LSTM" in LAYERS and "cross_entropy" in FUNCTIONS
