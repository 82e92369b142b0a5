"""Rules of the repository: CuPy stays behind the backend, importing is side-effect free, packaging."""
import ast
import os
import pathlib
import re
import subprocess
import sys
import sysconfig
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _names_cupy_in_code(source: str) -> bool:
    """Imports of cupy/cupyx or the name used in code (docstrings and comments may mention it)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] in ("cupy", "cupyx") for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("cupy", "cupyx"):
            return True
        if isinstance(node, ast.Name) and node.id in ("cupy", "cupyx"):
            return True
    return False


def test_cupy_is_named_only_in_the_backend_and_kernels():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "minidl").rglob("*.py")
                 if p.name != "backend.py" and _names_cupy_in_code(p.read_text())]
    assert not offenders, f"CuPy named outside minidl/backend.py and kernels/: {offenders}"


def test_the_cupy_rule_can_fail():
    assert _names_cupy_in_code("import cupy as cp")
    assert _names_cupy_in_code("from cupyx.scipy import special")
    assert not _names_cupy_in_code('"""Works on numpy or cupy arrays."""')


def test_kernels_never_import_minidl():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "kernels").rglob("*.py")
                 if re.search(r"^\s*(from|import)\s+minidl", p.read_text(), re.MULTILINE)]
    assert not offenders, f"kernels/ must not import minidl: {offenders}"


def _imported_modules(source: str) -> set:
    """Every module an ``import`` or ``from ... import`` names, at any depth of the file."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_tensors_imports_no_op():
    """ops build on Tensor; Tensor's op methods are installed by minidl.ops (no import cycle)."""
    imported = _imported_modules((ROOT / "minidl" / "tensors.py").read_text())
    assert not {name for name in imported if name.startswith("minidl.ops")}, imported
    from minidl import Tensor
    from minidl.ops.tensor_methods import TensorMethods

    assert vars(Tensor)["__add__"] is vars(TensorMethods)["__add__"]  # installed, not wrapped


def test_import_prints_nothing_touches_no_gpu_and_compiles_nothing():
    code = ("import sys, minidl, minidl.nn, minidl.optim\n"
            "assert 'cupy' not in sys.modules, 'cupy imported'\n"
            "from numba.core.registry import cpu_target\n"
            "import minidl.kernels.activations as a\n"
            "assert not a._erf_loop.signatures, 'a kernel was compiled at import'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""


def test_wheel_installs_kernels_as_minidl_kernels_not_a_top_level_module(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("minidl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "minidl/kernels/__init__.py" in names and "minidl/kernels/dispatch.py" in names
    assert not [n for n in names if n.startswith("kernels/")], "a top-level 'kernels' module would install"
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    # -S: no site-packages hooks, so the editable install of this checkout cannot answer the import
    inherited = {k: v for k, v in os.environ.items() if k != "MINIDL_KERNELS"}  # default mode
    env = {**inherited, "PYTHONPATH": os.pathsep.join([str(target), sysconfig.get_paths()["purelib"],
                                                       sysconfig.get_paths()["platlib"]])}
    check = ("import minidl, minidl.kernels.dispatch as d; "
             "assert minidl.__file__.startswith(%r), minidl.__file__; print(d.mode())" % str(target))
    result = subprocess.run([sys.executable, "-S", "-c", check], capture_output=True, text=True,
                            cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "auto"
