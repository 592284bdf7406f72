"""`fedxnor verify --device`: the RTL as a board build makes it for that device (hw/plan/plan.py build_options)."""

from __future__ import annotations

import json

from cli_helpers import run_cli
from test_sim_failures import single_layer_export

from fedxnor.export.manifest import Folding


def test_device_build_verifies_and_is_its_own_design(tmp_path, sim_cache, monkeypatch):
    """On ecp5-85 the network builds with read registers: the same classes, later results, a separate cached build."""
    exp = single_layer_export(tmp_path, folding=Folding(5, 4))
    monkeypatch.setenv("FEDXNOR_SIM_CACHE", str(sim_cache))
    plain = run_cli(["verify", exp, "--sim", "icarus", "--json"])
    ecp5 = run_cli(["verify", exp, "--sim", "icarus", "--device", "ecp5-85", "--json"])
    assert plain.code == ecp5.code == 0, (plain.err, ecp5.err)
    a, b = json.loads(plain.out), json.loads(ecp5.out)
    assert a["mismatches"] == b["mismatches"] == 0 and a["images"] == b["images"] == 12
    assert b["device"] == "ecp5-85" and a["device"] is None
    assert b["cycles"] > a["cycles"]  # the read registers' latency
    assert len({p for p in sim_cache.glob("icarus-*") if json.loads((p / "build.json").read_text())["export"]
                == str(exp)}) == 2


def test_an_unknown_device_is_bad_input(tmp_path, sim_cache, monkeypatch):
    monkeypatch.setenv("FEDXNOR_SIM_CACHE", str(sim_cache))
    before = set(sim_cache.glob("icarus-*"))
    run = run_cli(["verify", single_layer_export(tmp_path, seed=5), "--sim", "icarus", "--device", "ecp9"])
    assert run.code == 2 and "Traceback" not in run.err
    assert "unknown device 'ecp9'" in run.err and len(run.err.strip().splitlines()) == 1
    assert set(sim_cache.glob("icarus-*")) == before  # nothing built
