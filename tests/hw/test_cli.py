"""`fedxnor verilog`, `fold` and `estimate`: a valid export works; a bad manifest, option or output location gives
one line, exit 2, and no file."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from cli_helpers import assert_refused, files_under, run_cli
from fxnets import random_network
from hypothesis import given, settings
from hypothesis import strategies as st

from fedxnor.export.manifest import Folding, write_export


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fedxnor", *map(str, args)], capture_output=True, text=True)


def make(tmp_path):
    net = random_network(np.random.default_rng(5), [30, 12, 6])
    return write_export(net, tmp_path / "exp", [Folding(4, 8), Folding(3, 6)])


def test_verilog_command_writes_module_and_ports(tmp_path):
    exp = make(tmp_path)
    r = cli("verilog", exp, "--out", tmp_path / "top.v", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    text = (tmp_path / "top.v").read_text()
    assert "module fedxnor_top(" in text and "debug__payload" in text
    assert out["ports"]["in_width"] == 8 * 8 and out["ports"]["in_beats"] == 4 and out["cycles_per_inference"] > 0
    r = cli("verilog", exp, "--out", tmp_path / "nodbg.v", "--no-debug", "--name", "acc")
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "nodbg.v").read_text()
    assert "module acc(" in text and "debug__" not in text


def edit_manifest(exp, fn):
    path = exp / "manifest.json"
    man = json.loads(path.read_text())
    fn(man)
    path.write_text(json.dumps(man))


def test_bad_folding_is_one_line_and_writes_nothing(tmp_path):
    exp = make(tmp_path)

    def bad_pe(man):
        man["layers"][0]["pe"] = 5  # does not divide 12

    edit_manifest(exp, bad_pe)
    r = cli("verilog", exp, "--out", tmp_path / "top.v")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "does not divide" in r.stderr
    assert not (tmp_path / "top.v").exists()


def test_images_not_matching_folding_is_one_line(tmp_path):
    exp = make(tmp_path)

    def other_simd(man):  # a consistent manifest for simd 10, but the images were packed for simd 8
        la = man["layers"][0]
        la.update(simd=10, weight_width=10, words_per_row=3, weight_depth=3 * 12 // 4)

    edit_manifest(exp, other_simd)
    r = cli("verilog", exp, "--out", tmp_path / "top.v")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "re-export" in r.stderr and not (tmp_path / "top.v").exists()
    r = cli("verilog", tmp_path / "missing", "--out", tmp_path / "top.v")
    assert r.returncode == 2 and "no such export directory" in r.stderr


# ------------------------------------------------------------------ refusals before any work (issue 18)

def test_verilog_out_existing_directory_or_under_a_file_is_one_line(tmp_path):
    exp = make(tmp_path)
    outdir = tmp_path / "outdir"
    outdir.mkdir()
    run = run_cli(["verilog", exp, "--out", outdir])
    assert_refused(run, nothing_in=outdir)
    assert "is a directory" in run.err and "top.v" in run.err
    (tmp_path / "plain").write_text("x")
    run = run_cli(["verilog", exp, "--out", tmp_path / "plain" / "top.v"])
    assert_refused(run)
    assert "is a file, not a directory" in run.err and (tmp_path / "plain").read_text() == "x"


@pytest.mark.parametrize("args,message", [
    (["--name", "module"], "not a Verilog module name"),
    (["--name", "été"], "not a Verilog module name"),
    (["--name", "9lives"], "not a Verilog module name"),
    (["--stages", "-1"], "--stages must be in 0..32"),
    (["--stages", "1000000"], "--stages must be in 0..32"),
])
def test_verilog_bad_options_refused_before_reading_the_export(tmp_path, args, message):
    out = tmp_path / "out"
    out.mkdir()
    run = run_cli(["verilog", tmp_path / "no-export", "--out", out / "top.v", *args])
    assert_refused(run, nothing_in=out)
    assert message in run.err


def bad_share():
    return (st.floats(max_value=0.0) | st.floats(min_value=1.0, exclude_min=True) | st.just(math.nan)).map(repr)


@settings(max_examples=30, deadline=None)
@given(flag=st.sampled_from(["--max-lut-share", "--max-lc-share"]), value=bad_share())
def test_fold_bad_shares_refused_and_nothing_written(tmp_path_factory, flag, value):
    root = tmp_path_factory.mktemp("fold")
    exp = make(root)
    out = root / "out"
    run = run_cli(["fold", exp, "--device", "up5k", "--out", out, f"{flag}={value}"])
    assert_refused(run, nothing_in=out)
    assert flag in run.err


@settings(max_examples=20, deadline=None)
@given(value=st.integers(max_value=0))
def test_fold_target_cycles_below_one_refused(tmp_path_factory, value):
    root = tmp_path_factory.mktemp("fold")
    run = run_cli(["fold", make(root), "--device", "up5k", "--out", root / "out", f"--target-cycles={value}"])
    assert_refused(run, nothing_in=root / "out")


def test_fold_out_that_is_not_a_new_export_location_refused(tmp_path):
    exp = make(tmp_path)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("keep")
    (tmp_path / "a_file").write_text("keep")
    before = files_under(tmp_path)
    for out, message in ((tmp_path / "notes", "not an export"), (tmp_path / "a_file", "is a file"),
                         (exp, "overlaps"), (exp / "inside", "overlaps"), (tmp_path, "not an export")):
        run = run_cli(["fold", exp, "--device", "up5k", "--out", out])
        assert_refused(run, nothing_in=tmp_path, before=before)
        assert message in run.err, (out, run.err)
    run = run_cli(["fold", exp, "--device", "nonesuch", "--out", tmp_path / "new"])
    assert_refused(run, nothing_in=tmp_path, before=before)


def test_fold_over_an_old_export_replaces_it(tmp_path):
    exp = make(tmp_path)
    old = write_export(random_network(np.random.default_rng(9), [8, 4]), tmp_path / "old")
    run = run_cli(["fold", exp, "--device", "up5k", "--out", old, "--json"])
    assert run.code == 0, run.err
    assert json.loads((old / "manifest.json").read_text())["layers"][0]["fan_in"] == 30


@pytest.mark.parametrize("clock", ["nan", "inf", "0", "-12", "1e9"])
def test_estimate_bad_clock_refused_before_synthesis(tmp_path, clock):
    run = run_cli(["estimate", make(tmp_path), "--device", "up5k", f"--clock-mhz={clock}"])
    assert_refused(run)
    assert "--clock-mhz must be in" in run.err
