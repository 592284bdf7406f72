"""Fuzzed IDX files: the reader raises only FedxnorError, and `fedxnor train --data DIR` refuses every
bad set with exit 2, one line and nothing written.

Cases: 100 (arbitrary bytes) + 120 (generated bad sets through the reader) + 40 (through the CLI) = 260.
"""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

import numpy as np
from cli_helpers import assert_refused, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from idx_files import idx_bytes, write_split

from fedxnor.datasets import load_pair, read_idx
from fedxnor.errors import FedxnorError

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=64), st.booleans())
def test_reader_raises_only_fedxnor_error_on_arbitrary_bytes(raw, gzipped):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x-idx1-ubyte"
        p.write_bytes(gzip.compress(raw) if gzipped else raw)
        try:
            arr = read_idx(p)
        except FedxnorError as e:
            assert "\n" not in str(e) and str(p) in str(e)
        else:  # a valid IDX file: its header says exactly how many values it holds
            assert arr.size * arr.dtype.itemsize == len(raw) - 4 - 4 * raw[3]


def _good(n: int, shape=(6, 5)):
    rng = np.random.default_rng(n)
    return rng.integers(0, 256, (n, *shape)).astype(np.uint8), rng.integers(0, 10, n).astype(np.uint8)


@st.composite
def bad_sets(draw):
    """(images file bytes, labels file bytes, what is wrong) for one split of an otherwise good set."""
    n = draw(st.integers(1, 12))
    x, y = _good(n)
    kind = draw(st.sampled_from(["magic", "overflow", "truncated", "zero", "label-high", "label-negative", "float",
                                 "counts", "2d", "5d", "gzip", "labels-2d", "labels-float", "empty-pixels"]))
    img, lbl = idx_bytes(x), idx_bytes(y)
    if kind == "magic":
        b = draw(st.binary(min_size=4, max_size=4).filter(lambda b: b[:2] != b"\0\0" or b[2] not in (8, 9, 11, 12, 13, 14)))
        img = b + img[4:]
    elif kind == "overflow":  # dims whose product wraps around 64 bits, with a tiny body
        dims = tuple(draw(st.integers(2**31, 2**32 - 1)) for _ in range(3))
        img = idx_bytes(x, dims)
    elif kind == "truncated":
        img = img[: draw(st.integers(0, len(img) - 1))]
    elif kind == "zero":
        img, lbl = idx_bytes(x[:0]), idx_bytes(y[:0])
    elif kind == "label-high":
        y = y.copy()
        y[draw(st.integers(0, n - 1))] = draw(st.integers(10, 255))
        lbl = idx_bytes(y)
    elif kind == "label-negative":
        lbl = idx_bytes(np.full(n, draw(st.integers(-128, -1)), np.int8))
    elif kind == "float":
        img = idx_bytes(x.astype(draw(st.sampled_from([">f4", ">f8"]))))
    elif kind == "counts":
        lbl = idx_bytes(np.concatenate([y, y[:1]]))
    elif kind == "2d":
        img = idx_bytes(x.reshape(n, -1))
    elif kind == "5d":
        img = idx_bytes(x.reshape(n, 6, 5, 1, 1))
    elif kind == "gzip":
        img = b"\x1f\x8b" + draw(st.binary(max_size=30))
    elif kind == "labels-2d":
        lbl = idx_bytes(y.reshape(n, 1))
    elif kind == "labels-float":
        lbl = idx_bytes(y.astype(">f4"))
    else:
        img = idx_bytes(np.zeros((n, 0, 5), np.uint8))
    return img, lbl, kind


def _write_set(directory: Path, bad, bad_split: str) -> None:
    img, lbl, _ = bad
    for split in ("train", "test"):
        gx, gy = _good(8)
        write_split(directory, split, *((img, lbl) if split == bad_split else (idx_bytes(gx), idx_bytes(gy))))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bad_sets(), st.sampled_from(["train", "test"]))
def test_reader_refuses_bad_sets(bad, split):
    with tempfile.TemporaryDirectory() as d:
        _write_set(Path(d), bad, split)
        try:
            load_pair(d)
        except FedxnorError as e:
            msg = str(e)
        else:
            raise AssertionError(f"{bad[2]} accepted")
    assert "\n" not in msg
    expect = {"2d": "expected a 3-D IDX file", "5d": "expected a 3-D IDX file", "float": "unsigned-byte pixels",
              "label-high": "outside 0..9", "label-negative": "outside 0..9", "zero": "no images",
              "overflow": "need", "counts": "one label per image"}.get(bad[2])
    assert expect is None or expect in msg, (bad[2], msg)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bad_sets(), st.sampled_from(["train", "test"]), st.sampled_from(["central", "fedavg"]))
def test_train_cli_refuses_bad_sets(bad, split, algo):
    with tempfile.TemporaryDirectory() as d:
        data, out = Path(d) / "data", Path(d) / "run"
        _write_set(data, bad, split)
        run = run_cli(["train", "--algo", algo, "--data", data, "--out", out, "--quiet", "--clients", "2",
                       "--per-round", "1", "--rounds", "1", "--epochs", "1"])
        assert_refused(run, nothing_in=out)
        assert not out.exists()


def test_different_image_sizes_in_train_and_test(tmp_path):
    x, y = _good(8)
    write_split(tmp_path, "train", idx_bytes(x), idx_bytes(y))
    write_split(tmp_path, "test", idx_bytes(x.reshape(8, 5, 6)), idx_bytes(y))
    run = run_cli(["train", "--data", tmp_path, "--out", tmp_path / "run"])
    assert_refused(run, nothing_in=tmp_path / "run")
    assert "training images are 6 x 5 but test images are 5 x 6" in run.err
