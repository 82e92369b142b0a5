"""save/load: round trips, the safetensors format, atomic writes, clear errors on bad files."""
import errno
import json
import os
import pickle
import re
import signal
import stat
import struct
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from hypothesis import given, settings
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
    with pytest.raises(ValueError, match="'w' has dtype X32, and dtype X32 is not supported"):
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
    save({"w": np.zeros(2), "epoch": 2}, path)  # the next save still works, and removes the temp
    assert load(path)["epoch"] == 2
    assert os.listdir(tmp_path) == ["checkpoint.st"]


# ----- saving: reserved names, modes, symlinks, temp files ----------------------------------------
def test_an_array_under_the_key_metadata_is_refused_at_save(tmp_path):
    with pytest.raises(ValueError, match="key '__metadata__'.*header reserves that name"):
        save({"__metadata__": minidl.randn(2), "w": minidl.randn(3)}, tmp_path / "c.st")
    assert os.listdir(tmp_path) == []
    fine = {"__metadata__": {"w": np.arange(3)}, "a": {"__metadata__": np.ones(2)}, "b": 1}
    save(fine, tmp_path / "c.st")  # only the top-level name clashes with the header's metadata
    assert_same(fine, load(tmp_path / "c.st"))
    save({"__metadata__": "a plain value has no array entry"}, tmp_path / "c.st")
    assert load(tmp_path / "c.st") == {"__metadata__": "a plain value has no array entry"}


def test_a_dict_key_holding_a_tensor_is_refused_at_save(tmp_path):
    for key in (minidl.randn(2), ("step", minidl.randn(2))):
        with pytest.raises(TypeError, match="dict at 'state' has a key holding a Tensor"):
            save({"state": {key: 1}}, tmp_path / "c.st")
    assert os.listdir(tmp_path) == []
    save({"state": {("step", 1): 2, None: 3.5}}, tmp_path / "c.st")
    assert load(tmp_path / "c.st") == {"state": {("step", 1): 2, None: 3.5}}


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o666, 0o444], ids=oct)
def test_resaving_keeps_the_files_mode(tmp_path, mode):
    path = tmp_path / "c.st"
    save({"epoch": 1}, path)
    (tmp_path / "plain").write_bytes(b"")
    assert path.stat().st_mode == (tmp_path / "plain").stat().st_mode  # a new file: open's mode
    os.chmod(path, mode)
    save({"epoch": 2}, path)
    assert stat.S_IMODE(path.stat().st_mode) == mode and load(path)["epoch"] == 2


def test_saving_to_a_symlink_writes_through_to_its_target(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "links").mkdir()
    target = tmp_path / "runs" / "c.st"
    save({"epoch": 1}, target)
    os.chmod(target, 0o600)
    link = tmp_path / "links" / "latest.st"
    link.symlink_to(os.path.join("..", "runs", "c.st"))
    chain = tmp_path / "links" / "chain.st"
    chain.symlink_to("latest.st")
    save({"epoch": 2}, chain)
    assert link.is_symlink() and chain.is_symlink()
    assert os.readlink(link) == os.path.join("..", "runs", "c.st")
    assert load(target)["epoch"] == 2 and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(os.listdir(tmp_path / "links")) == ["chain.st", "latest.st"]  # no temp left
    assert os.listdir(tmp_path / "runs") == ["c.st"]
    dangling = tmp_path / "links" / "next.st"
    dangling.symlink_to(os.path.join("..", "runs", "next.st"))
    save({"epoch": 3}, dangling)  # as open() does: the missing target is created
    assert dangling.is_symlink() and load(tmp_path / "runs" / "next.st")["epoch"] == 3


