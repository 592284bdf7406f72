"""FedBNN's local update under label skew: an ablation of the clients' optimizer and drift corrections.

Same federation as bench/bench_federated.py (Fashion-MNIST, 100 clients, 10 per round, batch 64,
seed 0, cosine lr decay, rotated BNN `mlp` 784-256-256-10 on 8-bit pixels, fp32 updates); only the
client's local update (and, in the -pooled variants, the server's BatchNorm variance; in -norot, no
rotation: plain FedAvg of the BNN's latent weights) differs between variants. Every variant sets all of the
local-update fields (optimizer, lr, momentum, prox_mu, logit_adjust, bn_stats) explicitly, so a row does not
depend on the defaults of the day. Each row also records the full-precision FedAvg accuracy of the same partition
(bench/results/federated.json; with --model cnv-small, FedAvg-conv of federated_conv_le10.json, which needs the
same rounds and local epochs) and the gap to it. Writes bench/results/federated_fedbnn_ablation.json (cnv-small:
federated_fedbnn_conv_ablation.json) after every run; --merge keeps the rows of variants not rerun (a file lock
guards the file, so two invocations may run side by side); --docs rewrites the table in docs/federated.md from the
MLP file.

    nice python bench/bench_fedbnn_ablation.py --partitions dir0.3 [--variants NAME ...] [--merge] [--docs]
    nice python bench/bench_fedbnn_ablation.py --model cnv-small --local-epochs 10 --rounds 20 --variants ... --merge
"""

from __future__ import annotations

import argparse
import fcntl
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from common import RESULTS, write_results  # noqa: E402

from fedxnor.atomic import write_text_atomic  # noqa: E402
from fedxnor.train.federated import FederatedConfig, train_federated  # noqa: E402

NAME = "federated_fedbnn_ablation"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "federated.md"
BEGIN, END = "<!-- fedbnn-ablation:begin (bench/bench_fedbnn_ablation.py --docs) -->", "<!-- fedbnn-ablation:end -->"

# the local update before this ablation: Adam 0.001, fresh state every round, no drift correction
BASE = {"optimizer": "adam", "lr": 0.001, "momentum": 0.0, "prox_mu": 0.0, "logit_adjust": 0.0, "bn_stats": "mean"}
NO_ROTATION = "norot"  # a variant whose name ends so runs algo fedavg on the BNN (no rotation)

# name -> (what it tests, overrides of BASE); "la" = logit adjustment with the client's label distribution
VARIANTS: dict[str, tuple[str, dict]] = {
    "adam-1e-3": ("Adam 0.001 (the previous default)", {}),
    "adam-3e-3": ("Adam 0.003", {"lr": 0.003}),
    "sgdm-0.1": ("SGD 0.1, momentum 0.9", {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9}),
    "prox-0.01": ("Adam 0.001 + FedProx mu 0.01", {"prox_mu": 0.01}),
    "la": ("Adam 0.001 + logit adjustment", {"logit_adjust": 1.0}),
    "la-adam-2e-3": ("Adam 0.002 + logit adjustment", {"lr": 0.002, "logit_adjust": 1.0}),
    "la-adam-3e-3": ("Adam 0.003 + logit adjustment", {"lr": 0.003, "logit_adjust": 1.0}),
    "la-adam-2e-3-prox-0.01": ("Adam 0.002 + logit adjustment + FedProx mu 0.01",
                               {"lr": 0.002, "logit_adjust": 1.0, "prox_mu": 0.01}),
    "la-adam-5e-4": ("Adam 0.0005 + logit adjustment", {"lr": 0.0005, "logit_adjust": 1.0}),
    "la-adam-1e-3-pooled": ("Adam 0.001 + logit adjustment + pooled BatchNorm variance",
                            {"logit_adjust": 1.0, "bn_stats": "pooled"}),
    "la-adam-2e-3-pooled": ("Adam 0.002 + logit adjustment + pooled BatchNorm variance",
                            {"lr": 0.002, "logit_adjust": 1.0, "bn_stats": "pooled"}),
    "la-adam-5e-3": ("Adam 0.005 + logit adjustment (the conv BNNs' central lr)", {"lr": 0.005, "logit_adjust": 1.0}),
    "la-adam-2e-3-norot": ("Adam 0.002 + logit adjustment, no rotation (FedAvg of the BNN's latent weights)",
                           {"lr": 0.002, "logit_adjust": 1.0}),
}
REFERENCE = {"mlp": ("federated.json", "FedAvg"), "cnv-small": ("federated_conv_le10.json", "FedAvg-conv")}


def is_default(name: str, update: dict) -> bool:
    """Whether a variant's local update is what FederatedConfig gives FedBNN by default."""
    d = FederatedConfig(algo="fedbnn", model="mlp").resolved()
    return not name.endswith(NO_ROTATION) and update == {
        "optimizer": d.optimizer or "adam", "lr": d.learning_rate, "momentum": d.momentum, "prox_mu": d.prox_mu,
        "logit_adjust": d.logit_adjust, "bn_stats": d.bn_stats}


def results_name(model: str) -> str:
    return NAME if model == "mlp" else f"{NAME.replace('fedbnn', 'fedbnn_conv')}"


def fedavg_reference(model: str, args: argparse.Namespace) -> dict[str, float]:
    """Full-precision FedAvg's final accuracy per partition (seed 0) from the main benchmark, when it ran with
    these rounds and local epochs."""
    file, label = REFERENCE[model]
    path = RESULTS / file
    if not path.is_file():
        return {}
    res = json.loads(path.read_text())
    if (res["settings"].get("rounds"), res["settings"].get("local_epochs")) != (args.rounds, args.local_epochs):
        return {}
    return {r["partition"]: r["test_accuracy"] for r in res["rows"]
            if r["label"] == label and r.get("seed", args.seed) == args.seed}


