"""Board figures of the QONNX imports; adds them to bench/results/qonnx.json (written by bench/bench_qonnx.py).

    python bench/bench_qonnx_board.py [--board ulx3s-85f] [--max-lut-share 0.4] [--seeds 1] [--work DIR]
        [--prebuilt BUILD_DIR]
    python bench/bench_qonnx_board.py --tutorial [--work DIR]

Default: the imported Brevitas SFC export of bench_qonnx's row is folded for the board's FPGA and built, with the
commands a user types (`fedxnor fold EXPORT --device ... --max-lut-share ... --json`, `fedxnor build FOLDED --board
... --json`); the build's report (LUT/FF/block RAM, post-route Fmax, the PLL clock the bitstream runs at,
cycles/inference and inferences/s from fedxnor.boards.figures) goes into the row under "boards". The row's manifest
sha256 must be the export's: a re-trained export needs a new bench_qonnx run first. --prebuilt takes the report.json
of an earlier build of the same folded export instead of placing and routing again (tens of minutes for the ULX3S).

--tutorial: runs the commands of docs/tutorial.md section 4 ("Bring a Brevitas model to the iCEBreaker") exactly as
written, with its /tmp/brevitas directory moved under --work, and records what each printed and the iCEBreaker
build's report under "tutorial": the tutorial quotes no figure of its own, it points here.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, provenance, write_results  # noqa: E402

from fedxnor.boards.build import fit_device  # noqa: E402
from fedxnor.export.manifest import load_export  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FEDXNOR = [sys.executable, "-m", "fedxnor"]
TUTORIAL_SECTION = "## 4. Bring a Brevitas model"
TUTORIAL_DIR = "/tmp/brevitas"


def run(argv: list[str], log: Path) -> tuple[str, float]:
    """Run one command, its stderr (progress) appended to `log`; its stdout, and the seconds it took."""
    t0 = time.perf_counter()
    with open(log, "a") as err:
        err.write(f"$ {shlex.join(map(str, argv))}\n")
        err.flush()
        r = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT)
    if r.returncode:
        raise SystemExit(f"exit {r.returncode}: {shlex.join(map(str, argv))} (log: {log})\n{r.stdout[-2000:]}")
    return r.stdout, round(time.perf_counter() - t0, 1)


def board_figures(rep: dict) -> dict:
    """The columns bench_boards records for its board rows, from a build report (boards/figures.py's arithmetic)."""
    u = rep["utilisation"]
    keep = ("board", "device", "fmax_mhz", "clock_mhz", "timing_met", "target_mhz", "cycles_per_inference",
            "inferences_per_s", "bram_bound_cycles", "bram_bound_share", "weight_roms", "build_s", "attempts",
            "manifest_sha256", "ram_output_registers", "source")
    last = next((a for a in rep["attempts"] if a.get("kept")), rep["attempts"][-1])  # the build the report is of
    return {**{k: rep[k] for k in keep if k in rep}, "utilisation": u,
            "seeds": [s["seed"] for s in last.get("seeds", [])], "seed_packed": last.get("seed")}


def build_row(row: dict, board: str, work: Path, lut_share: float, seeds: list[int], prebuilt: Path | None) -> dict:
    export = load_export(Path(row["export_dir"]))
    if row.get("manifest_sha256") and export.sha256 != row["manifest_sha256"]:
        raise SystemExit(f"{row['export_dir']} is not the export of the row in qonnx.json (sha256 {export.sha256}, "
                         f"row {row['manifest_sha256']}): run bench/bench_qonnx.py again first")
    log = work / f"{board}.log"
    folded, build = work / f"fold-{board}", work / f"build-{board}"
    fold_cmd = ["fold", row["export_dir"], "--device", fit_device(board), "--max-lut-share", str(lut_share),
                "--out", folded, "--json"]
    fold, _ = run(FEDXNOR + fold_cmd, log)
    fold = json.loads(fold)
    build_cmd = ["build", folded, "--board", board, "--out", build, "--seeds", *map(str, seeds), "--json"]
    if prebuilt:
        rep = json.loads((prebuilt / "report.json").read_text())
        if rep.get("manifest_sha256") != load_export(folded).sha256:
            raise SystemExit(f"{prebuilt}/report.json was built from another export: rebuild, or drop --prebuilt")
    else:
        out, _ = run(FEDXNOR + build_cmd, log)
        rep = json.loads(out)
    layers = load_export(folded).layers
    return {**board_figures(rep), "foldings": [[i.pe, i.simd] for i in layers], "max_lut_share": lut_share,
            "model_luts": fold["luts_model"], "model_bram": fold["bram_model"],
            "commands": ["fedxnor " + shlex.join(map(str, c)) for c in (fold_cmd, build_cmd)],
            "build_dir": str(prebuilt or build), "measured": provenance()}


def tutorial_commands() -> list[str]:
    """The shell commands of docs/tutorial.md section 4, in order, as written."""
    text = (ROOT / "docs" / "tutorial.md").read_text()
    section = text[text.index(TUTORIAL_SECTION):].split("\n## ")[0]  # up to the next section
    return [ln.strip() for ln in section.splitlines() if re.match(r"\s{4}\.venv/bin/", ln)]


def run_tutorial(work: Path) -> dict:
    tdir = work / "tutorial"
    log = work / "tutorial.log"
    steps = []
    for line in tutorial_commands():
        argv = shlex.split(line.replace(TUTORIAL_DIR, str(tdir)))
        out, seconds = run(argv, log)
        printed = [ln for ln in out.splitlines() if ln.strip()]
        steps.append({"command": line, "seconds": seconds, "printed": printed[-4:]})
    builds = [s for s in steps if shlex.split(s["command"])[1] == "build"]
    out_dir = shlex.split(builds[-1]["command"].replace(TUTORIAL_DIR, str(tdir)))
    rep = json.loads((Path(out_dir[out_dir.index("--out") + 1]) / "report.json").read_text())
    ref = load_export(Path(rep["export"]))
    return {"steps": steps, "build": {**board_figures(rep), "foldings": [[i.pe, i.simd] for i in ref.layers],
                                      "layers": [f"{i.fan_in}->{i.fan_out}" for i in ref.layers]},
            "measured": provenance()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--board", default="ulx3s-85f")
    ap.add_argument("--max-lut-share", type=float, default=0.4,
                    help="the solver's LUT budget (0.4 as bench_boards' sfc: at the default 0.85 nextpnr had not placed it in 25 min)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1], help="nextpnr seeds (one: one core)")
    ap.add_argument("--work", type=Path, default=ROOT / "build" / "bench-qonnx-board")
    ap.add_argument("--prebuilt", type=Path, default=None, help="an earlier build of the same folded export")
    ap.add_argument("--tutorial", action="store_true", help="run docs/tutorial.md section 4 as written instead")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results = json.loads((RESULTS / "qonnx.json").read_text())
    if args.tutorial:
        update = {"tutorial": run_tutorial(args.work)}
        print(json.dumps(update["tutorial"]["build"]))
    else:
        row = next(r for r in results["rows"] if r["model"].startswith("sfc"))
        fig = build_row(row, args.board, args.work, args.max_lut_share, args.seeds, args.prebuilt)
        print(json.dumps(fig))
    # other runs (bench_qonnx's other rows) may have rewritten the file meanwhile: merge into what is there now
    fresh = json.loads((RESULTS / "qonnx.json").read_text())
    fresh.pop("provenance", None)
    if args.tutorial:
        fresh.update(update)
    else:
        mine = [r for r in fresh["rows"] if r.get("manifest_sha256") == row["manifest_sha256"]]
        if not mine:
            raise SystemExit(f"bench/results/qonnx.json no longer holds the row of {row['export_dir']} (a new import?): run again")
        mine[0]["boards"] = {**mine[0].get("boards", {}), args.board: fig}
    print(f"wrote {write_results('qonnx', fresh)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
