"""torch.save checkpoints read without PyTorch (minidl/torch_pickle.py); save/load on files."""
import io
import os
import pickle
import subprocess
import sys
import textwrap
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import torch
from helpers import assert_same_structure

import minidl
from minidl import nn
from minidl.serialization import load, save


def torch_checkpoint(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def assert_matches(ours, theirs):
    """``ours`` (what minidl.load read) equals ``theirs`` (what torch.save wrote): structure,
    container types, dtypes, requires_grad and values, bitwise."""
    assert_same_structure(ours, theirs, requires_grad=True)


class TorchNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4 * 5 * 5, 6)
        self.lstm = torch.nn.LSTM(6, 5, num_layers=2, batch_first=True)

    def forward(self, images, sequence):
        features = torch.relu(self.bn(self.conv(images))).flatten(1)  # (N, 100)
        return self.fc(features), self.lstm(sequence)[0]


class MinidlNet(nn.Module):
    """TorchNet in minidl: the same layers under the same names, so the same state_dict keys."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 5 * 5, 6)
        self.lstm = nn.LSTM(6, 5, num_layers=2, batch_first=True)

    def forward(self, images, sequence):
        features = minidl.flatten(minidl.relu(self.bn(self.conv(images))), 1)  # (N, 100)
        return self.fc(features), self.lstm(sequence)[0]


def trained_torch_net():
    """A TorchNet whose BatchNorm has seen batches: running stats and num_batches_tracked set."""
    torch.manual_seed(0)
    net = TorchNet()
    for _ in range(3):
        net(torch.randn(2, 3, 5, 5), torch.randn(2, 4, 6))
    return net.eval()


def test_a_torch_checkpoint_loads_with_its_values_dtypes_and_containers(tmp_path):
    net = trained_torch_net()
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    optimizer = torch.optim.Adam(net.parameters())
    net(torch.randn(2, 3, 5, 5), torch.randn(2, 4, 6))[0].sum().backward()
    optimizer.step()
    checkpoint = {
        "model": net.state_dict(),
        "optimizer": optimizer.state_dict(),
        "transposed": base.t(), "column": base[:, 1], "sliced": base[1:, ::2],
        "float16": torch.randn(3).half(), "float64": torch.randn(2, 2).double(),
        "int32": torch.tensor([1, -2], dtype=torch.int32),
        "int8": torch.tensor([-3], dtype=torch.int8),
        "uint8": torch.tensor([255], dtype=torch.uint8), "bool": torch.tensor([True, False]),
        "uint16": torch.zeros(2, dtype=torch.uint16), "empty": torch.zeros(0, 3),
        "scalar": torch.tensor(2.5), "parameter": torch.nn.Parameter(torch.ones(2)),
        "nested": {"list": [1, 2.5, "three", None, True], "tuple": (torch.ones(1), ("deep", 4)),
                   "ordered": OrderedDict([("b", 1), ("a", torch.zeros(2))])},
        "epoch": 7, "set": {1, 2}, "frozenset": frozenset({3}), "complex": 1 + 2j,
    }
    path = tmp_path / "checkpoint.pt"
    torch.save(checkpoint, path)
    loaded = load(path)
    assert_matches(loaded, checkpoint)
    assert loaded["model"]["bn.num_batches_tracked"].dtype == np.int64
    assert loaded["model"]["bn.num_batches_tracked"].item() == 3
    assert isinstance(loaded["model"], OrderedDict)
    assert loaded["model"]._metadata == net.state_dict()._metadata  # set by the pickle's BUILD


def test_a_minidl_model_loaded_from_a_torch_state_dict_gives_torch_outputs(tmp_path):
    net = trained_torch_net()
    torch.save(net.state_dict(), tmp_path / "net.pt")
    ours = MinidlNet()
    ours.load_state_dict(load(tmp_path / "net.pt"))
    ours.eval()
    images = np.random.default_rng(0).standard_normal((2, 3, 5, 5)).astype(np.float32)
    sequence = np.random.default_rng(1).standard_normal((2, 4, 6)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(images), torch.from_numpy(sequence))
    with minidl.no_grad():
        actual = ours(minidl.tensor(images), minidl.tensor(sequence))
    for mine, theirs in zip(actual, expected):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)
    assert ours.bn.num_batches_tracked.item() == net.bn.num_batches_tracked.item() == 3


def test_tensors_sharing_a_storage_load_as_separate_arrays(tmp_path):
    base = torch.arange(6.0)
    torch.save({"base": base, "tail": base[2:], "matrix": base.view(2, 3).t()}, tmp_path / "s.pt")
    loaded = load(tmp_path / "s.pt")
    loaded["base"].array[...] = -1
    np.testing.assert_array_equal(loaded["tail"].numpy(), [2, 3, 4, 5])
    np.testing.assert_array_equal(loaded["matrix"].numpy(), [[0, 3], [1, 4], [2, 5]])
    assert loaded["matrix"].array.flags.c_contiguous and loaded["matrix"].array.flags.writeable


# ----- paths and file objects ---------------------------------------------------------------------
class ShortReads(io.RawIOBase):
    """A raw binary file that reads at most 5 bytes per call, as raw files may."""

    def __init__(self, data: bytes):
        self.inner = io.BytesIO(data)

    def readable(self):
        return True

    def seekable(self):
        return True

    def readinto(self, buffer):
        return self.inner.readinto(memoryview(buffer)[:5])

    def seek(self, offset, whence=io.SEEK_SET):
        return self.inner.seek(offset, whence)

    def tell(self):
        return self.inner.tell()


class ReadSeekOnly:
    """The least that load asks of a file object: read, seek and tell (no readinto)."""

    def __init__(self, data: bytes):
        self.inner = io.BytesIO(data)
        self.read, self.seek, self.tell = self.inner.read, self.inner.seek, self.inner.tell


def test_both_formats_load_from_paths_and_file_objects(tmp_path):
    state = {"w": minidl.randn(3, 4), "step": 5, "pair": (1, "a")}
    save(state, tmp_path / "ours.safetensors")
    buffer = io.BytesIO()
    save(state, buffer)
    assert buffer.getvalue() == (tmp_path / "ours.safetensors").read_bytes()
    torch_state = {"w": torch.randn(3, 4), "step": 5, "pair": (1, "a")}
    torch.save(torch_state, tmp_path / "theirs.pt")
    for path, check in [(tmp_path / "ours.safetensors", lambda got: assert_same_minidl(got, state)),
                        (tmp_path / "theirs.pt", lambda got: assert_matches(got, torch_state))]:
        data = path.read_bytes()
        check(load(path))
        check(load(str(path)))
        check(load(io.BytesIO(data)))
        with open(path, "rb") as file:
            check(load(file))
        with open(path, "rb", buffering=0) as file:
            check(load(file))
            assert not file.closed  # the buffer load puts over a raw file lets go of it
        short = ShortReads(data)
        check(load(short))
        assert not short.closed
        check(load(ReadSeekOnly(data)))
        prefixed = io.BytesIO(b"12345" + data)  # load reads from the file's position, as torch.load
        prefixed.seek(5)
        check(load(prefixed))


def assert_same_minidl(loaded, state):
    assert list(loaded) == list(state)
    np.testing.assert_array_equal(loaded["w"].numpy(), state["w"].numpy())
    assert loaded["step"] == 5 and loaded["pair"] == (1, "a")


def test_save_to_a_file_object_writes_at_its_position_and_leaves_it_open(tmp_path):
    with open(tmp_path / "c.bin", "wb") as file:
        file.write(b"head")
        save({"x": np.arange(3)}, file)
        assert not file.closed
    with open(tmp_path / "c.bin", "rb") as file:
        assert file.read(4) == b"head"
        np.testing.assert_array_equal(load(file)["x"], np.arange(3))


def test_file_objects_that_cannot_serve_raise_clear_errors(tmp_path):
    with pytest.raises(TypeError, match="save: expected a file path or a binary file object with "
                                        "write, got int"):
        save({}, 3)
    with pytest.raises(TypeError, match=r"load: .*read, seek, tell, got object \(no read\)"):
        load(object())
    with open(tmp_path / "t.txt", "w") as file, pytest.raises(TypeError, match=r"text file.*'wb'"):
        save({}, file)
    with open(tmp_path / "t.txt", "r") as file, pytest.raises(TypeError, match=r"text file.*'rb'"):
        load(file)
    read, write = os.pipe()
    with os.fdopen(read, "rb") as pipe, os.fdopen(write, "wb"):
        with pytest.raises(io.UnsupportedOperation, match="not seekable; read it into an io.Bytes"):
            load(pipe)


def test_saving_a_whole_module_says_to_save_its_state_dict():
    buffer = io.BytesIO()
    for obj, where in [(nn.Linear(2, 2), "<root>"), ({"model": nn.Linear(2, 2)}, "model")]:
        with pytest.raises(TypeError, match=rf"a Linear at '{where}' \(save model.state_dict"):
            save(obj, buffer)
    assert buffer.getvalue() == b""


def test_the_reader_never_imports_torch(tmp_path):
    torch.save({"w": torch.arange(4.0).reshape(2, 2).t(), "n": torch.tensor(3)}, tmp_path / "c.pt")
    code = textwrap.dedent("""
        import sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        import minidl
        loaded = minidl.load(sys.argv[1])
        torches = sorted(module for module in sys.modules if "torch" in module)
        print(loaded["w"].tolist(), loaded["n"].item(), torches)
    """)
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "c.pt")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr  # a negative code (a signal) fails here too
    assert result.stdout.strip() == "[[0.0, 2.0], [1.0, 3.0]] 3 ['minidl.torch_pickle', 'torch']"


# ----- map_location and devices -------------------------------------------------------------------
def test_map_location_puts_torch_tensors_on_the_device(tmp_path, device):
    torch.save({"w": torch.ones(2), "raw": [1]}, tmp_path / "c.pt")
    loaded = load(tmp_path / "c.pt", map_location=device)
    assert loaded["w"].device == minidl.device(device) and loaded["raw"] == [1]
    np.testing.assert_array_equal(loaded["w"].numpy(), [1, 1])


# ----- checkpoints built by hand: the pickle is ours to write ------------------------------------
class Storage:
    """Pickles as PyTorch's persistent id for a storage: ('storage', type, key, location, numel)."""

    def __init__(self, key, numel, kind=torch.FloatStorage, location="cpu"):
        self.pid = ("storage", kind, key, location, numel)


