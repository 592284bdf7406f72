"""`fedxnor train` (centralized or federated) and `fedxnor flower-app` (a Flower app directory)."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from fedxnor.errors import FedxnorError
from fedxnor.train.fpmodels import FP_MODELS
from fedxnor.train.models import MODELS

ALGOS = ["central", "fedavg", "fedbnn", "fedbat", "fedhybnn", "signsgd", "efsign"]
VAE_FLAGS = ("vae", "vae_bits", "vae_kl", "vae_epochs")  # FederatedConfig fields of FedHyBNN's VAE


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
    p.add_argument("--bn-stats", default=None, choices=["mean", "pooled"],
                   help="federated: the server's BatchNorm variance: the clients' mean (default) or pooled (adds the "
                        "spread of their means)")
    p.add_argument("--batch", type=int, default=None, help="batch size, at least 2 (central 100, federated 64)")
    p.add_argument("--train-limit", type=int, default=None, help="use only the first N training samples (N >= 1)")
    p.add_argument("--test-limit", type=int, default=None, help="evaluate on the first N test samples (N >= 1)")
    p.add_argument("--hidden", type=int, nargs="+", default=None, metavar="WIDTH",
                   help="hidden layer widths, e.g. --hidden 256 256 (default: the model's); the input size comes "
                        "from the data's images")
    p.add_argument("--data", type=Path, default=None,
                   help="IDX data directory: any H x W unsigned-byte images, labels 0..9 (default: Debian's Fashion-MNIST)")
    p.add_argument("--vae", default=None, choices=["mlp", "conv"],
                   help="fedhybnn: the binary-latent VAE whose frozen encoder feeds the head (default conv)")
    p.add_argument("--vae-bits", type=int, default=None, help="fedhybnn: the VAE's latent bits, the head's input (default 512)")
    p.add_argument("--vae-kl", type=float, default=None, help="fedhybnn: the VAE's KL weight (default 0.01)")
    p.add_argument("--vae-epochs", type=int, default=None, help="fedhybnn: the VAE's training epochs (default 10)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a BNN (centralized or federated) and write a checkpoint")
    _federated_args(p)
    p.add_argument("--epochs", type=int, default=8, help="epochs of central training")
    p.add_argument("--out", type=Path, required=True, help="run directory for checkpoint.pt and metrics.json")
    p.add_argument("--resume", action="store_true", help="continue a federated run from its last finished round")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.set_defaults(func=run_train)

    f = sub.add_parser("flower-app", help="write a Flower app directory for a federation across machines (flwr run); "
                       "deploy with TLS + SuperNode authentication (docs/federated.md); --insecure is for local experiments only")
    _federated_args(f)
    f.add_argument("--out", type=Path, required=True, help="app directory to write (pyproject.toml + module)")
    f.add_argument("--run-out", type=Path, default=Path("runs/flower"),
                   help="run directory on the SuperLink's machine (checkpoint.pt, metrics.json)")
    f.add_argument("--min-nodes", type=int, default=1, help="SuperNodes to wait for before round 1")
    f.add_argument("--min-live-nodes", type=int, default=1, help="live SuperNodes every round needs, else the run stops")
    f.add_argument("--round-timeout", type=float, default=600.0, help="seconds a SuperNode has to answer a round")
    f.set_defaults(func=run_flower_app)


def check_values(args: argparse.Namespace) -> None:
    """Every number on the command line within its limits (train/validate.py), before any work."""
    from fedxnor.train.partition import parse_scheme
    from fedxnor.train.validate import check, check_hidden

    names = ["seed"] + (["epochs"] if args.algo == "central" else ["clients", "per_round", "rounds", "local_epochs"])
    names += [n for n in ("lr", "momentum", "prox_mu", "logit_adjust", "batch", "train_limit", "test_limit", "min_nodes")
              if getattr(args, n, None) is not None]
    for name in names:
        check(name, getattr(args, name))
    if args.hidden is not None:
        check_hidden(args.hidden)
    vae_flags = [f"--{n.replace('_', '-')}" for n in VAE_FLAGS if getattr(args, n, None) is not None]
    if vae_flags and args.algo != "fedhybnn":
        raise FedxnorError(f"{vae_flags[0]} sets FedHyBNN's VAE: use it with --algo fedhybnn, or leave it out")
    for name in VAE_FLAGS[1:]:
        if getattr(args, name, None) is not None:
            check(name, getattr(args, name))
    if args.algo != "central":
        parse_scheme(args.partition)
        if args.per_round > args.clients:
            raise FedxnorError(f"--per-round {args.per_round} exceeds --clients {args.clients}: sample at most every client")


def federated_config(args: argparse.Namespace):
    from fedxnor.train.federated import FederatedConfig
    from fedxnor.train.validate import format_hidden

    check_values(args)
    kw = {"algo": args.algo, "model": args.model or "", "codec": args.codec, "partition": args.partition,
          "clients": args.clients, "per_round": args.per_round, "rounds": args.rounds, "local_epochs": args.local_epochs,
          "seed": args.seed, "lr": args.lr or 0.0, "train_limit": args.train_limit or 0, "test_limit": args.test_limit or 0,
          "data_dir": str(args.data) if args.data else "", "hidden": format_hidden(args.hidden or ())}
    if args.batch:
        kw["batch"] = args.batch
    if args.lr_schedule:
        kw["lr_schedule"] = args.lr_schedule
    for key in ("optimizer", "momentum", "prox_mu", "logit_adjust", "bn_stats", *VAE_FLAGS):
        if getattr(args, key) is not None:
            kw[key] = getattr(args, key)
    return FederatedConfig(**kw).resolved()


def run_train(args: argparse.Namespace) -> int:
    from fedxnor.train.preflight import check_central_data, check_federated_data

    if args.out.exists() and not args.out.is_dir():
        raise FedxnorError(f"--out {args.out} is a file; name a run directory")
    if args.algo == "central":
        check_values(args)
        from fedxnor.train.central import CentralConfig, train_central

        kw = {"lr": args.lr} if args.lr is not None else {}
        cfg = CentralConfig(model=args.model or "mlp", epochs=args.epochs, seed=args.seed, batch=args.batch or 100,
                            train_limit=args.train_limit, test_limit=args.test_limit, hidden=tuple(args.hidden or ()), **kw)
        check_central_data(cfg, args.data)
        with _no_empty_run_dir(args.out):
            ckpt = train_central(cfg, args.out, args.data, progress=not args.quiet)
    else:
        from fedxnor.train.federated import train_federated

        cfg = federated_config(args)
        check_federated_data(cfg)
        with _no_empty_run_dir(args.out):
            ckpt = train_federated(cfg, args.out, progress=not args.quiet, resume=args.resume)
    meta = json.loads((args.out / "metrics.json").read_text())["meta"]
    summary = {"checkpoint": str(ckpt), "test_accuracy": meta["test_accuracy"]}
    for key in ("uplink_bytes_total", "downlink_bytes_total", "uplink_bits_per_param", "rounds"):
        if key in meta:
            summary[key] = meta[key]
    print(json.dumps(summary) if args.json else f"checkpoint {ckpt} (test accuracy {summary['test_accuracy']:.4f})")
    return 0


class _no_empty_run_dir:
    """A run directory this command created is removed again when a refusal leaves it empty."""

    def __init__(self, out: Path):
        self.out, self.existed = Path(out), Path(out).exists()

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if kind is not None and not self.existed and self.out.is_dir() and not any(self.out.iterdir()):
            shutil.rmtree(self.out, ignore_errors=True)
        return False


def run_flower_app(args: argparse.Namespace) -> int:
    from fedxnor.train.flower_app import write_app

    if args.algo == "central":
        raise FedxnorError("flower-app needs a federated --algo (fedavg, fedbnn, fedbat, fedhybnn, signsgd, efsign)")
    d = write_app(args.out, federated_config(args), args.run_out, min_nodes=args.min_nodes,
                  min_live_nodes=args.min_live_nodes, round_timeout_s=args.round_timeout)
    print(f"Flower app in {d}: start a SuperLink and SuperNodes, then run 'flwr run {d} CONNECTION --stream' "
          "(docs/federated.md)")
    return 0
