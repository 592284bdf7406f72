"""`fedxnor train`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fedxnor.errors import FedxnorError
from fedxnor.train.models import MODELS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a BNN (centralized or federated) and write a checkpoint")
    p.add_argument("--algo", default="central", help="central (more with the federated issue)")
    p.add_argument("--model", default="mlp", choices=list(MODELS), help="named model configuration")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--train-limit", type=int, default=None, help="use only the first N training samples")
    p.add_argument("--data", type=Path, default=None, help="IDX data directory (default: Debian's Fashion-MNIST)")
    p.add_argument("--out", type=Path, required=True, help="run directory for checkpoint.pt and metrics.json")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    if args.algo != "central":
        raise FedxnorError(f"unknown --algo {args.algo!r}: choose central")
    if args.epochs < 1:
        raise FedxnorError("--epochs must be at least 1")
    from fedxnor.train.central import CentralConfig, train_central

    cfg = CentralConfig(model=args.model, epochs=args.epochs, seed=args.seed, lr=args.lr, batch=args.batch,
                        train_limit=args.train_limit)
    ckpt = train_central(cfg, args.out, args.data)
    metrics = json.loads((args.out / "metrics.json").read_text())
    summary = {"checkpoint": str(ckpt), "test_accuracy": metrics["meta"]["test_accuracy"]}
    print(json.dumps(summary) if args.json else f"checkpoint {ckpt} (test accuracy {summary['test_accuracy']:.4f})")
    return 0
