"""IDX data sets (Fashion-MNIST by default, MNIST or any IDX set of H x W byte images works the same way;
H x W x C images, e.g. CIFAR-like RGB, come as a 4-D IDX file, channels innermost: NHWC).

Fashion-MNIST comes from the Debian package dataset-fashion-mnist; nothing is
downloaded at run time. Files may be gzipped or raw. Every file is checked
before use: a bad header, a truncated body, float pixels, an image file that is not 3-D or 4-D,
no images or a label outside 0..CLASSES-1 is one FedxnorError line naming
the file and what it should be.
"""

from __future__ import annotations

import functools
import gzip
import io
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedxnor.errors import FedxnorError

DEFAULT_DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
SPLITS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_TYPE_NAMES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32", 0x0E: "float64"}
CLASSES = 10  # every model's output width: labels must be 0..9
MAX_FILE_BYTES = 4 << 30  # a (decompressed) IDX file larger than this is refused, not read
MAX_PIXELS = 1 << 16  # values per image (H x W x C, e.g. 256 x 256 or 128 x 128 x 3): an MLP's first fan-in


@dataclass(frozen=True)
class Dataset:
    images: np.ndarray  # (n, H, W) uint8 from a 3-D IDX file (one channel), (n, H, W, C) from a 4-D one
    labels: np.ndarray  # (n,) int64, each in 0..CLASSES-1

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.images.shape[1:])

    def take(self, n: int | None) -> Dataset:
        """The first n samples (None: all). n < 1 is refused, never a Python slice from the end."""
        if n is None:
            return self
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise FedxnorError(f"a sample limit must be a positive integer, got {n!r}; omit it to use every sample")
        return Dataset(self.images[:n], self.labels[:n])


def _decompress(path: Path, raw: bytes) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as f:
            out = f.read(MAX_FILE_BYTES + 1)
    except (OSError, EOFError, zlib.error) as e:
        raise FedxnorError(f"{path}: broken gzip stream ({e}); reinstall or regenerate the data set") from None
    if len(out) > MAX_FILE_BYTES:
        raise FedxnorError(f"{path}: decompresses to more than {MAX_FILE_BYTES >> 30} GiB; use a smaller IDX set")
    return out


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (gzipped if its bytes start with the gzip magic)."""
    return read_idx_typed(path)[0]


def read_idx_typed(path: Path) -> tuple[np.ndarray, str]:
    """(array, element type name: 'unsigned byte', 'float32', ...) of one IDX file."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise FedxnorError(f"{path}: larger than {MAX_FILE_BYTES >> 30} GiB; use a smaller IDX set")
        raw = path.read_bytes()
    except OSError as e:
        raise FedxnorError(f"{path}: cannot read ({e.strerror}); check the file and its permissions") from None
    if raw[:2] == b"\x1f\x8b":
        raw = _decompress(path, raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise FedxnorError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'none'}); "
                           "IDX starts with 00 00, a type byte (08 = unsigned byte) and the number of dimensions")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise FedxnorError(f"{path}: truncated IDX header ({len(raw)} bytes, {ndim} dimensions); regenerate the file")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_DTYPES[raw[2]])
    need = math.prod(dims) * dtype.itemsize  # Python integers: a product of huge dims cannot wrap around
    if len(raw) - header != need:
        raise FedxnorError(f"{path}: IDX body has {len(raw) - header} bytes, dims {dims} need {need}; "
                           "the file is truncated or its header is wrong")
    arr = np.frombuffer(raw, dtype, math.prod(dims), header).reshape(dims).astype(dtype.newbyteorder("="))
    return arr, _TYPE_NAMES[raw[2]]


def _find(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx") + ".gz", stem.replace("-idx", ".idx")):
        if (directory / name).is_file():
            return directory / name
    return None


def load_split(split: str, data_dir: Path | str | None = None) -> Dataset:
    """Load 'train' or 'test' from an IDX directory (default: Debian's Fashion-MNIST).

    Kept in memory per (files, mtimes): federated runs and tests load the same split often;
    callers must not write into the arrays."""
    directory = Path(data_dir) if data_dir else DEFAULT_DATA_DIR
    img_stem, lbl_stem = SPLITS[split]
    img, lbl = _find(directory, img_stem), _find(directory, lbl_stem)
    if img is None or lbl is None:
        if data_dir is None:
            raise FedxnorError(
                f"Fashion-MNIST not found in {directory}: install the Debian package "
                "dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or pass --data DIR with IDX files"
            )
        raise FedxnorError(f"{directory}: no {img_stem}[.gz] / {lbl_stem}[.gz] IDX files; pass --data DIR with an IDX set")
    return _load_files(img, lbl, img.stat().st_mtime_ns, lbl.stat().st_mtime_ns)


def load_pair(data_dir: Path | str | None = None) -> tuple[Dataset, Dataset]:
    """Train and test splits, checked to hold images of one size."""
    train, test = load_split("train", data_dir), load_split("test", data_dir)
    if train.image_shape != test.image_shape:
        where = data_dir or DEFAULT_DATA_DIR
        raise FedxnorError(f"{where}: training images are {_hxw(train.image_shape)} but test images are "
                           f"{_hxw(test.image_shape)}; both splits must hold images of one size")
    return train, test


def _hxw(shape: tuple[int, ...]) -> str:
    return " x ".join(str(d) for d in shape)


@functools.lru_cache(maxsize=4)
def _load_files(img: Path, lbl: Path, _img_mtime: int, _lbl_mtime: int) -> Dataset:
    (images, kind), labels = read_idx_typed(img), read_idx(lbl)
    if kind != "unsigned byte":
        raise FedxnorError(f"{img}: pixels are {kind}; fedxnor reads unsigned-byte pixels "
                           "(IDX type 0x08): convert the images to integers 0..255")
    if images.ndim not in (3, 4):
        raise FedxnorError(f"{img}: images have shape {tuple(images.shape)} ({images.ndim}-D); expected a 3-D IDX file "
                           "(count x height x width, magic 00 00 08 03) or a 4-D one (count x height x width x channels, "
                           "magic 00 00 08 04): write each image as H x W (x C) bytes")
    if len(images) == 0:
        raise FedxnorError(f"{img}: the file holds no images; use an IDX set with at least one image per split")
    pixels = math.prod(int(d) for d in images.shape[1:])
    if not 1 <= pixels <= MAX_PIXELS:
        raise FedxnorError(f"{img}: images of {_hxw(images.shape[1:])} values; fedxnor takes 1..{MAX_PIXELS} values "
                           "per image (e.g. 28 x 28, or 32 x 32 x 3)")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise FedxnorError(f"{lbl}: labels must be a 1-D IDX file of integers (magic 00 00 08 01), "
                           f"got shape {tuple(labels.shape)} of {labels.dtype}")
    if len(images) != len(labels):
        raise FedxnorError(f"{img.parent}: {len(images)} images but {len(labels)} labels; "
                           "the image and label files must hold one label per image")
    bad = np.flatnonzero((labels < 0) | (labels >= CLASSES))
    if len(bad):
        i = int(bad[0])
        raise FedxnorError(f"{lbl}: label {int(labels[i])} at index {i} (and {len(bad) - 1} more) is outside "
                           f"0..{CLASSES - 1}; fedxnor's models have {CLASSES} classes: relabel the data set")
    return Dataset(np.ascontiguousarray(images, np.uint8), labels.astype(np.int64))
