"""`fedxnor train` (centralized or federated) and `fedxnor flower-app` (a Flower app directory)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fedxnor.errors import FedxnorError
from fedxnor.train.fpmodels import FP_MODELS
from fedxnor.train.models import MODELS

ALGOS = ["central", "fedavg", "fedbnn", "fedbat", "fedhybnn", "signsgd", "efsign"]


def _federated_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--algo", default="central", choices=ALGOS,
                   help="central, or federated: fedavg, fedbnn (BNN + rotation), fedbat, fedhybnn, signsgd, efsign")
    p.add_argument("--model", default=None, choices=[*MODELS, *FP_MODELS],
                   help="named model (default: mlp; hybnn-head for fedhybnn; fp-* are full-precision baselines)")
    p.add_argument("--codec", default="", choices=["", "fp32", "sign", "efsign", "fedbat"],
                   help="update codec on the wire (default: the algorithm's own)")
    p.add_argument("--partition", default="iid", help="iid, dir<beta> (e.g. dir0.3) or cls<c> (e.g. cls3)")
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--per-round", type=int, default=10)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--local-epochs", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (central: Adam 5e-3; federated: SGD 0.1 full precision, Adam 2e-3 BNN)")
    p.add_argument("--lr-schedule", default=None, choices=["constant", "cosine"],
                   help="federated: the clients' lr over the rounds (default cosine: decays towards 0; constant)")
    p.add_argument("--optimizer", default=None, choices=["sgd", "adam"],
                   help="federated: the clients' optimizer (default: SGD full precision, Adam BNN)")
    p.add_argument("--momentum", type=float, default=None, help="federated: SGD momentum (default 0)")
    p.add_argument("--prox-mu", type=float, default=None,
                   help="federated: FedProx's mu/2·||w - w_global||² in the clients' loss (default 0: off)")
    p.add_argument("--logit-adjust", type=float, default=None,
                   help="federated: clients train on logits + tau·log(their label prior) (default: 1 for BNNs, "
                        "0 for full precision; 0 turns it off)")
    p.add_argument("--batch", type=int, default=None, help="batch size (central 100, federated 64)")
    p.add_argument("--train-limit", type=int, default=None, help="use only the first N training samples")
    p.add_argument("--test-limit", type=int, default=None, help="evaluate on the first N test samples")
    p.add_argument("--data", type=Path, default=None, help="IDX data directory (default: Debian's Fashion-MNIST)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a BNN (centralized or federated) and write a checkpoint")
    _federated_args(p)
    p.add_argument("--epochs", type=int, default=8, help="epochs of central training")
    p.add_argument("--out", type=Path, required=True, help="run directory for checkpoint.pt and metrics.json")
    p.add_argument("--resume", action="store_true", help="continue a federated run from its last finished round")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.set_defaults(func=run_train)

    f = sub.add_parser("flower-app", help="write a Flower app directory for a federation across machines (flwr run)")
    _federated_args(f)
    f.add_argument("--out", type=Path, required=True, help="app directory to write (pyproject.toml + module)")
    f.add_argument("--run-out", type=Path, default=Path("runs/flower"),
                   help="run directory on the SuperLink's machine (checkpoint.pt, metrics.json)")
    f.add_argument("--min-nodes", type=int, default=1, help="SuperNodes to wait for before round 1")
    f.set_defaults(func=run_flower_app)


def federated_config(args: argparse.Namespace):
    from fedxnor.train.federated import FederatedConfig

    kw = {"algo": args.algo, "model": args.model or "", "codec": args.codec, "partition": args.partition,
          "clients": args.clients, "per_round": args.per_round, "rounds": args.rounds, "local_epochs": args.local_epochs,
          "seed": args.seed, "lr": args.lr or 0.0, "train_limit": args.train_limit or 0, "test_limit": args.test_limit or 0,
          "data_dir": str(args.data) if args.data else ""}
    if args.batch:
        kw["batch"] = args.batch
    if args.lr_schedule:
        kw["lr_schedule"] = args.lr_schedule
    for key in ("optimizer", "momentum", "prox_mu", "logit_adjust"):
        if getattr(args, key) is not None:
            kw[key] = getattr(args, key)
    return FederatedConfig(**kw).resolved()


def run_train(args: argparse.Namespace) -> int:
    if args.algo == "central":
        if args.epochs < 1:
            raise FedxnorError("--epochs must be at least 1")
        from fedxnor.train.central import CentralConfig, train_central

        model = args.model or "mlp"
        if model not in MODELS:
            raise FedxnorError(f"central training takes a BNN model ({', '.join(MODELS)}), not {model}")
        kw = {"lr": args.lr} if args.lr else {}
        cfg = CentralConfig(model=model, epochs=args.epochs, seed=args.seed, batch=args.batch or 100,
                            train_limit=args.train_limit, test_limit=args.test_limit, **kw)
        ckpt = train_central(cfg, args.out, args.data, progress=not args.quiet)
    else:
        from fedxnor.train.federated import train_federated

        ckpt = train_federated(federated_config(args), args.out, progress=not args.quiet, resume=args.resume)
    meta = json.loads((args.out / "metrics.json").read_text())["meta"]
    summary = {"checkpoint": str(ckpt), "test_accuracy": meta["test_accuracy"]}
    for key in ("uplink_bytes_total", "downlink_bytes_total", "uplink_bits_per_param", "rounds"):
        if key in meta:
            summary[key] = meta[key]
    print(json.dumps(summary) if args.json else f"checkpoint {ckpt} (test accuracy {summary['test_accuracy']:.4f})")
    return 0


def run_flower_app(args: argparse.Namespace) -> int:
    from fedxnor.train.flower_app import write_app

    if args.algo == "central":
        raise FedxnorError("flower-app needs a federated --algo (fedavg, fedbnn, fedbat, fedhybnn, signsgd, efsign)")
    d = write_app(args.out, federated_config(args), args.run_out, min_nodes=args.min_nodes)
    print(f"Flower app in {d}: start a SuperLink and SuperNodes, then run 'flwr run {d} CONNECTION --stream' "
          "(docs/federated.md)")
    return 0
