"""Bitstreams for every board, with what each achieves; writes bench/results/boards.json.

Per board: a trained model (mlp-small on the iCE40 boards, sfc = 784-256-256-256-10 on the
ULX3S-85F; and "icebreaker-spram": mlp-160 = 784-160-10 on the iCEBreaker, whose 127 Kbit of
weights exceed the UP5K's block RAM, so layer 0 lives in SPRAM and is loaded over the host link),
exported and folded by the hw-plan solver for the board, built with the YoWASP
tools (fedxnor.boards.build.build_board): utilisation, post-route Fmax, the PLL clock used,
cycles per inference, inferences/s, share of the block-RAM bound; accuracy of the model on the
whole Fashion-MNIST test set (bit-exact reference); and a gate-level simulation of the
synthesized core (iCE40 cell models) against the reference on --gate-images images.

    python bench/bench_boards.py [--boards icebreaker ice40-hx8k ulx3s-85f icebreaker-spram] [--epochs 8]
        [--checkpoint mlp-small=PATH --checkpoint sfc=PATH] [--gate-images 50] [--work DIR]
        [--folding ulx3s-85f=32x98,1x256,1x128,1x6] [--prebuilt ulx3s-85f=BUILD_DIR]

--prebuilt takes the report.json of an earlier `fedxnor build` of the same export (its manifest
sha256 must match) instead of placing and routing again: the sfc build takes most of an hour here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, provenance, write_results  # noqa: E402

from fedxnor.progress import log  # noqa: E402

MODEL_FOR = {"icebreaker": "mlp-small", "ice40-hx8k": "mlp-small", "ulx3s-85f": "sfc", "icebreaker-spram": "mlp-160"}
BOARD_OF = {"icebreaker-spram": "icebreaker"}  # a row name -> the board it builds for (default: itself)
GOAL_FMAX = {"icebreaker": 35.0, "ice40-hx8k": 80.0, "ulx3s-85f": 120.0, "icebreaker-spram": 35.0}
GATE_FAMILY = {"icebreaker": "ice40", "ice40-hx8k": "hx8k", "ulx3s-85f": "ecp5", "icebreaker-spram": "ice40"}
# Foldings given here rather than solved: the ULX3S sfc folding the 120 MHz builds were made with
# (docs/boards.md; with the solver's default 0.85 LUT share, 63k LUTs, nextpnr had not placed the sfc after
# 25 minutes here); on the UP5K the solver's 1x1 second layer of mlp-160 reads its 160-bit input through
# a 320:1 mux (8 LUT levels, the critical path) where 1x8 takes fewer logic cells and a 40:1 mux.
# --folding BOARD=... overrides.
FOLDINGS = {"ulx3s-85f": "32x98,1x256,1x128,1x6", "icebreaker-spram": "4x14,1x8"}
# The other rows: shares of the device's LUTs offered to the solver, tried in order until the routed design
# fits (None: the solver's default, which also budgets iCE40 logic cells; the lower shares are a fallback).
LUT_SHARES = {"icebreaker": [None, 0.4, 0.3], "ice40-hx8k": [None, 0.5, 0.4]}


def trained(model: str, work: Path, epochs: int, given: dict[str, str]) -> Path:
    from fedxnor.train.central import CentralConfig, train_central

    if model in given:
        return Path(given[model])
    run = work / f"train-{model}"
    if (run / "checkpoint.pt").is_file():
        return run / "checkpoint.pt"
    log(f"training {model} for {epochs} epochs")
    return train_central(CentralConfig(model=model, epochs=epochs, seed=0), run)


def exported(ckpt: Path, model: str, board: str, work: Path, lut_share: float | None,
             folding: str | None = None) -> Path:
    """The model exported (reference == torch eval on the whole test set), folded by the solver for the board
    (with layer 0 in SPRAM on the UP5K when block RAM is too small), or with `folding` ("PxL,PxL,...")."""
    from fedxnor.boards.build import fit_device
    from fedxnor.export.manifest import Folding, load_export
    from fedxnor.hw.plan.refold import refold_export
    from fedxnor.hw.plan.solver import solve_foldings
    from fedxnor.train.to_export import export_checkpoint

    base = work / f"export-{model}"
    if not (base / "manifest.json").is_file():
        export_checkpoint(ckpt, base)
    tag = folding.replace(",", "_") if folding else (lut_share or "default")
    out = work / f"export-{model}-{board}-{tag}"
    if not (out / "manifest.json").is_file():
        if folding:
            folds = [Folding(*map(int, f.split("x"))) for f in folding.split(",")]
        else:
            kw = {"max_lut_share": lut_share} if lut_share else {}
            folds = solve_foldings(load_export(base), fit_device(board), spram=True, **kw)
        refold_export(base, out, folds)
    return out


def prebuilt_report(build_dir: Path, export_dir: Path) -> dict:
    """report.json of an earlier build of this very export (same manifest sha256)."""
    from fedxnor.export.manifest import load_export

    rep = json.loads((build_dir / "report.json").read_text())
    want = load_export(export_dir).sha256
    if rep.get("manifest_sha256") != want:
        raise SystemExit(f"{build_dir}/report.json was built from another export ({rep.get('manifest_sha256')}, "
                         f"want {want}): rebuild, or drop --prebuilt")
    return rep


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--boards", nargs="+", default=list(MODEL_FOR))
    ap.add_argument("--epochs", type=int, default=8, help="central training epochs of each model (bench_central uses 8)")
    ap.add_argument("--checkpoint", action="append", default=[], help="MODEL=PATH: use this checkpoint, do not train")
    ap.add_argument("--gate-images", type=int, default=50, help="images of the gate-level simulation (0: skip)")
    ap.add_argument("--gate-boards", nargs="*", default=["icebreaker", "ice40-hx8k"],
                    help="boards whose core is simulated at gate level (iCE40 cell models)")
    ap.add_argument("--gate-sim", choices=["verilator", "icarus"], default="verilator",
                    help="simulator of the gate-level netlist (Verilator: minutes for 50 images; Icarus: much longer)")
    ap.add_argument("--work", type=Path, default=Path("build/bench-boards"))
    ap.add_argument("--folding", action="append", default=[], help="BOARD=PxL,PxL,...: this folding, not the solver's")
    ap.add_argument("--prebuilt", action="append", default=[], help="BOARD=BUILD_DIR: reuse that build's report.json")
    ap.add_argument("--fresh", action="store_true", help="drop the rows of boards not measured in this run")
    ap.add_argument("--add-rows", nargs="*", default=[], help="only merge the rows printed in these logs into the results")
    args = ap.parse_args()
    given = dict(c.split("=", 1) for c in args.checkpoint)
    forced = FOLDINGS | dict(c.split("=", 1) for c in args.folding)
    prebuilt = {k: Path(v) for k, v in (c.split("=", 1) for c in args.prebuilt)}
    args.work.mkdir(parents=True, exist_ok=True)

    from fedxnor.boards.build import build_board
    from fedxnor.boards.gatesim import gate_level_verify
    from fedxnor.datasets import load_split
    from fedxnor.errors import FedxnorError
    from fedxnor.export.manifest import load_export
    from fedxnor.export.reference import Reference

    test = load_split("test")
    rows: list[dict] = []
    for line_file in args.add_rows:  # rows printed by an earlier run (one JSON object per line)
        rows += [json.loads(line) for line in Path(line_file).read_text().splitlines() if line.startswith('{"board"')]
    old = RESULTS / "boards.json"

    def save() -> Path:
        """This run's rows, plus the rows of other boards already in the results file (re-read each time, so
        that runs for different boards in parallel do not drop each other's rows)."""
        kept = []
        if old.is_file() and not args.fresh:
            mine = {r["board"] for r in rows}
            kept = [r for r in json.loads(old.read_text()).get("rows", []) if r.get("board") not in mine]
        order = list(MODEL_FOR)
        return write_results("boards", {"rows": sorted(kept + rows, key=lambda r: order.index(r["board"]))})

    if args.add_rows:
        print(f"wrote {save()}")
        return 0

    for board in args.boards:
        model = MODEL_FOR[board]
        t0 = time.perf_counter()
        ckpt = trained(model, args.work, args.epochs, given)
        rep = None
        tried = []
        target = BOARD_OF.get(board, board)
        for share in LUT_SHARES[board] if board not in forced else [None]:
            exp_dir = exported(ckpt, model, target, args.work, share, forced.get(board))
            if board in prebuilt:
                rep = prebuilt_report(prebuilt[board], exp_dir)
                break
            try:
                rep = build_board(exp_dir, target, args.work / f"build-{board}-{share or 'default'}")
                break
            except FedxnorError as e:
                tried.append({"max_lut_share": share, "error": str(e)})
                log(f"{board}: {e}")
        if rep is None:
            rows.append({"board": board, "model": model, "error": "no folding tried fits after routing", "tried": tried})
            save()
            continue
        export = load_export(exp_dir)
        ref = Reference(export)
        res = ref.classify(test.images)
        accuracy = float((res.classes == test.labels).mean())
        row = {"board": board, "device": rep["device"], "model": model,
               "layers": [f"{i.fan_in}->{i.fan_out}" for i in export.layers],
               "foldings": [[i.pe, i.simd] for i in export.layers],
               "weight_bits": int(sum(i.fan_in * i.fan_out for i in export.layers)),
               "fmax_mhz": rep["fmax_mhz"], "goal_fmax_mhz": GOAL_FMAX[board],
               "meets_fmax_goal": rep["fmax_mhz"] >= GOAL_FMAX[board],
               "clock_mhz": rep["clock_mhz"], "timing_met": rep["timing_met"], "utilisation": rep["utilisation"],
               "cycles_per_inference": rep["cycles_per_inference"], "inferences_per_s": rep["inferences_per_s"],
               "bram_bound_share": rep["bram_bound_share"], "bram_bound_cycles": rep["bram_bound_cycles"],
               "accuracy": accuracy, "test_images": len(test), "fully_on_chip": True,
               "weight_store": rep.get("weight_store") or {}, "load": rep.get("load"),
               "weight_roms": rep.get("weight_roms", "auto"),
               "build_dir": str(prebuilt.get(board, args.work / f"build-{board}-{share or 'default'}")),
               "manifest_sha256": rep["manifest_sha256"], "build_s": rep["build_s"], "attempts": rep["attempts"],
               "max_lut_share": share, "refused_foldings": tried,
               # ECP5: flip-flops moved into block-RAM output registers; the checkout the bitstream was built from
               "ram_output_registers": rep.get("ram_output_registers", rep["attempts"][-1].get("ram_output_registers")),
               "built_from": rep.get("source")}
        if args.gate_images and board in args.gate_boards:
            x = ref.prepare(test.images[: args.gate_images])
            g = gate_level_verify(export, x, args.work / f"gate-{board}", family=GATE_FAMILY[board], sim=args.gate_sim)
            row["gate_level"] = {k: g[k] for k in ("images", "class_mismatches", "activation_mismatches",
                                                   "activations_checked", "family", "sim", "cells", "sim_s", "synth_s", "build_s")}
        row["bench_s"] = round(time.perf_counter() - t0, 1)
        row["measured"] = provenance()
        rows.append(row)
        print(json.dumps(row), flush=True)
        save()  # after each board: a later failure keeps what was measured
    path = save()
    print(f"wrote {path}")
    bad = [r["board"] for r in rows if "error" in r or r.get("gate_level", {}).get("class_mismatches", 0)
           or r.get("gate_level", {}).get("activation_mismatches", 0)]
    if bad:
        print(f"FAIL: gate-level mismatches on {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