class TensorCall:
    """Pickles as a call of ``function`` (a torch._utils rebuilder) with ``args``."""

    def __init__(self, function, *args):
        self.call = (function, args)

    def __reduce__(self):
        return self.call


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, Storage) else None


def rebuild_v2(storage, offset, size, stride, requires_grad=False):
    return TensorCall(torch._utils._rebuild_tensor_v2, storage, offset, size, stride, requires_grad,
                      OrderedDict())


def zip_checkpoint(obj, records=None, byteorder=b"little", protocol=2) -> bytes:
    """A zip laid out as torch.save lays it out, data.pkl pickling ``obj`` as written."""
    data = io.BytesIO()
    Pickler(data, protocol=protocol).dump(obj)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", data.getvalue())
        archive.writestr("archive/byteorder", byteorder)
        for key, array in (records or {}).items():
            archive.writestr(f"archive/data/{key}", np.ascontiguousarray(array).tobytes())
        archive.writestr("archive/version", b"3\n")
    return buffer.getvalue()


def test_the_rebuilders_reproduce_torchs_strided_views(tmp_path):
    storage = np.arange(10, dtype=np.float32)
    checkpoint = zip_checkpoint({
        "strided": rebuild_v2(Storage("0", 10), 1, (2, 3), (4, 2)),
        "broadcast": rebuild_v2(Storage("0", 10), 9, (2, 2), (0, 0)),
        "old": TensorCall(torch._utils._rebuild_tensor, Storage("0", 10), 2, (3,), (1,)),
        "param": TensorCall(torch._utils._rebuild_parameter,
                            rebuild_v2(Storage("0", 10), 0, (2,), (1,)), True, OrderedDict()),
    }, {"0": storage})
    loaded = load(io.BytesIO(checkpoint))
    expected = torch.as_strided(torch.from_numpy(storage), (2, 3), (4, 2), 1).numpy()
    np.testing.assert_array_equal(loaded["strided"].numpy(), expected)
    np.testing.assert_array_equal(loaded["broadcast"].numpy(), np.full((2, 2), 9))
    np.testing.assert_array_equal(loaded["old"].numpy(), [2, 3, 4])
    assert loaded["param"].requires_grad and not loaded["old"].requires_grad


