"""RTL verification of a trained conv BNN: the generated Verilog of its conv front (sliding windows, max-pool) and
dense layers against the bit-exact reference, every class and every feature-map and hidden bit (the tagged
debug stream), on Verilator over the test set and on Icarus over a sample.

    python bench/bench_verify_conv.py --checkpoint CKPT [--device ecp5-85] [--verilator-images 10000] [--icarus-images 20]

The checkpoint is exported (`fedxnor export`: reference == torch eval on the 10,000 test images) and folded by the
solver for --device (`fedxnor fold`). Writes bench/results/verify_conv_<model>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_verify import KEEP  # noqa: E402
from common import write_results  # noqa: E402

from fedxnor.contract.cycles import cycles_per_inference, latency_cycles  # noqa: E402
from fedxnor.export.manifest import load_export  # noqa: E402
from fedxnor.sim.runner import verilator_cflags  # noqa: E402
from fedxnor.sim.verify import verify_export  # noqa: E402


def fedxnor(*args: str) -> str:
    run = subprocess.run([sys.executable, "-m", "fedxnor", *args], capture_output=True, text=True)
    if run.returncode:
        raise SystemExit(f"fedxnor {' '.join(args)} failed: {run.stderr.strip()}")
    return (run.stdout + run.stderr).strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--device", default="ecp5-85")
    ap.add_argument("--verilator-images", type=int, default=10000)
    ap.add_argument("--icarus-images", type=int, default=20)
    ap.add_argument("--name", default="", help="results file name (default verify_conv_<model>)")
    args = ap.parse_args()
    os.environ.setdefault("FEDXNOR_VERILATOR_CFLAGS", "-O2")
    with tempfile.TemporaryDirectory(prefix="fedxnor-bench-verify-conv-") as tmp:
        export, folded = Path(tmp) / "export", Path(tmp) / "folded"
        exported = fedxnor("export", str(args.checkpoint), "--out", str(export))
        fold = fedxnor("fold", str(export), "--device", args.device, "--out", str(folded))
        ex = load_export(folded)
        source = ex.manifest.get("source", {})
        layers = [{"name": i.name, "kind": i.kind, "in_shape": list(i.spec.in_shape), "out_shape": list(i.spec.out_shape),
                   "folding": None if i.fold is None else [i.pe, i.simd]} for i in ex.layers]
        rows = {}
        for sim, n in (("verilator", args.verilator_images), ("icarus", args.icarus_images)):
            # the RTL as the device's board build makes it (weight ROM tiles on ECP5)
            verify_export(folded, sim=sim, images=1, progress=False, device=args.device)  # build (cached) untimed
            r = verify_export(folded, sim=sim, images=n, progress=True, device=args.device)
            rows[sim] = {k: r[k] for k in KEEP}
            rows[sim]["mismatching_images_per_layer"] = r["mismatching_images_per_layer"]
            rows[sim]["command"] = f"fedxnor verify FOLDED --sim {sim} --images {n} --device {args.device} --json"
            print(sim, json.dumps(rows[sim]), flush=True)
    model = source.get("model")
    data = {
        "model": model, "checkpoint": str(args.checkpoint), "export": exported.splitlines()[-1], "device": args.device,
        "fold": fold.splitlines()[-1], "layers": layers,
        "model_cycles_per_inference": cycles_per_inference(ex.layers), "model_latency_cycles": latency_cycles(ex.layers),
        "test_accuracy": source.get("train_meta", {}).get("test_accuracy"),
        "simulators": rows, "verilator_cflags": verilator_cflags(),
        "zero_mismatches": all(r["mismatches"] == 0 for r in rows.values()),
        "verilator_full_test_set": rows["verilator"]["images"] == 10000,
    }
    path = write_results(args.name or f"verify_conv_{model}", data)
    print(f"wrote {path}")
    return 0 if data["zero_mismatches"] else 1


if __name__ == "__main__":
    sys.exit(main())
