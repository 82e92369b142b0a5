"""The README's Python snippets run as written (a data-parallel one on two ranks)."""
import pathlib
import re
import subprocess
import sys

import pytest

README = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
SNIPPETS = re.findall(r"```python\n(.*?)```", README, re.DOTALL)


def test_the_readme_has_snippets():
    assert len(SNIPPETS) >= 3


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_snippet_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if "init_process_group" in SNIPPETS[index]:  # a script for the launcher, not for this process
        script = tmp_path / "snippet.py"
        script.write_text(SNIPPETS[index])
        done = subprocess.run([sys.executable, "-m", "minidl.distributed.run", "-n", "2",
                               str(script)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return
    exec(compile(SNIPPETS[index].replace("/tmp/ckpt.safetensors", str(tmp_path / "c.safetensors")),
                 f"README snippet {index}", "exec"), {})
