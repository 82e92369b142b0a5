"""benchmarks/kernels.py runs (--quick, two kernels) and writes its JSON and Markdown table."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_kernel_benchmark_quick_writes_table(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "benchmarks.kernels", "--quick", "--out", str(tmp_path),
         "--only", "layer_norm_fwd", "lstm_cell_fwd"],
        cwd=ROOT, check=True, capture_output=True, text=True, timeout=120,
    )
    results = json.loads((tmp_path / "kernels.json").read_text())
    rows = {row["kernel"]: row for row in results["rows"]}
    assert set(rows) == {"layer_norm_fwd", "lstm_cell_fwd"}
    for row in rows.values():
        assert row["reference_ms"] > 0 and row["fast_ms"] > 0 and row["speedup"] > 0
        assert row["cold_jit_s"] > 0 and row["warm_first_call_s"] > 0, row
    assert results["import_minidl_s"] > 0
    table = (tmp_path / "kernels.md").read_text()
    assert "| layer_norm_fwd | (2048, 128) |" in table and "cold JIT s" in table
