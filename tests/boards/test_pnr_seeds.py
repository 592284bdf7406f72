"""Several nextpnr seeds of one netlist, the fastest kept (boards/pnr_seeds.py), with the real nextpnr-ice40."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from tool_paths import NEXTPNR_ICE40, YOSYS

from fedxnor.boards.pnr_seeds import SUMMARY, run_seeds, seed_argv

# a multiply-accumulate loop: slow enough for the seeds' Fmax to differ
VERILOG = """
module top(input clk, input [7:0] a, input [7:0] b, output reg [15:0] y);
  reg [7:0] ra, rb; reg [15:0] p;
  always @(posedge clk) begin ra <= a; rb <= b; p <= ra * rb + p; y <= p ^ {ra, rb}; end
endmodule
"""
ARGS = ["--up5k", "--package", "sg48", "--json", "d.json", "--asc", "d.asc", "--report", "r.json", "--log", "d.tim",
        "--freq", "100", "--pcf-allow-unconstrained", "--quiet", "--timing-allow-fail", "--seed", "7"]


def test_each_seed_writes_its_own_outputs():
    argv, renames = seed_argv(ARGS, 3)
    assert argv[:2] == ["--seed", "3"] and argv.count("--seed") == 1
    assert renames == {"d.asc": "d.seed3.asc", "r.json": "r.seed3.json", "d.tim": "d.seed3.tim"}
    assert argv[argv.index("--json") + 1] == "d.json"  # the input is shared


@pytest.fixture(scope="module")
def netlist(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("seeds")
    (d / "d.v").write_text(VERILOG)
    subprocess.run([YOSYS, "-q", "-p", "synth_ice40 -top top -json d.json", "d.v"],
                   cwd=d, check=True)
    return d


def test_the_fastest_seed_is_kept_under_the_requested_names(netlist, monkeypatch):
    monkeypatch.chdir(netlist)
    assert run_seeds(NEXTPNR_ICE40, [1, 2, 3], ARGS, jobs=2) == 0
    summary = json.loads(Path(SUMMARY).read_text())
    fmax = {r["seed"]: r["fmax_mhz"] for r in summary["seeds"]}
    assert sorted(fmax) == [1, 2, 3] and all(f > 10 for f in fmax.values())
    chosen = summary["chosen"]
    assert fmax[chosen] == max(fmax.values())
    report = json.loads(Path("r.json").read_text())  # the packer and the build report read the chosen seed's files
    assert round(min(v["achieved"] for v in report["fmax"].values()), 2) == fmax[chosen]
    assert Path("d.asc").stat().st_size > 0 and not Path(f"d.seed{chosen}.asc").exists()
    assert sorted(p.name for p in Path().glob("d.seed*.asc")) == [f"d.seed{s}.asc" for s in (1, 2, 3) if s != chosen]


def test_when_every_seed_fails_the_first_log_and_status_are_kept(netlist, monkeypatch):
    monkeypatch.chdir(netlist)
    bad = [a.replace("sg48", "nosuchpackage") for a in ARGS]
    assert run_seeds(NEXTPNR_ICE40, [1, 2], bad, jobs=2) != 0
    assert "Unsupported package 'nosuchpackage'" in Path("d.tim").read_text()
    assert json.loads(Path(SUMMARY).read_text())["chosen"] is None
