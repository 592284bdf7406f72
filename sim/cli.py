"""`fedxnor verify`: the generated RTL against the bit-exact reference, image by image."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="simulate the generated Verilog (cocotb on Icarus or Verilator) against the reference")
    p.add_argument("directory", type=Path, help="export directory")
    p.add_argument("--sim", choices=["icarus", "verilator"], default="verilator")
    p.add_argument("--images", type=int, default=None, help="first N test images (default all)")
    p.add_argument("--waves", action="store_true", help="record waveforms (FST) and print their path")
    p.add_argument("--data", type=Path, default=None, help="IDX data directory (default: the data the export records)")
    p.add_argument("--mode", choices=["batch", "cycle"], default="batch",
                   help="batch: wrapper-fed, per-image interaction (fast); cycle: cocotb drivers every clock")
    p.add_argument("--stall", type=float, default=0.0, help="probability of a stall cycle on every stream (0..1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-debug", action="store_true", help="check classes only, not every layer's activations")
    p.add_argument("--reference", type=Path, default=None,
                   help="score against this export's reference instead of DIR's (fault-injection checks)")
    p.add_argument("--device", default=None,
                   help="simulate the RTL as the board build makes it for this device (e.g. ecp5-85: weight ROM tiles, "
                        "read registers); default: the plain RTL")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_verify)


def run_verify(args: argparse.Namespace) -> int:
    from fedxnor.errors import FedxnorError
    from fedxnor.sim.verify import verify_export

    if not 0 <= args.stall < 1:
        raise FedxnorError("--stall must be in [0, 1)")
    result = verify_export(args.directory, sim=args.sim, images=args.images, waves=args.waves, progress=True,
                           data_dir=args.data, mode=args.mode, stall_in=args.stall, stall_out=args.stall,
                           seed=args.seed, debug=not args.no_debug,
                           reference_dir=args.reference, device=args.device)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['images']} images on {args.sim}: {result['mismatches']} mismatches, {result['cycles']} cycles, "
              f"{result['images_per_s']:.1f} images/s")
        if result["first_mismatch"]:
            print("first mismatch: " + result["first_mismatch"]["message"])
        if result["waves"]:
            print(f"waveforms: {result['waves']}")
    return 1 if result["mismatches"] else 0
