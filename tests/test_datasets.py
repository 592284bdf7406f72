"""IDX reading: gzipped and raw, Fashion-MNIST's real files, clear errors."""

from __future__ import annotations

import gzip
import subprocess
import sys

import numpy as np
import pytest

from fedxnor.datasets import load_split, read_idx
from fedxnor.errors import FedxnorError


def idx_bytes(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def test_fashion_mnist_from_debian_package():
    train, test = load_split("train"), load_split("test")
    assert train.images.shape == (60000, 28, 28) and test.images.shape == (10000, 28, 28)
    assert set(np.unique(test.labels)) == set(range(10))
    assert np.bincount(test.labels).tolist() == [1000] * 10


def test_raw_and_gzipped_idx_any_directory(tmp_path, rng):
    imgs = rng.integers(0, 256, (7, 28, 28)).astype(np.uint8)
    labels = rng.integers(0, 10, 7).astype(np.uint8)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(imgs))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    d = load_split("test", tmp_path)
    assert np.array_equal(d.images, imgs) and np.array_equal(d.labels, labels)


def test_truncated_idx(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(idx_bytes(np.zeros((3, 4), np.uint8))[:-1])
    with pytest.raises(FedxnorError, match="IDX body"):
        read_idx(p)
    p.write_bytes(b"\x01\x02")
    with pytest.raises(FedxnorError, match="magic"):
        read_idx(p)


def test_missing_dataset_names_flag(tmp_path):
    with pytest.raises(FedxnorError, match="--data DIR"):
        load_split("test", tmp_path)
    r = subprocess.run([sys.executable, "-m", "fedxnor", "train", "--data", str(tmp_path), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--data DIR" in r.stderr


def test_limits_are_never_slices(fashion_test):
    assert len(fashion_test.take(5)) == 5 and fashion_test.take(None) is fashion_test
    for bad in (0, -1, -9999, 2.5, True):
        with pytest.raises(FedxnorError, match="positive integer"):
            fashion_test.take(bad)


def test_float_pixels_are_refused_not_cast(tmp_path, rng):
    imgs = rng.random((4, 3, 3)).astype(">f4")
    header = bytes([0, 0, 0x0D, 3]) + b"".join(int(d).to_bytes(4, "big") for d in imgs.shape)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(header + imgs.tobytes())
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.arange(4)))
    with pytest.raises(FedxnorError, match="pixels are float32; fedxnor reads unsigned-byte pixels"):
        load_split("test", tmp_path)


def test_any_image_size_loads(tmp_path, rng):
    for shape in ((8, 8), (10, 10), (12, 16), (1, 1)):
        d = tmp_path / f"{shape[0]}x{shape[1]}"
        d.mkdir()
        (d / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(rng.integers(0, 256, (3, *shape))))
        (d / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([0, 9, 5])))
        assert load_split("test", d).image_shape == shape


def test_four_d_idx_loads_nhwc_and_three_d_stays_one_channel(tmp_path, rng):
    """N x H x W x C (magic 00 00 08 04) loads as (N, H, W, C), channels innermost, byte for byte."""
    imgs = rng.integers(0, 256, (5, 6, 4, 3)).astype(np.uint8)
    raw = idx_bytes(imgs)
    assert raw[:4] == bytes([0, 0, 8, 4])
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(raw)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.arange(5, dtype=np.uint8)))
    d = load_split("test", tmp_path)
    assert d.images.shape == (5, 6, 4, 3) and d.image_shape == (6, 4, 3)
    assert np.array_equal(d.images, imgs) and d.images[2, 5, 1, 2] == imgs[2, 5, 1, 2]
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(imgs[..., 0]))
    assert load_split("test", tmp_path).image_shape == (6, 4)


def test_four_d_idx_too_many_values_refused(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((1, 256, 256, 2), np.uint8)))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(1, np.uint8)))
    with pytest.raises(FedxnorError, match="256 x 256 x 2 values"):
        load_split("test", tmp_path)
