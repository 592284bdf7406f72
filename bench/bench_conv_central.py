"""Central training of the conv BNNs on Fashion-MNIST: per-epoch test accuracy and time on 2 threads, and
agreement of the integer network with torch eval on all 10,000 test images (through the export directory
and its reference when the manifest takes conv layers, else the bridge's integer network).

The curve is written after every epoch (bench/results/conv_central_<model>_<epochs>ep.json), so a run stopped by
--deadline (UTC HH:MM; no epoch starts that would end after it, by the last epoch's time) keeps what it
measured. Same recipe as `fedxnor train` (train/central.py): Adam, cosine over --epochs, batch 100.

    python bench/bench_conv_central.py --model cnv-fmnist --epochs 10 [--deadline 22:44]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results  # noqa: E402

from fedxnor.datasets import load_pair  # noqa: E402
from fedxnor.train.central import CentralConfig, central_model_config, evaluate, seed_everything, train_epoch  # noqa: E402
from fedxnor.train.checkpoint import save_checkpoint  # noqa: E402
from fedxnor.train.models import build_model  # noqa: E402

GOALS = {"cnv-fmnist": 0.92, "cnv-small": 0.89}


def seconds_left(deadline: str | None) -> float:
    if not deadline:
        return float("inf")
    h, m = (int(v) for v in deadline.split(":"))
    now = time.gmtime()
    return (h * 60 + m) * 60 - (now.tm_hour * 3600 + now.tm_min * 60 + now.tm_sec)


def agreement(model, ckpt: Path, test) -> dict:
    """Reference vs torch eval on every test image: through the export directory if it can be written."""
    torch_pred = model.predict(torch.from_numpy(test.images))
    out = {"test_images": len(test), "torch_accuracy": float((torch_pred == test.labels).mean())}
    try:
        from fedxnor.export.reference import Reference
        from fedxnor.train.to_export import export_checkpoint

        with tempfile.TemporaryDirectory() as tmp:
            export_checkpoint(ckpt, Path(tmp) / "export")
            ref = Reference(Path(tmp) / "export").classify(test.images)
            classes, via = ref.classes, "export directory + Reference"
    except Exception as e:  # the export of conv layers may not be there yet: say so, then check the network
        out["export_error"] = f"{type(e).__name__}: {str(e)[:300]}"
        _, _, classes = model.to_int_network().run(test.images.reshape(len(test), -1).astype(np.int64))
        via = "bridge IntNetwork (train/models.py to_int_network)"
    out.update(agreement_via=via, mismatches=int((classes != torch_pred).sum()),
               reference_accuracy=float((classes == test.labels).mean()))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="cnv-fmnist")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--augment", type=int, default=0, help="random shifts of up to N pixels and mirroring (0 = none)")
    ap.add_argument("--deadline", default=None, help="UTC HH:MM: start no epoch that would end after it")
    ap.add_argument("--train-limit", type=int, default=None, help="first N training images (a smoke test)")
    ap.add_argument("--test-limit", type=int, default=None)
    ap.add_argument("--results-name", default="", help="results file name (default: conv_central_<model>_<epochs>ep)")
    ap.add_argument("--out", type=Path, default=None, help="keep the checkpoint here (default: a temporary directory)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    train, test = load_pair(None)
    train, test = train.take(args.train_limit), test.take(args.test_limit)
    cfg = CentralConfig(model=args.model, epochs=args.epochs, seed=args.seed, lr=args.lr, augment=args.augment)
    model_cfg = central_model_config(cfg.model, train.image_shape)
    gen = seed_everything(cfg.seed)
    model = build_model(model_cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    images, labels = torch.from_numpy(train.images), torch.from_numpy(train.labels)
    specs = model_cfg.layer_specs()
    result = {"model": args.model, "config": model_cfg.to_dict(), "epochs_planned": args.epochs, "lr": args.lr,
              "augment_shift_pixels": args.augment,
              "batch": cfg.batch, "seed": args.seed, "threads": args.threads, "train_images": len(train),
              "weight_bits": int(sum(s.fan_in * s.fan_out for s in specs if getattr(s, "has_weights", True))),
              "goal_accuracy": GOALS.get(args.model), "curve": [], "stopped_by_deadline": False}
    name = args.results_name or f"conv_central_{args.model}_{args.epochs}ep" + (f"_aug{args.augment}" if args.augment else "")
    last = 0.0
    for epoch in range(cfg.epochs):
        if seconds_left(args.deadline) < 1.1 * last:
            result["stopped_by_deadline"] = True
            break
        t0 = time.monotonic()
        loss = train_epoch(model, opt, images, labels, cfg.batch, gen, f"epoch {epoch + 1}", progress=False, augment=cfg.augment)
        sched.step()
        train_s = time.monotonic() - t0
        acc = evaluate(model, test)
        last = time.monotonic() - t0
        result["curve"].append({"epoch": epoch + 1, "loss": round(loss, 5), "test_accuracy": acc,
                                "train_seconds": round(train_s, 1), "epoch_seconds": round(last, 1)})
        print(result["curve"][-1], flush=True)
        write_results(name, result)
    accs = [r["test_accuracy"] for r in result["curve"]]
    goal = GOALS.get(args.model)
    result["final_accuracy"] = accs[-1] if accs else None
    result["first_epoch_at_goal"] = next((r["epoch"] for r in result["curve"] if goal and r["test_accuracy"] >= goal), None)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        ckpt = save_checkpoint(out / "checkpoint.pt", model, {"algo": "central", "model": args.model, "seed": args.seed,
                                                               "epochs": len(accs), "lr": args.lr, "batch": cfg.batch})
        result["agreement"] = agreement(model, ckpt, test)
    path = write_results(name, result)
    print(result["agreement"], f"\nwrote {path}", flush=True)
    return 0 if result["agreement"]["mismatches"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
