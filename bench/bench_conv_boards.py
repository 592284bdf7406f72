"""Conv BNNs on the boards: place-and-route figures of a folded conv export per board, its accuracy on the
10,000 test images (the bit-exact reference), and, on iCE40, a gate-level simulation of the synthesized core
(iCE40 cell models) against the reference, every class and feature-map bit. Writes bench/results/conv_boards.json
(one row per board; rows of other boards kept).

    python bench/bench_conv_boards.py --board icebreaker=FOLDED_EXPORT [--prebuilt icebreaker=BUILD_DIR]
        [--board ulx3s-85f=FOLDED_EXPORT --clock-mhz ulx3s-85f=60 --seeds 1] [--gate-images 10]

Without --prebuilt the board is built (`fedxnor build BOARD --json`); with it, that build's report.json is used
(it must come from the same export: same manifest sha256).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_boards import GATE_FAMILY, prebuilt_report  # noqa: E402
from common import RESULTS, provenance, write_results  # noqa: E402

GOALS = {"icebreaker": {"fmax_mhz": 35.0, "accuracy": 0.89}, "ulx3s-85f": {"inferences_per_s": 20000.0, "accuracy": 0.92}}


def other_rows(board: str) -> list[dict]:
    """The results file's rows of the other boards, read when a row is written (so two runs of this script for
    different boards, side by side, keep each other's rows)."""
    old = RESULTS / "conv_boards.json"
    return [r for r in json.loads(old.read_text()).get("rows", []) if r["board"] != board] if old.is_file() else []


def build(board: str, export: Path, out: Path, clock: str | None, seeds: list[str]) -> dict:
    argv = [sys.executable, "-m", "fedxnor", "build", str(export), "--board", board, "--out", str(out), "--json"]
    argv += (["--clock-mhz", clock] if clock else []) + (["--seeds", *seeds] if seeds else [])
    run = subprocess.run(argv, capture_output=True, text=True)
    if run.returncode:
        raise SystemExit(f"fedxnor build failed: {run.stderr.strip()}")
    return json.loads(run.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--board", action="append", required=True, help="BOARD=FOLDED_EXPORT_DIR")
    ap.add_argument("--prebuilt", action="append", default=[], help="BOARD=BUILD_DIR: reuse that build's report.json")
    ap.add_argument("--clock-mhz", action="append", default=[], help="BOARD=MHZ: the PLL target of a build")
    ap.add_argument("--seeds", nargs="*", default=[], help="nextpnr seeds of a build")
    ap.add_argument("--gate-images", type=int, default=10, help="images of the iCE40 gate-level simulation (0: skip)")
    ap.add_argument("--work", type=Path, default=Path("build/bench-conv-boards"))
    args = ap.parse_args()
    boards = dict(b.split("=", 1) for b in args.board)
    prebuilt = dict(b.split("=", 1) for b in args.prebuilt)
    clocks = dict(b.split("=", 1) for b in args.clock_mhz)

    from fedxnor.boards.gatesim import gate_level_verify
    from fedxnor.datasets import load_split
    from fedxnor.export.manifest import load_export
    from fedxnor.export.reference import Reference

    test = load_split("test")
    for board, export_dir in boards.items():
        t0 = time.perf_counter()
        export_dir = Path(export_dir)
        rep = (prebuilt_report(Path(prebuilt[board]), export_dir) if board in prebuilt else
               build(board, export_dir, args.work / f"build-{board}", clocks.get(board), args.seeds))
        ex = load_export(export_dir)
        ref = Reference(ex)
        res = ref.classify(test.images)
        row = {"board": board, "device": rep["device"], "model": ex.manifest.get("source", {}).get("model"),
               "layers": [f"{i.kind} {'x'.join(map(str, i.spec.in_shape))}->{'x'.join(map(str, i.spec.out_shape))}"
                          for i in ex.layers],
               "foldings": [None if i.fold is None else [i.pe, i.simd] for i in ex.layers],
               "accuracy": float((res.classes == test.labels).mean()), "test_images": len(test),
               **{k: rep[k] for k in ("fmax_mhz", "clock_mhz", "timing_met", "utilisation", "cycles_per_inference",
                                      "inferences_per_s", "bram_bound_share", "manifest_sha256", "build_s")},
               "attempts": [{k: a[k] for k in ("clock_mhz", "fmax_mhz", "seed", "kept") if k in a}
                            for a in rep.get("attempts", [])],
               "goals": GOALS.get(board), "built_from": rep.get("source"), "fully_on_chip": not rep.get("weight_store")}
        goals = GOALS.get(board, {})
        row["meets"] = {k: (row[k] if k in row else rep.get(k)) >= v for k, v in goals.items()}
        if args.gate_images and GATE_FAMILY.get(board) in ("ice40", "hx8k"):
            x = ref.prepare(test.images[: args.gate_images])
            g = gate_level_verify(ex, x, args.work / f"gate-{board}", family=GATE_FAMILY[board], sim="verilator")
            row["gate_level"] = {k: g[k] for k in ("images", "class_mismatches", "activation_mismatches",
                                                   "activations_checked", "family", "sim", "cells", "sim_s", "synth_s")}
        row["bench_s"] = round(time.perf_counter() - t0, 1)
        row["measured"] = provenance()
        print(json.dumps(row), flush=True)
        write_results("conv_boards", {"rows": [*other_rows(board), row]})
    print(f"wrote {RESULTS / 'conv_boards.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