def test_a_big_endian_checkpoint_is_byte_swapped(tmp_path):
    values = {"f32": np.array([1.5, -2.0], np.float32), "i64": np.array([1, -2**40], np.int64),
              "f16": np.array([0.5], np.float16)}
    kinds = {"f32": torch.FloatStorage, "i64": torch.LongStorage, "f16": torch.HalfStorage}
    obj = {name: rebuild_v2(Storage(name, array.size, kinds[name]), 0, array.shape, (1,))
           for name, array in values.items()}
    swapped = {name: array.byteswap() for name, array in values.items()}
    loaded = load(io.BytesIO(zip_checkpoint(obj, swapped, byteorder=b"big")))
    for name, array in values.items():
        assert loaded[name].dtype == array.dtype.newbyteorder("=")
        np.testing.assert_array_equal(loaded[name].numpy(), array)


def test_storages_on_other_devices_follow_map_location():
    obj = {"cuda": rebuild_v2(Storage("0", 2, location="cuda:0"), 0, (2,), (1,)),
           "mps": rebuild_v2(Storage("1", 2, location="mps"), 0, (2,), (1,))}
    checkpoint = zip_checkpoint(obj, {"0": np.ones(2, np.float32), "1": np.ones(2, np.float32)})
    loaded = load(io.BytesIO(checkpoint), map_location="cpu")
    assert loaded["cuda"].device == loaded["mps"].device == minidl.device("cpu")
    with pytest.raises(ValueError, match=r"saved on 'mps', which minidl cannot place .*"
                                         r"pass map_location='cpu'"):
        load(io.BytesIO(checkpoint))


