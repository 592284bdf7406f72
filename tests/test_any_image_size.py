"""`--data` with IDX sets of other image sizes, through train -> export -> reference -> verify.

Each set is generated here (a few hundred images whose class shows in their brightness). The model takes
its input size from the data, its widths from --hidden; export, reference and verify are given no --data:
they default to the data set the checkpoint records. CI runs every size through the reference and one
(12 x 16, non-square) through Icarus; the slow variant simulates every size.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from cli_helpers import assert_refused, run_cli
from idx_files import idx_bytes, learnable_set, write_split

SIZES = [(8, 8), (10, 10), (12, 16)]


def ok(argv: list) -> dict:
    run = run_cli([*argv, "--json"])
    assert run.code == 0, run.err
    return json.loads(run.out.strip().splitlines()[-1])


def train_export(tmp: Path, shape: tuple[int, int], algo: str = "central") -> Path:
    data = learnable_set(tmp / "data", shape, n_train=300, n_test=60)
    run = tmp / "run"
    extra = ["--epochs", "2", "--batch", "20"] if algo == "central" else \
        ["--clients", "3", "--per-round", "3", "--rounds", "1", "--model", "hybnn-head" if algo == "fedhybnn" else "mlp-small"]
    summary = ok(["train", "--algo", algo, "--data", data, "--hidden", "16", "8", "--out", run, "--quiet", *extra])
    ckpt = Path(summary["checkpoint"])
    exp = ok(["export", ckpt, "--out", run / "export", "--pe", "2", "--simd", "8"])
    assert exp["agreement"] == 1.0 and exp["checked_images"] == 60
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    pixels = math.prod(shape)
    want_in = 512 if algo == "fedhybnn" else pixels  # FederatedConfig.vae_bits: the head reads the VAE's latent bits
    assert [la["fan_in"] for la in manifest["layers"]] == [want_in, 16, 8]
    if algo != "fedhybnn":
        assert manifest["input"]["shape"] == list(shape)
    return run / "export"


@pytest.mark.parametrize("shape", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_train_export_reference(tmp_path, shape):
    export = train_export(tmp_path, shape)
    ref = ok(["reference", export])  # no --data: the data set the export records
    assert ref["images"] == 60 and ref["agreement"] == 1.0 and ref["mismatches"] == 0
    # the model learnt something: each class lights its own pixels
    assert ref["accuracy"] > 0.5


def test_federated_bnn_and_hybnn_on_other_sizes(tmp_path):
    for algo, shape in (("fedbnn", (12, 16)), ("fedhybnn", (8, 8))):
        export = train_export(tmp_path / algo, shape, algo)
        ref = ok(["reference", export])
        assert ref["agreement"] == 1.0 and ref["images"] == 60


def _verify(export: Path) -> None:
    v = ok(["verify", export, "--sim", "icarus", "--images", "4"])
    assert v["images"] == 4 and v["mismatches"] == 0


def test_verify_non_square_on_icarus(tmp_path):
    _verify(train_export(tmp_path, (12, 16)))


@pytest.mark.slow
@pytest.mark.parametrize("shape", SIZES[:2], ids=lambda s: f"{s[0]}x{s[1]}")
def test_verify_every_size_on_icarus(tmp_path, shape):
    _verify(train_export(tmp_path, shape))


def test_data_of_another_size_is_refused_by_name(tmp_path):
    export = train_export(tmp_path, (10, 10))
    other = learnable_set(tmp_path / "other", (8, 8), n_train=20, n_test=20)
    for argv in (["reference", export, "--data", other],
                 ["export", tmp_path / "run" / "checkpoint.pt", "--out", tmp_path / "e2", "--data", other]):
        run = run_cli(argv)
        assert_refused(run, nothing_in=tmp_path / "e2")
        assert "10 x 10 images" in run.err and "8 x 8" in run.err and "--data" in run.err


def test_two_dimensional_image_file_says_what_is_expected(tmp_path):
    import numpy as np

    x = np.zeros((30, 64), np.uint8)
    y = np.arange(30, dtype=np.uint8) % 10
    for split in ("train", "test"):
        write_split(tmp_path / "d", split, idx_bytes(x), idx_bytes(y))
    run = run_cli(["train", "--data", tmp_path / "d", "--out", tmp_path / "run"])
    assert_refused(run, nothing_in=tmp_path / "run")
    assert "(30, 64) (2-D)" in run.err and "expected a 3-D IDX file (count x height x width" in run.err
