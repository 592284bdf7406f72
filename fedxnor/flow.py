"""`fedxnor flow`: the main job end to end (grows with each part of the flow)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fedxnor.progress import log


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flow", help="run the main job end to end: train, export, reference check")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="run directory")
    p.add_argument("--model", default="mlp-small")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", type=Path, default=None)
    p.set_defaults(func=run_flow)


def run_flow(args: argparse.Namespace) -> int:
    from fedxnor.export.from_checkpoint import export_checkpoint
    from fedxnor.export.reference import Reference
    from fedxnor.train.central import CentralConfig, train_central
    from fedxnor.train.data import load_split

    out: Path = args.out
    log(f"[1/3] training {args.model} for {args.epochs} epochs (seed {args.seed})")
    ckpt = train_central(CentralConfig(model=args.model, epochs=args.epochs, seed=args.seed), out / "train", args.data)
    log("[2/3] exporting integer thresholds and ROM images (agreement with torch on the full test set)")
    summary = export_checkpoint(ckpt, out / "export", data_dir=args.data)
    log("[3/3] bit-exact reference on the Fashion-MNIST test set")
    test = load_split("test", args.data)
    result = Reference(out / "export").classify(test.images)
    report = {"model": args.model, "torch_accuracy": summary["torch_accuracy"],
              "reference_accuracy": float((result.classes == test.labels).mean()),
              "agreement": summary["agreement"], "images": len(test)}
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report))
    return 0
