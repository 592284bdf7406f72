"""Federated training on Fashion-MNIST: accuracy and measured uplink of every algorithm, per partition.

100 clients, 10 per round, IID / Dirichlet(0.3) / 3 classes per client; FedAvg (fp32),
SignSGD, EF-SignSGD and FedBAT on the full-precision MLP (fp-mlp, 784-256-256-10),
FedBNN and FedBNN with the FedBAT codec on the BNN of the same shape (mlp), FedHyBNN
(frozen binary-latent VAE encoder + hybnn-head). Rounds and local epochs are fewer than the
papers' (100 rounds, 10 local epochs) to fit a 2-core machine: they are recorded in the results.
FedBNN's checkpoints are exported, which proves the integer network equals torch eval on all
10,000 test images. Writes bench/results/federated.json after every run.

    nice python bench/bench_federated.py [--rounds 20] [--local-epochs 2] [--partitions iid dir0.3 cls3] [--name federated]
        [--lr-schedule cosine] [--bnn-lr LR] [--bnn-local-epochs E] [--jobs 2] [--runs LABEL ...] [--merge]

--merge reruns only the given --runs x --partitions and replaces those rows of the existing
results file, keeping the others; it refuses when the file's shared settings (data, clients,
rounds, local epochs, batch, seed, schedule) differ from this run's, so every row keeps the same settings.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from common import write_results  # noqa: E402

from fedxnor.train.federated import FederatedConfig, train_federated  # noqa: E402
from fedxnor.train.models import MODELS  # noqa: E402

# label -> (algo, model, codec)
RUNS = {
    "FedAvg": ("fedavg", "fp-mlp", "fp32"),
    "SignSGD": ("signsgd", "fp-mlp", "sign"),
    "EF-SignSGD": ("efsign", "fp-mlp", "efsign"),
    "FedBAT": ("fedbat", "fp-mlp", "fedbat"),
    "FedBNN": ("fedbnn", "mlp", "fp32"),
    "FedBNN+FedBAT": ("fedbnn", "mlp", "fedbat"),
    "FedHyBNN": ("fedhybnn", "hybnn-head", "fp32"),
}


def goals(rows: list[dict]) -> dict:
    """Per partition: FedBAT within 1 point of FedAvg and above both sign codecs; FedBNN within 3 points of FedAvg."""
    out = {}
    for part in sorted({r["partition"] for r in rows}):
        acc = {r["label"]: r["test_accuracy"] for r in rows if r["partition"] == part}
        g = {}
        if "FedBAT" in acc and "FedAvg" in acc:
            g["fedbat_minus_fedavg"] = round(acc["FedBAT"] - acc["FedAvg"], 4)
            g["fedbat_within_1pt"] = acc["FedBAT"] >= acc["FedAvg"] - 0.01
        if "FedBAT" in acc and "SignSGD" in acc and "EF-SignSGD" in acc:
            g["fedbat_above_sign"] = acc["FedBAT"] > max(acc["SignSGD"], acc["EF-SignSGD"])
        if "FedBNN" in acc and "FedAvg" in acc:
            g["fedbnn_minus_fedavg"] = round(acc["FedBNN"] - acc["FedAvg"], 4)
            g["fedbnn_within_3pt"] = acc["FedBNN"] >= acc["FedAvg"] - 0.03
        out[part] = g
    return out


def local_update(conf: dict) -> dict:
    """The client's optimizer and drift settings as the run resolved them (recorded per row)."""
    bnn = conf["model"] in MODELS
    opt = conf.get("optimizer") or ("adam" if bnn else "sgd")
    out = {"optimizer": opt, "momentum": conf.get("momentum", 0.0)} if opt == "sgd" else {"optimizer": opt}
    for key in ("prox_mu", "logit_adjust"):
        if conf.get(key):
            out[key] = conf[key]
    return out


# settings every row of one results file shares (--merge checks them)
SHARED = ("dataset", "clients", "per_round", "rounds", "local_epochs", "bnn_local_epochs", "batch", "seed",
          "lr_schedule")


def merge_base(name: str, settings: dict, rerun: set[tuple[str, str]]) -> tuple[list[dict], list[str]]:
    """The existing file's rows minus those rerun, and its commands; FedxnorError-free SystemExit on a mismatch."""
    from common import RESULTS

    path = RESULTS / f"{name}.json"
    if not path.is_file():
        raise SystemExit(f"--merge: {path} does not exist; run without --merge first")
    old = json.loads(path.read_text())
    diff = [k for k in SHARED if old["settings"].get(k) != settings.get(k)]
    if diff:
        raise SystemExit(f"--merge: {path} was run with other {', '.join(diff)}; rerun every row instead")
    cmds = old["settings"].get("commands") or [old["settings"]["command"]]
    return [r for r in old["rows"] if (r["partition"], r["label"]) not in rerun], cmds


