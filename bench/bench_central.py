"""Centralized BNN accuracy on the full Fashion-MNIST test set, and exact export agreement.

For each model: train (seeded), export, and check that the bit-exact reference
equals torch eval on all 10,000 test images. Writes bench/results/central.json.

    python bench/bench_central.py [--models mlp mlp-small mlp-bin] [--epochs 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results  # noqa: E402

from fedxnor.datasets import load_split  # noqa: E402
from fedxnor.export.reference import Reference  # noqa: E402
from fedxnor.train.central import CentralConfig, train_central  # noqa: E402
from fedxnor.train.checkpoint import load_checkpoint  # noqa: E402
from fedxnor.train.to_export import export_checkpoint  # noqa: E402

GOALS = {"mlp": 0.87}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", nargs="+", default=["mlp", "mlp-small", "mlp-bin"])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    test = load_split("test")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            run = Path(tmp) / name
            ckpt = train_central(CentralConfig(model=name, epochs=args.epochs, seed=args.seed), run)
            model, meta = load_checkpoint(ckpt)
            summary = export_checkpoint(ckpt, run / "export")
            ref = Reference(run / "export").classify(test.images)
            import torch

            torch_pred = model.predict(torch.from_numpy(test.images))
            mismatches = int((ref.classes != torch_pred).sum())
            acc = float((ref.classes == test.labels).mean())
            row = {"model": name, "epochs": args.epochs, "seed": args.seed, "test_images": len(test),
                   "torch_accuracy": summary["torch_accuracy"], "reference_accuracy": acc,
                   "mismatches": mismatches, "train_seconds": meta["seconds"],
                   "weight_bits": int(sum(np.prod(layer.weights.shape) for layer in model.to_int_network().layers
                                                  if layer.weights is not None)),
                   "goal_accuracy": GOALS.get(name), "meets_goal": None if name not in GOALS else acc >= GOALS[name]}
            rows.append(row)
            print(row, flush=True)
            if mismatches:
                print(f"FAIL: {name}: {mismatches} mismatches between reference and torch eval", file=sys.stderr)
    path = write_results("central", {"rows": rows})
    print(f"wrote {path}")
    return 0 if all(r["mismatches"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
