"""Programs written for PyTorch (tests/programs/*.py, in the style of well-known public scripts)
run on minidl with only their import lines changed: same losses and the same generated tokens.

Each program file imports ``torch``; the minidl run executes the same source with its
``import torch...`` lines rewritten to ``import minidl...``. Both runs start from the same
weights and data (the programs set them from a seeded NumPy generator).
"""
import pathlib
import re

import numpy as np
import pytest

PROGRAMS = pathlib.Path(__file__).parent / "programs"
IMPORT = re.compile(r"^(import|from) torch\b", re.MULTILINE)


def run(name: str, engine: str) -> dict:
    source = (PROGRAMS / f"{name}.py").read_text()
    if engine == "minidl":  # import torch -> import minidl as torch; torch.nn -> minidl.nn ...
        source = IMPORT.sub(lambda m: f"{m.group(1)} minidl", source)
        source = re.sub(r"^import minidl$", "import minidl as torch", source, flags=re.MULTILINE)
    namespace = {"__name__": f"program_{name}"}
    exec(compile(source, str(PROGRAMS / f"{name}.py"), "exec"), namespace)
    return namespace["main"]()


def changed_lines(name: str) -> list:
    """The lines the minidl run changes: only imports."""
    source = (PROGRAMS / f"{name}.py").read_text().splitlines()
    return [line for line in source if IMPORT.match(line)]


@pytest.mark.parametrize("name", ["gpt", "mnist", "word_language_model"])
def test_program_runs_unchanged_but_its_imports(name):
    assert all(line.startswith(("import torch", "from torch")) for line in changed_lines(name))
    theirs, ours = run(name, "torch"), run(name, "minidl")
    np.testing.assert_allclose(ours["losses"], theirs["losses"], rtol=2e-4, atol=2e-5)
    assert ours["losses"][-1] < ours["losses"][0]
    for key in ("tokens", "tests", "lr"):
        if key in theirs:
            np.testing.assert_allclose(np.asarray(ours[key], dtype=float),
                                       np.asarray(theirs[key], dtype=float), rtol=1e-4)
