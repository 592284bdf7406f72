"""Writing small IDX data sets (good and deliberately bad) for the data and CLI tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TYPE_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B, np.dtype(">i4"): 0x0C,
              np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


def idx_bytes(arr: np.ndarray, dims: tuple[int, ...] | None = None) -> bytes:
    """IDX encoding of arr (its dtype picks the type byte); `dims` overrides the header's dimensions."""
    arr = np.asarray(arr)
    big = arr.astype(arr.dtype.newbyteorder(">")) if arr.dtype.itemsize > 1 else arr
    dims = arr.shape if dims is None else dims
    header = bytes([0, 0, TYPE_CODES[big.dtype], len(dims)]) + b"".join(int(d).to_bytes(4, "big") for d in dims)
    return header + big.tobytes()


def write_split(directory: Path, split: str, images: bytes, labels: bytes) -> None:
    prefix = "train" if split == "train" else "t10k"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{prefix}-images-idx3-ubyte").write_bytes(images)
    (directory / f"{prefix}-labels-idx1-ubyte").write_bytes(labels)


def learnable_set(directory: Path, shape: tuple[int, ...], n_train: int = 400, n_test: int = 100, seed: int = 0) -> Path:
    """An IDX set of images of `shape` (H x W, or H x W x C for a 4-D set): each class lights its own random half
    of the values, plus noise (a BNN learns it in an epoch or two)."""
    rng = np.random.default_rng(seed)
    templates = rng.random((10, *shape)) < 0.5
    for split, n in (("train", n_train), ("test", n_test)):
        y = rng.integers(0, 10, n).astype(np.uint8)
        x = (templates[y] * 160 + rng.integers(0, 96, (n, *shape))).astype(np.uint8)
        write_split(directory, split, idx_bytes(x), idx_bytes(y))
    return directory
