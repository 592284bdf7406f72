"""`fedxnor verify` on a network with no hidden layer, and simulator failures as ToolError (exit 3) with a log that survives."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli
from sim_helpers import random_network

from fedxnor.errors import ToolError
from fedxnor.export.manifest import Folding, write_export
from fedxnor.sim import adapter
from fedxnor.sim.verify import verify_export


def single_layer_export(tmp: Path, seed: int = 3, input_bits: int = 8, fan_in: int = 20, classes: int = 5,
                        folding: Folding | None = None) -> Path:
    """A network with no hidden layer (inputs -> class scores), carrying its own test inputs."""
    rng = np.random.default_rng(seed)
    net = random_network(rng, [fan_in, classes], input_bits=input_bits)
    x = rng.integers(0, 1 << input_bits, (12, fan_in)).astype(np.uint8)
    x[0], x[1] = 0, (1 << input_bits) - 1
    y = rng.integers(0, classes, 12).astype(np.uint8)
    return write_export(net, tmp / f"single{seed}", [folding or Folding(1, 8)],
                        extra_files={"test_inputs.u8": x.tobytes(), "test_labels.u8": y.tobytes()})


def fake_tool(directory: Path, name: str, message: str = "broken simulator") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\necho '{message}' >&2\nexit 7\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def assert_tool_failure(run, tool: str) -> Path:
    """Exit 3, one error line naming the tool and a log that still exists; no traceback."""
    assert run.code == 3, (run.code, run.err)
    assert "Traceback" not in run.err
    errors = [line for line in run.err.splitlines() if "error" in line and not line.startswith("verify:")]
    assert len(errors) == 1, run.err
    assert f"{tool} failed" in errors[0], errors[0]
    log = Path(re.search(r"\(log: (.+)\)$", errors[0]).group(1))
    assert log.is_file() and log.stat().st_size > 0, log
    return log


@pytest.mark.parametrize("bits,folding", [(8, Folding(1, 8)), (1, Folding(5, 3))])
def test_no_hidden_layer_verifies_on_icarus(tmp_path, sim_cache, monkeypatch, bits, folding):
    exp = single_layer_export(tmp_path, input_bits=bits, folding=folding)
    monkeypatch.setenv("FEDXNOR_SIM_CACHE", str(sim_cache))
    for mode in ("batch", "cycle"):
        run = run_cli(["verify", exp, "--sim", "icarus", "--mode", mode, "--stall", "0.2", "--json"])
        assert run.code == 0, run.err
        out = json.loads(run.out)
        assert out["images"] == 12 and out["mismatches"] == 0 and out["cycles"] > 0
        assert out["activations_checked"] == 0  # nothing hidden to check, the classes are
    # the scratch run directory of a run that succeeded is removed
    builds = [b for b in sim_cache.glob("icarus-*") if json.loads((b / "build.json").read_text())["export"] == str(exp)]
    assert builds
    leftovers = [run for build in builds for run in (build / "runs").glob("*")]
    assert leftovers == []


def test_no_hidden_layer_mismatch_is_caught(tmp_path, sim_cache):
    """The single-layer path really compares classes: scoring against another network's reference fails."""
    exp = single_layer_export(tmp_path, seed=3)
    other = single_layer_export(tmp_path, seed=4)
    r = verify_export(exp, sim="icarus", reference_dir=other, build_root=sim_cache, progress=False)
    assert r["images"] == 12 and r["mismatches"] > 0 and r["first_mismatch"] is not None


def test_broken_compiler_is_tool_error_with_log(tmp_path, monkeypatch):
    exp = single_layer_export(tmp_path)
    fake_tool(tmp_path / "bin", "iverilog", "fake iverilog: cannot compile")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setenv("FEDXNOR_SIM_CACHE", str(tmp_path / "cache"))
    run = run_cli(["verify", exp, "--sim", "icarus"])
    log = assert_tool_failure(run, "icarus")
    assert "fake iverilog: cannot compile" in log.read_text()
    assert "fake iverilog" in run.err  # the reason is on the error line too


def test_broken_simulator_run_is_tool_error_with_log(tmp_path, monkeypatch):
    exp = single_layer_export(tmp_path)
    fake_tool(tmp_path / "bin", "vvp", "fake vvp: segmentation fault")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setenv("FEDXNOR_SIM_CACHE", str(tmp_path / "cache"))
    run = run_cli(["verify", exp, "--sim", "icarus", "--images", "3"])
    log = assert_tool_failure(run, "icarus")
    assert "fake vvp: segmentation fault" in log.read_text()
    assert str(tmp_path / "cache") in str(log)  # in the persistent build directory, not a deleted temp dir


def test_compile_error_is_tool_error_with_log(tmp_path, monkeypatch):
    exp = single_layer_export(tmp_path)
    real = adapter.write_sources

    def broken_sources(export, directory, kind=None, device=None):
        sources, ports = real(export, directory, kind, device)
        sources[0].write_text(sources[0].read_text() + "\nmodule broken(; endmodule\n")
        return sources, ports

    monkeypatch.setattr(adapter, "write_sources", broken_sources)
    with pytest.raises(ToolError) as info:
        verify_export(exp, sim="icarus", build_root=tmp_path / "cache", progress=False)
    assert info.value.exit_code == 3 and info.value.tool == "icarus"
    assert info.value.log.is_file() and "syntax error" in info.value.log.read_text()


def test_testbench_crash_is_tool_error_with_log(tmp_path, monkeypatch):
    """A job the testbench cannot run (here: an unknown mode smuggled past the checks) ends as exit 3, log kept."""
    exp = single_layer_export(tmp_path)
    from fedxnor.sim import verify

    real_run_job = verify.run_job

    def bad_job(build, job, x, run_dir, progress=None):
        return real_run_job(build, dict(job, mode="warp"), x, run_dir, progress)

    monkeypatch.setattr(verify, "run_job", bad_job)
    with pytest.raises(ToolError) as info:
        verify_export(exp, sim="icarus", build_root=tmp_path / "cache", progress=False)
    assert "unknown mode 'warp'" in str(info.value) and info.value.log.is_file()


def test_damaged_build_cache_is_rebuilt(tmp_path):
    exp = single_layer_export(tmp_path)
    first = verify_export(exp, sim="icarus", build_root=tmp_path / "cache", progress=False)
    (marker,) = (tmp_path / "cache").glob("icarus-*/build.json")
    marker.write_text("{not json")
    again = verify_export(exp, sim="icarus", build_root=tmp_path / "cache", progress=False)
    assert first["mismatches"] == again["mismatches"] == 0 and not again["build_cached"]
    assert json.loads(marker.read_text())["sim"] == "icarus"
