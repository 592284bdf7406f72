"""The manifest reader rejects every broken export with one line and exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fxnets import random_network

from fedxnor.errors import FedxnorError
from fedxnor.export.manifest import Folding, load_export, sha256_file, write_export


@pytest.fixture
def export_dir(tmp_path, rng) -> Path:
    net = random_network(rng, [20, 8, 6, 4])
    return write_export(net, tmp_path / "exp", [Folding(4, 8), Folding(2, 3), Folding(1, 6)],
                        input_spec={"shape": [20], "encoding": "pixels"})


def rewrite_manifest(d: Path, edit) -> None:
    m = json.loads((d / "manifest.json").read_text())
    edit(m)
    (d / "manifest.json").write_text(json.dumps(m))


def reseal(d: Path, name: str) -> None:
    """Recompute an edited image's sha256 so the reader's deeper checks are reached."""
    m = json.loads((d / "manifest.json").read_text())
    for layer in m["layers"]:
        for ref in layer["weight_images"] + layer.get("threshold_images", []):
            if ref["file"] == name:
                ref["sha256"] = sha256_file(d / name)
    (d / "manifest.json").write_text(json.dumps(m))


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fedxnor", *args], capture_output=True, text=True)


def test_round_trip(export_dir, rng):
    exp = load_export(export_dir)
    assert [(i.pe, i.simd) for i in exp.layers] == [(4, 8), (2, 3), (1, 6)]
    assert exp.layers[0].weight_depth == 2 * 3
    assert exp.input_bits == 8 and exp.num_classes == 4


def truncate(d):
    p = d / "l0_w_pe1.hex"
    p.write_text("".join(p.read_text().splitlines(keepends=True)[:-1]))
    reseal(d, "l0_w_pe1.hex")


def edit_word(d):
    p = d / "l1_t_pe0.hex"
    lines = p.read_text().splitlines()
    lines[0] = format((int(lines[0], 16) + 1) % 16, f"0{len(lines[0])}x")
    p.write_text("\n".join(lines) + "\n")


def edit_word_resealed(d):
    edit_word(d)
    reseal(d, "l1_t_pe0.hex")


def bad_digit(d):
    p = d / "l0_w_pe0.hex"
    p.write_text("zz\n" + "".join(p.read_text().splitlines(keepends=True)[1:]))
    reseal(d, "l0_w_pe0.hex")


def wide_word(d):
    p = d / "l1_w_pe0.hex"  # simd 3: one hex digit, 3 bits
    p.write_text("f\n" + "".join(p.read_text().splitlines(keepends=True)[1:]))
    reseal(d, "l1_w_pe0.hex")


CASES = {
    "truncated image": (truncate, "has 15 bytes, the folding implies 6 words"),
    "edited image": (edit_word, "sha256 mismatch"),
    "edited threshold, sha resealed": (edit_word_resealed, "disagree"),
    "bad hex digit": (bad_digit, "not a 2-digit"),
    "bits above width": (wide_word, "above the 3-bit width"),
    "missing file": (lambda d: (d / "l2_w_pe0.hex").unlink(), "missing file"),
    "unknown schema version": (lambda d: rewrite_manifest(d, lambda m: m.update(schema_version=99)),
                               "unknown schema version 99"),
    "wrong width": (lambda d: rewrite_manifest(d, lambda m: m["layers"][0].update(weight_width=7)),
                    "'weight_width' must be 8 \\(equal to simd\\)"),
    "wrong threshold width": (lambda d: rewrite_manifest(d, lambda m: m["layers"][0].update(threshold_width=5)),
                              "'threshold_width' must be 14"),
    "folding does not divide": (lambda d: rewrite_manifest(d, lambda m: m["layers"][0].update(pe=3)),
                                "does not divide"),
    "wrong depth": (lambda d: rewrite_manifest(d, lambda m: m["layers"][1].update(weight_depth=3)),
                    "'weight_depth' must be 9"),
    "not json": (lambda d: (d / "manifest.json").write_text("{"), "not valid JSON"),
    "fan-in chain broken": (lambda d: rewrite_manifest(d, lambda m: m["layers"][1].update(fan_in=9)),
                            "fan_in 9 must equal layer 0's fan_out 8"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_export_is_one_line_error(export_dir, case):
    breaker, message = CASES[case]
    breaker(export_dir)
    with pytest.raises(FedxnorError, match=message):
        load_export(export_dir)


def test_cli_bad_input_exit_2_one_line(export_dir):
    truncate(export_dir)
    r = cli("reference", str(export_dir), "--images", "5")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in r.stderr


def test_cli_missing_directory(tmp_path):
    r = cli("reference", str(tmp_path / "nope"))
    assert r.returncode == 2 and "no such export directory" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_writer_leaves_nothing_half_written(tmp_path, rng, monkeypatch):
    net = random_network(rng, [10, 4, 3])
    out = tmp_path / "exp"
    write_export(net, out)
    before = sorted(p.name for p in out.iterdir())
    from fedxnor.contract.dense import Dense

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Dense, "pack_thresholds", boom)  # fails after the weight images are written
    with pytest.raises(RuntimeError):
        write_export(random_network(rng, [10, 4, 3]), out)
    assert sorted(p.name for p in out.iterdir()) == before  # old export intact
    load_export(out)
    with pytest.raises(RuntimeError):
        write_export(net, tmp_path / "fresh")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]  # no temp dir, no partial dir


def test_folding_errors_are_clear(rng, tmp_path):
    net = random_network(rng, [10, 6, 3])
    with pytest.raises(FedxnorError, match="does not divide fan-out 6"):
        write_export(net, tmp_path / "e", [Folding(4, 2), Folding(1, 2)])
    with pytest.raises(FedxnorError, match=r"must be in 1\.\.10"):
        write_export(net, tmp_path / "e", [Folding(2, 11), Folding(1, 2)])
    assert not (tmp_path / "e").exists()


def test_network_chain_validated():
    from fedxnor.contract.network import IntLayer, IntNetwork

    a = IntLayer(np.ones((4, 5), np.uint8), np.zeros(4, np.int64), input_bits=8, encoding="unsigned")
    b = IntLayer(np.ones((3, 6), np.uint8), None)
    with pytest.raises(FedxnorError, match="fan-in 6"):
        IntNetwork((a, b))
    with pytest.raises(FedxnorError, match="thresholds must lie"):
        IntLayer(np.ones((2, 5), np.uint8), np.array([0, 7]))
