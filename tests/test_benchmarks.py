"""The benchmark harness: a quick end-to-end run, and the correctness check that guards every timing."""
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import minidl.nn
from benchmarks import worker
from benchmarks.engines import load
from benchmarks.readme import END, START, replace_block
from benchmarks.workloads import WORKLOADS, select

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_quick_run_writes_json_markdown_and_chart_with_checked_positive_ratios(tmp_path):
    pytest.importorskip("matplotlib", reason="the chart needs matplotlib (pip install -e '.[bench]')")
    subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--only", "mlp", "--out",
                    str(tmp_path)], cwd=ROOT, check=True, capture_output=True, timeout=300)
    results = json.loads((tmp_path / "latest.json").read_text())
    entry = results["workloads"]["mlp"]
    assert entry["status"] == "ok", entry.get("reason")  # "ok" only after the first-steps check passed
    assert entry["ratio"] > 0 and entry["ratio_min"] > 0 and entry["ratio_fused"] > 0
    assert all(entry["engines"][e]["median"] > 0 for e in ("minidl", "torch", "torch_fused"))
    assert "| mlp |" in (tmp_path / "latest.md").read_text()
    assert (tmp_path / "latest.png").read_bytes()[:4] == b"\x89PNG"


def _worker_args(data_dir):
    return SimpleNamespace(engine="minidl", workload="mlp", data=str(data_dir), device="cpu",
                           threads=2, steps=1, warmup=0, memory_steps=1)


def test_the_check_fails_when_the_weights_differ_from_the_reference(tmp_path):
    data = tmp_path / "mlp.npz"
    with threadpool_limits(limits=2):  # undoes the engine's own limit when the test ends
        worker.write_reference(load("minidl", "cpu", 2), WORKLOADS["mlp"], str(data))
        assert worker.measure(_worker_args(tmp_path))["status"] == "ok"  # writes the expected values
        with np.load(data) as saved:
            arrays = {key: saved[key] for key in saved.files}
        arrays["state.0.weight"] = arrays["state.0.weight"] * 1.05
        np.savez(data, **arrays)
        result = worker.measure(_worker_args(tmp_path))
    assert result["status"] == "FAILED" and "loss" in result["reason"]
    assert "times" not in result  # nothing was timed


def test_mismatches_names_the_value_and_accepts_float32_noise():
    expected = {"output": np.linspace(-3, 3, 50)}
    noisy = {"output": (expected["output"] * (1 + 1e-6)).astype(np.float32)}
    assert worker.mismatches(expected, noisy) == []
    assert worker.mismatches(expected, {"output": expected["output"] + 0.01})[0].startswith("output")
    assert "shape" in worker.mismatches(expected, {"output": expected["output"][:3]})[0]


@pytest.mark.slow
def test_quick_sweep_writes_one_table_per_family_and_a_chart(tmp_path):
    pytest.importorskip("matplotlib", reason="the chart needs matplotlib (pip install -e '.[bench]')")
    subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--sweep", "--only",
                    "mlp512_infer_b1,mlp512_infer_b32", "--out", str(tmp_path)], cwd=ROOT,
                   check=True, capture_output=True, timeout=300)
    results = json.loads((tmp_path / "sweep.json").read_text())
    assert [entry["sweep"][2] for entry in results["workloads"].values()] == [1, 32]
    assert all(entry["status"] == "ok" for entry in results["workloads"].values())
    table = (tmp_path / "sweep.md").read_text()
    assert "**MLP 784-512-512-10 inference**" in table and "| batch 32 |" in table
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"


def test_quick_attention_comparison_writes_both_paths(tmp_path):
    from benchmarks import attention
    from minidl.ops import attention as op

    crossover = op.BLOCKED_MIN_KEYS
    attention.main(["--quick", "--out", str(tmp_path)])
    assert op.BLOCKED_MIN_KEYS == crossover  # the switch is put back
    table = (tmp_path / "flash_attention.md").read_text()
    rows = [line.split("|") for line in table.splitlines() if line.startswith("| 16 ")]
    assert len(rows) == 4  # (causal or not) x (inference, fwd+bwd)
    assert all(float(row[4]) > 0 and float(row[5]) > 0 for row in rows)


def test_torch_fused_engine_builds_fused_optimizers():
    torch_engine = load("torch_fused", "cpu", 2)
    assert torch_engine.optimizer_options == {"fused": True}
    assert load("torch", "cpu", 2).optimizer_options == {}


def test_selection_by_name_kind_or_group_and_an_unknown_name_stops():
    assert [w.name for w in select(["mlp", "rnn"])] == ["mlp", "rnn"]
    assert {w.kind for w in select(["infer"])} == {"infer"}
    assert all(w.group != "sweep" for w in select([]) + select(["train"]))
    sweeps = select(["sweep"])
    assert {w.group for w in sweeps} == {"sweep"} and len(sweeps) == 17
    assert [w.sweep[2] for w in sweeps if w.sweep[0].startswith("MNIST CNN")] == [16, 64, 256]
    assert {w.group for w in select(["overhead"])} == {"overhead"}
    with pytest.raises(SystemExit, match="no_such_workload"):
        select(["no_such_workload"])


def test_readme_block_is_replaced_between_the_markers_only():
    text = f"intro\n{START}\nold table\n{END}\noutro\n"
    assert replace_block(text, "new table\n") == f"intro\n{START}\nnew table\n{END}\noutro\n"
    with pytest.raises(SystemExit):
        replace_block("no markers", "x")
