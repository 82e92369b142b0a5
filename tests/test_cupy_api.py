"""Every array-module function minidl calls as ``xp.<name>`` exists in CuPy (CuPy imports without a GPU)."""
import ast
import pathlib

import cupy
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# names used only behind a hasattr() guard, with where the guard is
GUARDED = {"errstate": "minidl/ops/common.py: quiet() checks hasattr(xp, 'errstate')"}


def xp_attribute_chains(source: str):
    """``xp.a.b`` chains, for any base spelled ``xp`` (``xp``, ``ctx.xp``, ``self.xp``)."""
    chains = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Attribute):
            continue
        parts, base = [], node
        while isinstance(base, ast.Attribute):
            parts.append(base.attr)
            base = base.value
        parts.reverse()
        if isinstance(base, ast.Name) and base.id == "xp":
            chains.add(tuple(parts))
        elif parts and parts[0] == "xp":
            chains.add(tuple(parts[1:]))
    return {c for c in chains if c}


def used_chains():
    found = {}
    for folder in ("minidl", "kernels"):
        for path in (ROOT / folder).rglob("*.py"):
            for chain in xp_attribute_chains(path.read_text()):
                found.setdefault(chain, str(path.relative_to(ROOT)))
    return found


USED = used_chains()


def test_the_scan_finds_array_module_calls():
    assert ("exp",) in USED and ("zeros",) in USED


@pytest.mark.parametrize("chain", sorted(USED), ids=[".".join(c) for c in sorted(USED)])
def test_cupy_has_it(chain):
    if chain[0] in GUARDED:
        return
    target = cupy
    for index, part in enumerate(chain):
        if not hasattr(target, part):
            if index > 0 and isinstance(target, type):  # xp.random.Generator(...).method: a class
                return
            pytest.fail(f"cupy has no {'.'.join(chain[:index + 1])} (used in {USED[chain]})")
        target = getattr(target, part)