def test_a_storage_saved_on_cuda_goes_back_there_or_says_there_is_no_gpu():
    obj = {"w": rebuild_v2(Storage("0", 2, location="cuda:0"), 0, (2,), (1,))}
    checkpoint = zip_checkpoint(obj, {"0": np.ones(2, np.float32)})
    if minidl.cuda_is_available():
        assert load(io.BytesIO(checkpoint))["w"].device == minidl.device("cuda:0")
    else:  # the backend's error, not "corrupt": the file is fine, the machine has no GPU
        with pytest.raises(RuntimeError, match="a CUDA device was requested but"):
            load(io.BytesIO(checkpoint))


@pytest.mark.parametrize("dtype", ["bfloat16", "complex64"])
def test_a_dtype_minidl_lacks_is_reported_as_not_supported(tmp_path, dtype):
    torch.save({"x": torch.ones(2, dtype=getattr(torch, dtype))}, tmp_path / "c.pt")
    with pytest.raises(ValueError, match=f"c.pt: a tensor has dtype torch.{dtype}, which minidl "
                                         "does not support"):
        load(tmp_path / "c.pt")


# ----- malicious pickles --------------------------------------------------------------------------
class Payload:
    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


PAYLOADS = {  # the global each names -> the object, whose unpickling would create ``marker``
    f"{os.system.__module__}.system": lambda marker: Payload(os.system, f"touch {marker}"),
    "builtins.eval": lambda marker: Payload(eval, f"open({str(marker)!r}, 'w')"),
    "builtins.exec": lambda marker: Payload(exec, f"open({str(marker)!r}, 'w')"),
    "builtins.getattr": lambda marker: Payload(getattr, Payload(__import__, "os"), "system"),
    "subprocess.Popen": lambda marker: Payload(subprocess.Popen, ["touch", str(marker)]),
    "torch._utils._import_dotted_name": lambda marker: Payload(torch._utils._import_dotted_name,
                                                               "os.system"),
    "torch.serialization.load": lambda marker: Payload(torch.load, str(marker)),
    "numpy.frombuffer": lambda marker: Payload(np.frombuffer, b"\0" * 8),
}


