"""save/load: round trips, the safetensors format, atomic writes, clear errors on bad files."""
import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl import nn
from minidl.optim.adam import Adam
from minidl.serialization import load, save

DTYPES = ["float32", "float64", "float16", "int64", "int32", "int8", "uint8", "bool"]


def assert_same(a, b):
    """Equal structure, types, dtypes and values (bitwise for arrays)."""
    assert type(a) is type(b) or (isinstance(a, dict) and isinstance(b, dict)), (type(a), type(b))
    if isinstance(a, minidl.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and a.requires_grad == b.requires_grad
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a == b or (a != a and b != b)


@given(dtype=st.sampled_from(DTYPES), shape=st.lists(st.integers(0, 4), max_size=3),
       seed=st.integers(0, 2**16), number=st.floats(allow_nan=True, allow_infinity=True))
def test_round_trip_of_nested_state(tmp_path_factory, dtype, shape, seed, number):
    array = np.asarray(np.random.default_rng(seed).standard_normal(shape) * 50).astype(dtype)
    model = {"fc.weight": minidl.tensor(array), "fc.bias": minidl.randn(3, requires_grad=True)}
    obj = {"model": model,
           "optimizer": {"state": {0: {"step": 3, "exp_avg": minidl.tensor(array)}},
                         "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0, 1]}]},
           "raw": array, "scalar": np.float32(2.5), "epoch": 7, "value": number, "name": "run",
           "flag": True, "nothing": None, "nested": [[1, 2.0], ("a", None)],
           "__tensor__": "a user key that looks like a marker", "rng": minidl.get_rng_state()}
    path = tmp_path_factory.mktemp("ckpt") / "state.safetensors"
    save(obj, path)
    loaded = load(path)
    expected = dict(obj, scalar=2.5)  # NumPy scalars come back as Python numbers
    assert_same(expected, loaded)
    assert list(loaded["optimizer"]["state"]) == [0]  # int keys stay ints


def test_safetensors_package_reads_our_file_and_we_read_its_files(tmp_path):
    import safetensors.numpy as safetensors_numpy  # the test extra installs it: never skipped
    from safetensors import safe_open
    rng = np.random.default_rng(0)
    arrays = {"w": rng.standard_normal((3, 5)).astype(np.float32), "n": np.arange(7),
              "h": rng.standard_normal(4).astype(np.float16), "b": np.array([True, False]),
              "s": np.array(3.5)}
    model = {k: minidl.tensor(v) for k, v in arrays.items()}
    save({"model": model, "epoch": 2}, tmp_path / "ours.st")
    theirs = safetensors_numpy.load_file(str(tmp_path / "ours.st"))
    assert set(theirs) == {f"model.{k}" for k in arrays}
    for key, value in arrays.items():
        assert theirs[f"model.{key}"].dtype == value.dtype
        np.testing.assert_array_equal(theirs[f"model.{key}"], value)
    with safe_open(str(tmp_path / "ours.st"), framework="numpy") as file:
        assert json.loads(file.metadata()["structure"])["epoch"] == 2
    safetensors_numpy.save_file(arrays, str(tmp_path / "theirs.st"))
    loaded = load(tmp_path / "theirs.st")
    for key, value in arrays.items():
        np.testing.assert_array_equal(loaded[key].numpy(), value)


def small_mlp(seed):
    minidl.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def test_model_and_optimizer_state_restore(tmp_path):
    model = small_mlp(0)
    optimizer = Adam(model.parameters(), lr=0.01)
    model(minidl.randn(5, 4)).sum().backward()
    optimizer.step()
    save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, tmp_path / "c.st")
    checkpoint = load(tmp_path / "c.st")
    other = small_mlp(1)
    other_optimizer = Adam(other.parameters(), lr=0.5)
    other.load_state_dict(checkpoint["model"])
    other_optimizer.load_state_dict(checkpoint["optimizer"])
    for (name, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
    assert_same(optimizer.state_dict()["state"], other_optimizer.state_dict()["state"])
    assert other_optimizer.param_groups[0]["lr"] == 0.01


def test_wrong_architecture_raises_the_modules_error(tmp_path):
    save(small_mlp(0).state_dict(), tmp_path / "c.st")
    wrong = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    before = [p.numpy().copy() for p in wrong.parameters()]
    with pytest.raises(RuntimeError, match=r"size mismatch for 0.weight: checkpoint .*\(8, 4\)"):
        wrong.load_state_dict(load(tmp_path / "c.st"))
    for old, param in zip(before, wrong.parameters()):  # nothing half-loaded
        np.testing.assert_array_equal(old, param.numpy())


def test_truncated_and_corrupt_files_raise_clear_errors(tmp_path):
    path = tmp_path / "c.st"
    save({"w": np.arange(100, dtype=np.float32), "epoch": 1}, path)
    data = path.read_bytes()
    header_end = 8 + struct.unpack("<Q", data[:8])[0]
    for cut in (0, 5, 8, header_end - 3, header_end + 10, len(data) - 1):
        (tmp_path / "cut.st").write_bytes(data[:cut])
        with pytest.raises(ValueError, match="truncated"):
            load(tmp_path / "cut.st")
    (tmp_path / "extra.st").write_bytes(data + b"junk")
    with pytest.raises(ValueError, match="bytes after its last array"):
        load(tmp_path / "extra.st")
    broken = data[:8] + b"{" + data[9:]
    (tmp_path / "header.st").write_bytes(broken.replace(b'"dtype"', b'"dtype', 1))
    with pytest.raises(ValueError, match="corrupt header"):
        load(tmp_path / "header.st")
    (tmp_path / "dtype.st").write_bytes(data.replace(b'"F32"', b'"X32"', 1))
    with pytest.raises(ValueError, match="corrupt header entry for 'w'"):
        load(tmp_path / "dtype.st")
    (tmp_path / "shape.st").write_bytes(data.replace(b"[100]", b"[101]", 1))
    with pytest.raises(ValueError, match=r"does not fit its byte range"):
        load(tmp_path / "shape.st")
    (tmp_path / "pickle.st").write_bytes(pickle.dumps({"w": np.zeros(3)}))
    with pytest.raises(ValueError, match="not a safetensors checkpoint|truncated"):
        load(tmp_path / "pickle.st")


def test_unsupported_values_are_refused(tmp_path):
    with pytest.raises(TypeError, match=r"save a Sequential at '<root>' \(save model.state_dict"):
        save(small_mlp(0), tmp_path / "m.st")
    with pytest.raises(TypeError, match="'a.b' has dtype object"):
        save({"a": {"b": np.array([object()])}}, tmp_path / "o.st")
    with pytest.raises(TypeError, match="cannot save a set at 'x'"):
        save({"x": {1, 2}}, tmp_path / "s.st")
    assert os.listdir(tmp_path) == []  # nothing written, not even a temp file


def test_map_location_moves_tensors(tmp_path, device):
    save({"w": minidl.randn(2, 3), "raw": np.ones(2)}, tmp_path / "c.st")
    loaded = load(tmp_path / "c.st", map_location=device)
    assert loaded["w"].device == minidl.device(device)
    assert isinstance(loaded["raw"], np.ndarray)
    assert load(tmp_path / "c.st", map_location="cpu")["w"].device == minidl.device("cpu")


WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from minidl.serialization import save
    block = np.full(2**20, 7.0)  # 8 MB, saved 48 times: a 384 MB checkpoint
    save({f"layer{i}": block for i in range(48)}, sys.argv[1])
""")


def test_writer_killed_mid_save_leaves_the_old_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.st"
    old = {"w": np.arange(10.0), "epoch": 1}
    save(old, path)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)])
    deadline = time.monotonic() + 60
    temp = None
    while temp is None and time.monotonic() < deadline and writer.poll() is None:
        started = [p for p in tmp_path.iterdir()
                   if p.name.endswith(".tmp") and p.stat().st_size > 2**20]
        temp = started[0] if started else None
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    assert temp is not None, "the writer finished (or never started) before it could be killed"
    assert writer.returncode == -signal.SIGKILL
    assert temp.stat().st_size < 48 * 8 * 2**20  # it really was cut off mid-write
    assert_same(old, load(path))
    save({"w": np.zeros(2), "epoch": 2}, path)  # the next save still works
    assert load(path)["epoch"] == 2