def test_save_removes_only_the_abandoned_temp_files_of_its_own_target(tmp_path):
    abandoned = [".c.st.0123abcd.tmp", ".c.st.ffffffff.tmp"]
    kept = [".c.st.0123abcd.tmp.bak", "c.st.0123abcd.tmp", ".c.st.0123ABCD.tmp",
            ".c.st.0123abc.tmp", ".xc.st.0123abcd.tmp", ".cXst.0123abcd.tmp",  # '.' is no wildcard
            ".c.st.x.0123abcd.tmp", ".c.0123abcd.tmp", ".other.st.0123abcd.tmp", "notes.txt"]
    for name in abandoned + kept:
        (tmp_path / name).write_bytes(b"partial")
    (tmp_path / ".c.st.aaaaaaaa.tmp").mkdir()  # matches the pattern but is not a file
    (tmp_path / ".c.st.bbbbbbbb.tmp").symlink_to("notes.txt")
    save({"epoch": 1}, tmp_path / "c.st")
    expected = kept + ["c.st", ".c.st.aaaaaaaa.tmp", ".c.st.bbbbbbbb.tmp"]
    assert sorted(os.listdir(tmp_path)) == sorted(expected)
    assert (tmp_path / "notes.txt").read_bytes() == b"partial"


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"),
                                   KeyboardInterrupt()], ids=["disk-full", "interrupt"])