def run_row(part: str, label: str, args: argparse.Namespace, tmp: str) -> dict:
    """One (partition, algorithm) run in its own directory; returns its results row."""
    torch.set_num_threads(1)
    algo, model, codec = RUNS[label]
    bnn = model in MODELS
    run = Path(tmp) / f"{part}-{label}"
    run.mkdir()
    vae_cache = Path(tmp) / "vae.pt"
    if algo == "fedhybnn" and vae_cache.is_file():
        shutil.copy(vae_cache, run / "vae.pt")  # the same frozen encoder for every partition
    cfg = FederatedConfig(algo=algo, model=model, codec=codec, partition=part, clients=args.clients,
                          per_round=args.per_round, rounds=args.rounds,
                          local_epochs=(args.bnn_local_epochs or args.local_epochs) if bnn else args.local_epochs,
                          seed=args.seed, lr=args.bnn_lr if bnn else 0.0, lr_schedule=args.lr_schedule)
    t0 = time.monotonic()
    ckpt = train_federated(cfg, run, progress=False)
    metrics = json.loads((run / "metrics.json").read_text())
    meta, hist = metrics["meta"], metrics["history"]
    if algo == "fedhybnn" and not vae_cache.is_file():
        shutil.copy(run / "vae.pt", vae_cache)
    conf = meta["config"]
    row = {"label": label, "partition": part, "algo": algo, "model": model, "codec": codec,
           "rounds": args.rounds, "local_epochs": cfg.local_epochs, "lr": meta["lr"], "lr_schedule": cfg.lr_schedule,
           "local_update": local_update(conf),
           "test_accuracy": meta["test_accuracy"], "best_accuracy": max(h["test_accuracy"] for h in hist),
           "uplink_mb": round(meta["uplink_bytes_total"] / 1e6, 3),
           "downlink_mb": round(meta["downlink_bytes_total"] / 1e6, 3),
           "uplink_bits_per_param": round(meta["uplink_bits_per_param"], 4),
           "params_on_wire": meta["params_on_wire"], "seconds": round(time.monotonic() - t0, 1),
           "accuracy_by_round": [round(h["test_accuracy"], 4) for h in hist]}
    if algo == "fedbnn" and not args.no_export:
        from fedxnor.export.from_checkpoint import export_checkpoint

        summary = export_checkpoint(ckpt, run / "export")  # raises unless torch == integer network
        row["export"] = {"checked_images": summary["checked_images"], "agreement": summary["agreement"],
                         "reference_accuracy": summary["torch_accuracy"]}
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--local-epochs", type=int, default=2)
    ap.add_argument("--bnn-local-epochs", type=int, default=0, help="local epochs of the BNN runs (0 = --local-epochs)")
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--per-round", type=int, default=10)
    ap.add_argument("--partitions", nargs="+", default=["iid", "dir0.3", "cls3"])
    ap.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-export", action="store_true", help="skip the export check of FedBNN checkpoints")
    ap.add_argument("--name", default="federated", help="results file bench/results/NAME.json")
    ap.add_argument("--bnn-lr", type=float, default=0.0, help="learning rate of the BNN runs (0 = the default of FederatedConfig)")
    ap.add_argument("--lr-schedule", default="cosine", choices=["constant", "cosine"],
                    help="the clients' lr over the rounds, for every run")
    ap.add_argument("--jobs", type=int, default=1, help="runs in parallel (one torch thread each)")
    ap.add_argument("--merge", action="store_true",
                    help="replace only the rows of these --runs x --partitions in the existing results file")
    args = ap.parse_args()
    bnn = FederatedConfig(algo="fedbnn", model="mlp").resolved()  # the BNN runs' local update (defaults)
    settings = {"dataset": "Fashion-MNIST", "clients": args.clients, "per_round": args.per_round, "rounds": args.rounds,
                "local_epochs": args.local_epochs, "bnn_local_epochs": args.bnn_local_epochs or args.local_epochs,
                "batch": 64, "seed": args.seed,
                "client_data": "training set minus the last 1/6 (10,000 images, the HyBNN VAE's data)",
                "lr": f"SGD 0.1 for fp-mlp (FedBAT's setting), Adam {args.bnn_lr or bnn.learning_rate} for BNNs",
                "bnn_local_update": f"Adam, fresh state every round; cross-entropy on logits + {bnn.logit_adjust:g}"
                                    " * log(client's label prior) (logit adjustment; fp-mlp: plain cross-entropy)",
                "lr_schedule": args.lr_schedule + (" (round r of R: lr * (1 + cos(pi r / R)) / 2)"
                                                   if args.lr_schedule == "cosine" else ""),
                "fedbat": {"rho": 6, "phi": 0.5}, "seconds_are": f"wall time with {args.jobs} run(s) in parallel",
                "command": "python bench/bench_federated.py " + " ".join(sys.argv[1:])}
    order = {(p, lab): i for i, (p, lab) in enumerate((p, lab) for p in args.partitions for lab in args.runs)}
    rows: list[dict] = []
    if args.merge:
        rows, cmds = merge_base(args.name, settings, set(order))
        settings["commands"] = [*cmds, settings.pop("command")]  # every command that made a row, in order
        settings["seconds_are"] = "wall time of each run (see each command's --jobs)"
        every = ["iid", "dir0.3", "cls3", *args.partitions]
        labels = [*RUNS]
        order = {k: (every.index(k[0]), labels.index(k[1])) for k in {*order, *((r["partition"], r["label"])
                                                                               for r in rows)}}
        todo = [(p, lab) for p in args.partitions for lab in args.runs]
    else:
        todo = list(order)
    t_all = time.monotonic()

    def done(row: dict) -> None:
        rows.append(row)
        rows.sort(key=lambda r: order[(r["partition"], r["label"])])
        print(json.dumps({k: v for k, v in row.items() if k != "accuracy_by_round"}), flush=True)
        write_results(args.name, {"settings": settings, "rows": rows, "goals": goals(rows),
                                  "seconds_total": round(time.monotonic() - t_all, 1)})

    with tempfile.TemporaryDirectory(prefix="fedxnor-bench-") as tmp:
        if args.jobs <= 1:
            for part, label in todo:
                done(run_row(part, label, args, tmp))
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor, as_completed

            # slowest first (BNN with FedBAT's codec, then BNN), so the two workers end together
            cost = {"FedBNN+FedBAT": 0, "FedBNN": 1}
            todo = sorted(todo, key=lambda k: (cost.get(k[1], 2), order[k]))
            with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
                for fut in as_completed([pool.submit(run_row, part, label, args, tmp) for part, label in todo]):
                    done(fut.result())
    print(json.dumps(goals(rows), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