def run_variant(name: str, part: str, args: argparse.Namespace) -> dict:
    torch.set_num_threads(1)
    what, over = VARIANTS[name]
    update = {**BASE, **over}
    algo = "fedavg" if name.endswith(NO_ROTATION) else "fedbnn"
    cfg = FederatedConfig(algo=algo, model=args.model, codec="fp32", partition=part, clients=args.clients,
                          per_round=args.per_round, rounds=args.rounds, local_epochs=args.local_epochs, seed=args.seed,
                          lr_schedule="cosine", **update)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fedxnor-ablation-") as tmp:
        train_federated(cfg, Path(tmp), progress=False)
        hist = json.loads((Path(tmp) / "metrics.json").read_text())["history"]
    acc = [h["test_accuracy"] for h in hist]
    row = {"variant": name, "what": what, "default": is_default(name, update), "partition": part, "local_update": update,
           "test_accuracy": acc[-1],
           "best_accuracy": max(acc), "accuracy_by_round": [round(a, 4) for a in acc],
           "seconds": round(time.monotonic() - t0, 1)}
    ref = fedavg_reference(args.model, args).get(part)
    if ref is not None:
        row["fedavg_accuracy"] = ref
        row["minus_fedavg"] = round(acc[-1] - ref, 4)
    return row


def save_row(row: dict, settings: dict, merge: bool, fresh: list[dict], name: str = NAME) -> None:
    """Write the results file with this row (under a lock: invocations may run side by side)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(Path(tempfile.gettempdir()) / f"fedxnor-{name}.lock", "w") as lock:  # not in the repository
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = RESULTS / f"{name}.json"
        rows = json.loads(path.read_text())["rows"] if merge and path.is_file() else list(fresh)
        rows = [r for r in rows if (r["variant"], r["partition"]) != (row["variant"], row["partition"])] + [row]
        fresh[:] = rows
        names, parts = list(VARIANTS), ["iid", "dir0.3", "cls3"]
        rows.sort(key=lambda r: (parts.index(r["partition"]) if r["partition"] in parts else 9,
                                 names.index(r["variant"]) if r["variant"] in names else 99))
        write_results(name, {"settings": settings, "rows": rows})


def docs_table(results: dict) -> str:
    """Markdown table of the ablation (final accuracy, gap to FedAvg, best round) from the results file."""
    lines = ["| client's local update | partition | final accuracy | FedAvg (fp), final | gap | best round's accuracy |",
             "|---|---|---|---|---|---|"]
    for r in results["rows"]:
        gap = f"{100 * r['minus_fedavg']:+.2f} pt" if "minus_fedavg" in r else "—"
        ref = f"{r['fedavg_accuracy']:.4f}" if "fedavg_accuracy" in r else "—"
        what = f"**{r['what']}** (default)" if r.get("default") else r["what"]
        lines.append(f"| {what} | {r['partition']} | {r['test_accuracy']:.4f} | {ref} | {gap} | "
                     f"{r['best_accuracy']:.4f} |")
    s = results["settings"]
    lines.append(f"\n({s['rounds']} rounds x {s['local_epochs']} local epochs, {s['clients']} clients, "
                 f"{s['per_round']} per round, seed {s['seed']}; bench/results/{results_name(s.get('model', 'mlp'))}.json, "
                 f"{results['provenance']['date']}.)")
    return "\n".join(lines)


def write_docs() -> None:
    results = json.loads((RESULTS / f"{NAME}.json").read_text())
    text = DOCS.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{DOCS} has no {BEGIN} ... {END} block")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    write_text_atomic(DOCS, f"{head}{BEGIN}\n{docs_table(results)}\n{END}{tail}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--partitions", nargs="+", default=["dir0.3"])
    ap.add_argument("--model", default="mlp", choices=list(REFERENCE), help="the BNN (cnv-small: the conv table's)")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--local-epochs", type=int, default=2)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--per-round", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--merge", action="store_true", help="keep the file's rows of other variants/partitions")
    ap.add_argument("--docs", action="store_true", help="only rewrite docs/federated.md's table from the file")
    args = ap.parse_args()
    if args.docs:
        write_docs()
        return 0
    name = results_name(args.model)
    file, label = REFERENCE[args.model]
    settings = {"dataset": "Fashion-MNIST", "algo": "fedbnn", "model": args.model, "codec": "fp32",
                "clients": args.clients, "per_round": args.per_round, "rounds": args.rounds,
                "local_epochs": args.local_epochs, "batch": 64, "seed": args.seed,
                "lr_schedule": "cosine (round r of R: lr * (1 + cos(pi r / R)) / 2)",
                "fedavg_reference": f"{label} rows of bench/results/{file} (SGD 0.1, same federation)"}
    if args.merge and (RESULTS / f"{name}.json").is_file():
        old = json.loads((RESULTS / f"{name}.json").read_text())["settings"]
        diff = [k for k in settings if old.get(k) != settings[k]]
        if diff:
            raise SystemExit(f"--merge: the results file was run with other {', '.join(diff)}")
    rows: list[dict] = []
    for part in args.partitions:
        for variant in args.variants:
            row = run_variant(variant, part, args)
            print(json.dumps({k: v for k, v in row.items() if k != "accuracy_by_round"}), flush=True)
            save_row(row, settings, args.merge, rows, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