@pytest.mark.parametrize("protocol", [0, 2, 4])  # INST / GLOBAL / STACK_GLOBAL reach find_class
@pytest.mark.parametrize("name", PAYLOADS)
def test_a_pickle_naming_a_global_off_the_allow_list_is_refused_before_it_runs(
        tmp_path, protocol, name):
    marker = tmp_path / "pwned"
    obj = {"x": [PAYLOADS[name](marker)]}
    if protocol:  # after a tensor (protocol 0 cannot write its tuple persistent id)
        obj = {"w": rebuild_v2(Storage("0", 2), 0, (2,), (1,)), **obj}
    path = tmp_path / "evil.pt"
    path.write_bytes(zip_checkpoint(obj, {"0": np.ones(2, np.float32)}, protocol=protocol))
    with pytest.raises(pickle.UnpicklingError, match=f"evil.pt: refused the global {name}:"):
        load(path)
    assert not marker.exists()


def test_a_global_that_is_only_named_not_called_is_refused_too():
    with pytest.raises(pickle.UnpicklingError, match="refused the global subprocess.Popen"):
        load(io.BytesIO(zip_checkpoint({"f": subprocess.Popen})))


def test_an_extension_code_goes_through_the_allow_list():
    code = textwrap.dedent("""
        import copyreg, io, pickle, sys, zipfile
        import minidl
        copyreg.add_extension("os", "system", 240)  # EXT1 240 now means os.system
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            # PROTO 2, EXT1 240, the str "echo", TUPLE1, REDUCE, STOP
            archive.writestr("archive/data.pkl", b"\\x80\\x02\\x82\\xf0X\\x04\\0\\0\\0echo\\x85R.")
        try:
            minidl.load(io.BytesIO(buffer.getvalue()))
        except pickle.UnpicklingError as error:
            print(error)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "refused the global os.system" in result.stdout


# ----- malformed checkpoints ----------------------------------------------------------------------
def over_four(offset, size, stride, requires_grad=False, storage=None):
    """A tensor call over the 4-element float storage '0' that each malformed file holds."""
    return rebuild_v2(storage or Storage("0", 4), offset, size, stride, requires_grad)


MALFORMED = {  # name: (the tensor, what the error says)
    "past_the_end": (over_four(0, (3,), (2,)), "reaches element 4 of a storage of 4"),
    "huge_stride": (over_four(0, (2, 2), (1, 2**40)), "reaches element 1099511627777"),
    "offset_past_the_end": (over_four(4, (), ()), "reaches element 4"),
    "negative_stride": (over_four(3, (2,), (-1,)), "non-negative"),
    "negative_offset": (over_four(-1, (1,), (1,)), "non-negative"),
    "ranks_differ": (over_four(0, (2, 2), (1,)), "as many"),
    "float_size": (over_four(0, (2.0,), (1,)), "non-negative int"),
    "numel_mismatch": (over_four(0, (1,), (1,), storage=Storage("0", 5)),
                       "holds 16 bytes, but data.pkl says 5"),
    "missing_record": (over_four(0, (1,), (1,), storage=Storage("9", 4)),
                       "archive/data/9 is missing"),
    "not_a_storage": (rebuild_v2("0", 0, (1,), (1,)), "storage is '0', not a storage"),
    "grad_not_bool": (over_four(0, (1,), (1,), 1), "requires_grad is 1, not a bool"),
    "int_requires_grad": (over_four(0, (1,), (1,), True, Storage("0", 4, torch.IntStorage)),
                          "only floating point tensors can require gradients"),
    "dtype_as_storage": (over_four(0, (1,), (1,), storage=Storage("0", 4, torch.float32)),
                         "persistent id"),
    "bad_pid": (Storage("0", -1), "persistent id"),
    "bad_call": (TensorCall(OrderedDict, 5), "TypeError"),
}


def test_malformed_tensors_raise_value_error_naming_the_file(tmp_path):
    """In a subprocess: an unchecked view past its storage could crash the interpreter."""
    for name, (obj, _) in MALFORMED.items():
        checkpoint = zip_checkpoint({"x": obj}, {"0": np.ones(4, np.float32)})
        (tmp_path / f"{name}.pt").write_bytes(checkpoint)
    code = textwrap.dedent("""
        import sys, minidl
        for path in sys.argv[1:]:
            try:
                minidl.load(path)
                print("loaded", path)
            except ValueError as error:
                print(error)
    """)
    paths = [str(tmp_path / f"{name}.pt") for name in MALFORMED]
    result = subprocess.run([sys.executable, "-c", code, *paths], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr  # a negative code (a signal) fails here too
    lines = result.stdout.splitlines()
    assert len(lines) == len(MALFORMED), result.stdout
    for line, (name, (_, message)) in zip(lines, MALFORMED.items()):
        assert line.startswith(f"load: {tmp_path / name}.pt") and message in line, (name, line)


def test_truncated_and_corrupt_zips_raise_value_error_naming_the_file(tmp_path):
    data = torch_checkpoint({"w": torch.arange(64.0), "epoch": 1})
    path = tmp_path / "c.pt"
    for cut in (0, 3, 4, 30, len(data) // 2, len(data) - 30, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=f"load: {path}"):
            load(path)
    offset = data.index(np.arange(64.0, dtype=np.float32).tobytes())
    path.write_bytes(data[:offset + 8] + b"\xff" + data[offset + 9:])  # one byte of a storage
    with pytest.raises(ValueError, match=f"load: {path} is a truncated or corrupt zip file "
                                         r"\(Bad CRC-32"):
        load(path)
    broken = zipfile.ZipFile(io.BytesIO(data))
    for name, record, message in [("garbage", b"\x80\x02garbage", "not a valid PyTorch checkpoint"),
                                  ("cut", broken.read("archive/data.pkl")[:-5],
                                   "not a valid PyTorch checkpoint")]:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for info in broken.infolist():
                archive.writestr(info.filename, record if info.filename.endswith("data.pkl")
                                 else broken.read(info))
        (tmp_path / f"{name}.pt").write_bytes(buffer.getvalue())
        with pytest.raises(ValueError, match=f"load: {tmp_path / name}.pt is {message}"):
            load(tmp_path / f"{name}.pt")


def test_zips_that_are_not_torch_save_checkpoints_are_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(ValueError, match="a zip file with 0 <archive>/data.pkl records"):
        load(io.BytesIO(buffer.getvalue()))
    with pytest.raises(ValueError, match="byteorder record says b'middle'"):
        load(io.BytesIO(zip_checkpoint({}, byteorder=b"middle")))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:  # torch.jit.save's layout, less its code/ folder
        for record in ("data.pkl", "constants.pkl", "version"):
            archive.writestr(f"archive/{record}", pickle.dumps(()))
    with pytest.raises(ValueError, match=r"a TorchScript archive \(torch.jit.save\)"):
        load(io.BytesIO(buffer.getvalue()))


def test_a_legacy_checkpoint_says_to_save_it_again(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match=r"old.pt is a legacy PyTorch checkpoint .* save it again "
                                         "with a recent PyTorch"):
        load(tmp_path / "old.pt")