def test_a_failing_write_removes_its_temp_file_and_keeps_the_old_checkpoint(
        tmp_path, monkeypatch, error):
    path = tmp_path / "c.st"
    save({"epoch": 1}, path)

    def failing_fsync(descriptor):
        raise error

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(type(error)):
        save({"epoch": 2, "w": np.zeros(1000)}, path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["c.st"] and load(path)["epoch"] == 1
    (tmp_path / "folder.st").mkdir()
    with pytest.raises(IsADirectoryError):  # the rename fails: nothing is left behind either
        save({"epoch": 2}, tmp_path / "folder.st")
    assert sorted(os.listdir(tmp_path)) == ["c.st", "folder.st"]


def test_a_temp_file_taken_for_abandoned_before_its_lock_is_replaced(tmp_path, monkeypatch):
    import fcntl  # POSIX: where temp files are locked
    flock, removed = fcntl.flock, []

    def flock_after_another_saves_cleanup(file, operation):
        if not removed:  # another save's cleanup found the new file unlocked and removed it
            removed.extend(tmp_path.glob(".c.st.*.tmp"))
            removed[0].unlink()
        flock(file, operation)

    monkeypatch.setattr(fcntl, "flock", flock_after_another_saves_cleanup)
    save({"epoch": 1}, tmp_path / "c.st")
    assert len(removed) == 1 and load(tmp_path / "c.st")["epoch"] == 1
    assert os.listdir(tmp_path) == ["c.st"]


PAUSED_WRITER = textwrap.dedent("""
    import os
    import sys
    import numpy as np
    from minidl.serialization import save
    fsync = os.fsync
    def paused_fsync(descriptor):  # the temp file is written: say so, wait to be told to go on
        os.fsync = fsync
        print("written", flush=True)
        sys.stdin.readline()
        fsync(descriptor)
    os.fsync = paused_fsync
    save({"epoch": 2, "w": np.arange(5.0)}, sys.argv[1])
""")


def test_a_concurrent_save_leaves_a_live_writers_temp_file_alone(tmp_path):
    path = tmp_path / "c.st"
    save({"epoch": 1}, path)
    os.chmod(path, 0o600)
    writer = subprocess.Popen([sys.executable, "-c", PAUSED_WRITER, str(path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline() == "written\n"
        (temp,) = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        assert stat.S_IMODE(temp.stat().st_mode) == 0o600  # never more open than what it replaces
        save({"epoch": 3}, path)
        assert temp.exists()
        writer.communicate("go\n", timeout=60)
    finally:
        writer.kill()
        writer.wait()
    assert writer.returncode == 0  # its rename found its temp file
    assert load(path)["epoch"] == 2 and os.listdir(tmp_path) == ["c.st"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# ----- loading malformed files --------------------------------------------------------------------
def write_raw(path, header, data=b""):
    """A safetensors file by hand: ``header`` as JSON (bytes: verbatim), then ``data``."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


def entry(**fields):
    return {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], **fields}


def with_structure(structure, **fields):
    """A header of one F32 array 'w' (8 bytes) and a minidl structure."""
    metadata = {"format": "minidl", "structure": json.dumps(structure)}
    return {"w": entry(**fields), "__metadata__": metadata}


EIGHT = bytes(8)
MALFORMED = {  # id: (header, data, what the error says)
    "header-list": ([entry()], EIGHT, "expected a JSON object"),
    "header-string": ("w", EIGHT, "expected a JSON object"),
    "entry-list": ({"w": [0, 8]}, EIGHT, "entry for 'w': expected an object"),
    "entry-number": ({"w": 5}, EIGHT, "entry for 'w': expected an object"),
    "dtype-missing": ({"w": {"shape": [2], "data_offsets": [0, 8]}}, EIGHT, "dtype must be"),
    "dtype-list": ({"w": entry(dtype=["F32"])}, EIGHT, "dtype must be a string"),
    "shape-string": ({"w": entry(shape="2")}, EIGHT, "shape must be a list"),
    "shape-float": ({"w": entry(shape=[2.0])}, EIGHT, "shape must be a list"),
    "shape-negative": ({"w": entry(shape=[-2])}, EIGHT, "non-negative integers"),
    "shape-bool": ({"w": entry(shape=[True, True])}, EIGHT, "non-negative integers"),
    "shape-inf": (b'{"w":{"dtype":"F32","shape":[1e400],"data_offsets":[0,8]}}', EIGHT,
                  "shape must be a list"),
    "shape-4301-digits": (b'{"w":{"dtype":"F32","shape":[1' + b"0" * 4300 + b'],"data_offsets'
                          b'":[0,8]}}', EIGHT, "corrupt header"),
    "shape-huge": ({"w": entry(shape=[2**70])}, EIGHT, "too large for NumPy"),
    "shape-huge-empty": ({"w": entry(shape=[2**62, 0], data_offsets=[0, 0])}, b"",
                         "too large for NumPy"),
    "shape-65-dims": ({"w": entry(shape=[1] * 65, data_offsets=[0, 4])}, bytes(4), "at most 64"),
    "offsets-one": ({"w": entry(data_offsets=[8])}, EIGHT, r"data_offsets must be \[begin, end\]"),
    "offsets-three": ({"w": entry(data_offsets=[0, 8, 8])}, EIGHT, "data_offsets must be"),
    "offsets-reversed": ({"w": entry(data_offsets=[8, 0])}, EIGHT, "0 <= begin <= end"),
    "offsets-negative": ({"w": entry(data_offsets=[-8, 0])}, EIGHT, "data_offsets must be"),
    "offsets-strings": ({"w": entry(data_offsets=["0", "8"])}, EIGHT, "data_offsets must be"),
    "offsets-missing": ({"w": {"dtype": "F32", "shape": [2]}}, EIGHT, "data_offsets must be"),
    "offsets-past-the-end": ({"w": entry()}, bytes(4), "truncated: its arrays need 8 bytes"),
    "size-mismatch": ({"w": entry(shape=[3])}, EIGHT, r"does not fit its byte range \[0, 8\)"),
    "overlap": ({"a": entry(), "b": entry(data_offsets=[4, 12])}, bytes(12),
                "'b' starts at byte 4 of the data, expected 8"),
    "same-range": ({"a": entry(), "b": entry()}, bytes(16), "starts at byte 0 .*, expected 8"),
    "gap": ({"a": entry(), "b": entry(data_offsets=[12, 20])}, bytes(20),
            "'b' starts at byte 12 of the data, expected 8"),
    "bytes-after": ({"w": entry()}, bytes(12), "4 bytes after its last array"),
    "metadata-list": ({"w": entry(), "__metadata__": [1]}, EIGHT, "__metadata__ must be an object"),
    "metadata-string": ({"__metadata__": "minidl"}, b"", "__metadata__ must be an object"),
    "structure-number": ({"w": entry(), "__metadata__": {"format": "minidl", "structure": 5}},
                         EIGHT, "corrupt structure"),
    "structure-not-json": ({"w": entry(), "__metadata__": {"format": "minidl", "structure": "{"}},
                           EIGHT, "corrupt structure"),
    "missing-array": (with_structure({"x": {"__tensor__": "v"}}), EIGHT,
                      "refers to an array 'v' it does not hold"),
    "array-name-list": (with_structure({"x": {"__ndarray__": ["w"]}}), EIGHT,
                        r"refers to an array \['w'\]"),
    "tuple-number": (with_structure({"__tuple__": 5}), EIGHT, "__tuple__ must hold a list"),
    "dict-number": (with_structure({"__dict__": 5}), EIGHT, r"\[key, value\] pairs"),
    "dict-single": (with_structure({"__dict__": [[1]]}), EIGHT, r"\[key, value\] pairs"),
    "dict-list-key": (with_structure({"__dict__": [[[1], 2]]}), EIGHT, "key is unhashable"),
    "dict-dict-key": (with_structure({"__dict__": [[{"a": 1}, 2]]}), EIGHT, "key is unhashable"),
    "device-number": (with_structure({"__tensor__": "w", "device": 5}), EIGHT, "not a device"),
    "device-unknown": (with_structure({"__tensor__": "w", "device": "tpu"}), EIGHT, "not a device"),
    "requires-grad-string": (with_structure({"__tensor__": "w", "requires_grad": "yes"}), EIGHT,
                             "requires_grad of 'w' must be a bool"),
    "requires-grad-int": (with_structure({"__tensor__": "w", "requires_grad": True}, dtype="I32"),
                          EIGHT, "true only for a floating point array"),
}


@pytest.mark.parametrize("header, data, match", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_file_raises_value_error_naming_file_and_problem(tmp_path, header, data, match):
    path = write_raw(tmp_path / "bad.st", header, data)
    with pytest.raises(ValueError, match=match) as info:
        load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("dtype", ["BF16", "F8_E4M3"])
def test_a_dtype_without_numpy_support_is_unsupported_not_corrupt(tmp_path, dtype):
    path = write_raw(tmp_path / "half.st", {"w": entry(dtype=dtype, data_offsets=[0, 4])}, bytes(4))
    message = f"{path}: tensor 'w' has dtype {dtype}, and dtype {dtype} is not supported by minidl"
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        load(path)
    assert "corrupt" not in str(info.value)


DEEP_LOADER = textwrap.dedent("""
    import json
    import struct
    import sys
    from minidl.serialization import load
    for path in sys.argv[1:]:  # deep.<where>.<depth>.st
        _, where, depth, _ = path.rsplit(".", 3)
        nested = "[" * int(depth) + "]" * int(depth)
        metadata = {"format": "minidl", "structure": nested}
        text = '{"w": %s}' % nested if where == "header" else json.dumps({"__metadata__": metadata})
        with open(path, "wb") as file:
            file.write(struct.pack("<Q", len(text)) + text.encode())
        try:
            load(path)
            print("returned")
        except ValueError as error:
            print("ValueError", error)
""")


def test_deeply_nested_json_raises_value_error(tmp_path):
    paths = [str(tmp_path / f"deep.{where}.{depth}.st")
             for where in ("header", "structure") for depth in (500, 100_000)]
    result = subprocess.run([sys.executable, "-c", DEEP_LOADER, *paths],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr  # no death by signal, no other exception
    for path, line in zip(paths, result.stdout.splitlines(), strict=True):
        if path.endswith(".100000.st"):
            assert line.startswith(f"ValueError load: {path} is nested too deeply"), line
        else:  # within the recursion limit: loaded (lists of lists) or refused, nothing else
            assert line == "returned" or line.startswith(f"ValueError load: {path}"), line


def load_returns_or_raises_value_error(path):
    """Every file, however broken, loads or raises ValueError naming it: no other exception."""
    try:
        load(path, map_location="cpu")  # a saved device is still checked, but no GPU is needed
    except ValueError as error:
        assert str(path) in str(error)


JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats()
                    | st.text(max_size=6),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
NAMES = st.sampled_from(["a", "b", "w"])
STRUCTURE = st.recursive(
    JSON | st.fixed_dictionaries({"__tensor__": NAMES | JSON},
                                 optional={"device": st.sampled_from(["cpu", "gpu"]) | JSON,
                                           "requires_grad": st.booleans() | JSON})
    | st.fixed_dictionaries({"__ndarray__": NAMES | JSON}),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAMES, inner, max_size=3)
    | st.fixed_dictionaries({"__tuple__": st.lists(inner, max_size=3) | inner})
    | st.fixed_dictionaries({"__dict__": st.lists(st.lists(inner, max_size=3), max_size=3)}),
    max_leaves=8)
ENTRY = st.fixed_dictionaries({}, optional={
    "dtype": st.sampled_from(["F32", "I64", "U8", "BOOL", "F16", "BF16", "X"]) | JSON,
    "shape": st.lists(st.integers(-1, 3) | st.sampled_from([2**62, 2**64]), max_size=3) | JSON,
    "data_offsets": st.lists(st.integers(-1, 40), min_size=2, max_size=2) | JSON})
METADATA = st.fixed_dictionaries({"format": st.just("minidl") | JSON,
                                  "structure": STRUCTURE.map(json.dumps) | JSON}) | JSON
HEADER = st.dictionaries(NAMES, ENTRY | JSON, max_size=3).flatmap(
    lambda entries: st.just(entries) | st.builds(lambda m: {**entries, "__metadata__": m}, METADATA)
) | JSON
ARRAYS = {"a": entry(), "b": entry(dtype="I64", shape=[1], data_offsets=[8, 16])}  # 16 bytes
FILES = (st.tuples(HEADER, st.binary(max_size=40))  # anything
         | st.tuples(METADATA.map(lambda metadata: {**ARRAYS, "__metadata__": metadata}),
                     st.just(bytes(16))))  # sound arrays, any structure


@settings(max_examples=200)  # fuzzing wants volume; each example is a small file
@given(file=FILES)
def test_fuzz_random_headers_load_or_raise_value_error(tmp_path, file):
    load_returns_or_raises_value_error(write_raw(tmp_path / "fuzz.st", *file))


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory):
    """A valid checkpoint with tensors, arrays, an empty array and a non-str dict key."""
    path = tmp_path_factory.mktemp("valid") / "c.st"
    save({"model": {"w": minidl.randn(2, 3, requires_grad=True), "n": np.arange(3)},
          "state": {0: (1, 2.5)}, "empty": np.zeros((0, 4))}, path)
    return path.read_bytes()


TOKENS = [b"-1", b"1e400", b"[]", b"{}", b"null", b'"BF16"', b"true", b"2.5", b"[[[[",
          b"18446744073709551616", b'""', b"0", b","]


@settings(max_examples=200)
@given(cut=st.none() | st.integers(0, 2**16),
       flips=st.lists(st.tuples(st.integers(0, 2**16), st.integers(0, 255)), max_size=3),
       splices=st.lists(st.tuples(st.integers(0, 2**16), st.integers(0, 12),
                                  st.sampled_from(TOKENS)), max_size=3))
def test_fuzz_mutated_checkpoints_load_or_raise_value_error(tmp_path, checkpoint_bytes, cut,
                                                            flips, splices):
    length = struct.unpack("<Q", checkpoint_bytes[:8])[0]
    header, data = bytearray(checkpoint_bytes[8:8 + length]), checkpoint_bytes[8 + length:]
    for start, size, token in splices:  # edits in the JSON, with the length fixed up to match
        start %= len(header) + 1
        header[start:start + size] = token
    mutated = bytearray(struct.pack("<Q", len(header)) + header + data)
    for position, byte in flips:  # anywhere, the length prefix included
        mutated[position % len(mutated)] = byte
    path = tmp_path / "fuzz.st"
    path.write_bytes(mutated if cut is None else mutated[:cut % (len(mutated) + 1)])
    load_returns_or_raises_value_error(path)
