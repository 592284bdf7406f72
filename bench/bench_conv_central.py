"""Central training of the conv BNNs on Fashion-MNIST: per-epoch test accuracy and time, the accuracy after
the recipe's last step (BatchNorm re-estimation, train/central.py), and agreement of the integer network with
torch eval on all 10,000 test images (through the export directory and its reference when the manifest takes
conv layers, else the bridge's integer network). Also the weight bits and binary MACs per image of the net.

The curve is written after every epoch (bench/results/conv_central_<model>_<epochs>ep.json), so a run stopped by
--deadline (UTC HH:MM; no epoch starts that would end after it, by the last epoch's time) keeps what it
measured. With --state DIR the training state is saved after every epoch too, and running the command again
with the same --state continues the run (a long run in pieces). Same recipe as `fedxnor train`: Adam, cosine
over --epochs, batch 100, BatchNorm statistics re-estimated at the end. --convs/--hidden probe other shapes
under the model's name. --teacher-epochs N distills from the net's full-precision twin trained N epochs first
(train/distill.py).

    python bench/bench_conv_central.py --model cnv-fmnist --epochs 10 --threads 1 [--deadline 22:44] [--state DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results  # noqa: E402

from fedxnor.atomic import write_bytes_atomic  # noqa: E402
from fedxnor.datasets import load_pair  # noqa: E402
from fedxnor.train.central import (  # noqa: E402
    CentralConfig,
    central_model_config,
    evaluate,
    reestimate_batchnorm,
    seed_everything,
    train_epoch,
)
from fedxnor.train.checkpoint import save_checkpoint  # noqa: E402
from fedxnor.train.conv_shapes import conv_sizes  # noqa: E402
from fedxnor.train.distill import Distillation, build_teacher, frozen, twin_config  # noqa: E402
from fedxnor.train.models import build_model  # noqa: E402

STATE = "bench_state.pt"
TEACHER = "teacher.pt"
GOALS = {"cnv-fmnist": 0.92, "cnv-small": 0.89}


def seconds_left(deadline: str | None) -> float:
    if not deadline:
        return float("inf")
    h, m = (int(v) for v in deadline.split(":"))
    now = time.gmtime()
    left = (h * 60 + m) * 60 - (now.tm_hour * 3600 + now.tm_min * 60 + now.tm_sec)
    return left + 86400 if left < -12 * 3600 else left  # 01:40 given at 23:10 is tomorrow's


def parse_convs(text: str) -> tuple:
    """'32:3:1:1:0,64:3:1:1:2' -> conv blocks (out_c, k, stride, pad, pool)."""
    return tuple(tuple(int(v) for v in block.split(":")) for block in text.split(","))


def bit_ops(specs) -> int:
    """Binary multiply-accumulates per image: out_h·out_w·M·K over conv layers plus M·K over dense ones."""
    total = 0
    for s in specs:
        if type(s).__name__ == "Conv":
            total += s.out_h * s.out_w * s.fan_out * s.fan_in
        elif getattr(s, "has_weights", True):
            total += s.fan_out * s.fan_in
    return total


def load_state(directory: Path | None) -> dict | None:
    path = directory / STATE if directory else None
    return torch.load(path, weights_only=False) if path and path.exists() else None


def save_state(directory: Path, state: dict, name: str = STATE) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    directory.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(directory / name, buf.getvalue())


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


def teacher_for(args, model_cfg, images, labels, test, result: dict) -> Distillation:
    """The distillation teacher: the net's full-precision twin, trained --teacher-epochs with the same recipe
    (Adam, cosine, batch 100, --augment) on its own generator, kept in --state so a continued run reuses it."""
    teacher = build_teacher(model_cfg)
    path = args.state / TEACHER if args.state else None
    if path and path.exists():
        saved = torch.load(path, weights_only=False)
        teacher.load_state_dict(saved["model"])
        result["teacher"] = saved["result"]
    else:
        gen = torch.Generator().manual_seed(args.seed + 10_000)
        opt = torch.optim.Adam(teacher.parameters(), lr=args.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.teacher_epochs)
        t0, curve = time.monotonic(), []
        for epoch in range(args.teacher_epochs):
            train_epoch(teacher, opt, images, labels, 100, gen, progress=False, augment=args.augment)
            sched.step()
            curve.append(evaluate(teacher, test))
            print(f"teacher epoch {epoch + 1}: test accuracy {curve[-1]:.4f}", flush=True)
        result["teacher"] = {"model": twin_config(model_cfg).name, "epochs": args.teacher_epochs, "curve": curve,
                             "test_accuracy": curve[-1], "seconds": round(time.monotonic() - t0, 1)}
        if path:
            save_state(args.state, {"model": teacher.state_dict(), "result": result["teacher"]}, TEACHER)
    return Distillation(frozen(teacher), args.distill_weight, args.temperature)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="cnv-fmnist")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--augment", type=int, default=0, help="random shifts of up to N pixels and mirroring (0 = none)")
    ap.add_argument("--convs", default="", help="other conv blocks, out_c:k:stride:pad:pool,... (a probe of a shape)")
    ap.add_argument("--hidden", default="", help="other hidden fc widths, comma-separated")
    ap.add_argument("--label-smoothing", type=float, default=0.0)
    ap.add_argument("--teacher-epochs", type=int, default=0,
                    help="train the net's full-precision twin this many epochs first and distill from it (0 = no teacher)")
    ap.add_argument("--distill-weight", type=float, default=0.9, help="share of the distillation term in the loss")
    ap.add_argument("--temperature", type=float, default=4.0, help="softening of both nets' scores in the distillation term")
    ap.add_argument("--no-bn-reestimate", action="store_true", help="keep the running BatchNorm statistics of training")
    ap.add_argument("--deadline", default=None, help="UTC HH:MM: start no epoch that would end after it")
    ap.add_argument("--train-limit", type=int, default=None, help="first N training images (a smoke test)")
    ap.add_argument("--test-limit", type=int, default=None)
    ap.add_argument("--results-name", default="", help="results file name (default: conv_central_<model>_<epochs>ep)")
    ap.add_argument("--out", type=Path, default=None, help="keep the checkpoint here (default: a temporary directory)")
    ap.add_argument("--state", type=Path, default=None,
                    help="directory of the training state, saved after every epoch; if it holds one, the run continues it "
                         "(its settings win over the command line's): a long run in pieces across --deadline stops")
    args = ap.parse_args()
    saved = load_state(args.state)
    if saved:  # continue with the saved run's settings, on this run's threads, deadline, names
        keep = {k: getattr(args, k) for k in ("threads", "deadline", "state", "out")}
        args = argparse.Namespace(**{**vars(ap.parse_args([])), **saved["args"], **keep})  # options added since: defaults
        print(f"continuing {args.state} after epoch {len(saved['result']['curve'])}", flush=True)
    torch.set_num_threads(args.threads)
    train, test = load_pair(None)
    train, test = train.take(args.train_limit), test.take(args.test_limit)
    cfg = CentralConfig(model=args.model, epochs=args.epochs, seed=args.seed, lr=args.lr, augment=args.augment,
                        label_smoothing=args.label_smoothing)
    model_cfg = central_model_config(cfg.model, train.image_shape)
    if args.convs or args.hidden:
        convs = parse_convs(args.convs) if args.convs else model_cfg.convs
        hidden = tuple(int(v) for v in args.hidden.split(",")) if args.hidden else model_cfg.sizes[1:-1]
        model_cfg = dataclasses.replace(model_cfg, convs=convs, sizes=conv_sizes(model_cfg.input_shape, convs, hidden),
                                        description=f"probe: convs {args.convs or 'as named'}, hidden {hidden}")
    gen = seed_everything(cfg.seed)
    model = build_model(model_cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    images, labels = torch.from_numpy(train.images), torch.from_numpy(train.labels)
    specs = model_cfg.layer_specs()
    result = {"model": args.model, "teacher_epochs": args.teacher_epochs,
              "distill_weight": args.distill_weight if args.teacher_epochs else None,
              "temperature": args.temperature if args.teacher_epochs else None,
              "config": model_cfg.to_dict(), "epochs_planned": args.epochs, "lr": args.lr,
              "augment_shift_pixels": args.augment,
              "batch": cfg.batch, "seed": args.seed, "threads": args.threads, "train_images": len(train),
              "label_smoothing": args.label_smoothing, "bn_reestimate": not args.no_bn_reestimate,
              "weight_bits": int(sum(s.fan_in * s.fan_out for s in specs if getattr(s, "has_weights", True))),
              "bit_ops_per_image": bit_ops(specs),
              "goal_accuracy": GOALS.get(args.model), "curve": [], "stopped_by_deadline": False}
    distill = teacher_for(args, model_cfg, images, labels, test, result) if args.teacher_epochs else None
    start = 0
    if saved:
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
        gen.set_state(saved["generator"])
        result, start = saved["result"], len(saved["result"]["curve"])
        result["stopped_by_deadline"] = False
    name = args.results_name or f"conv_central_{args.model}_{args.epochs}ep" + (f"_aug{args.augment}" if args.augment else "")
    last = 0.0
    for epoch in range(start, cfg.epochs):
        if seconds_left(args.deadline) < 1.1 * last:
            result["stopped_by_deadline"] = True
            break
        t0 = time.monotonic()
        loss = train_epoch(model, opt, images, labels, cfg.batch, gen, f"epoch {epoch + 1}", progress=False, augment=cfg.augment,
                           label_smoothing=cfg.label_smoothing, distill=distill)
        sched.step()
        train_s = time.monotonic() - t0
        acc = evaluate(model, test)
        last = time.monotonic() - t0
        result["curve"].append({"epoch": epoch + 1, "loss": round(loss, 5), "test_accuracy": acc,
                                "train_seconds": round(train_s, 1), "epoch_seconds": round(last, 1)})
        print(result["curve"][-1], flush=True)
        write_results(name, result)
        if args.state:
            save_state(args.state, {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                                    "model": model.state_dict(), "optimizer": opt.state_dict(),
                                    "scheduler": sched.state_dict(), "generator": gen.get_state(), "result": result})
    if result["stopped_by_deadline"] and args.state:
        print(f"stopped by the deadline after epoch {len(result['curve'])}; continue with --state {args.state}", flush=True)
        return 0
    accs = [r["test_accuracy"] for r in result["curve"]]
    goal = GOALS.get(args.model)
    if accs and not args.no_bn_reestimate:  # the recipe's last step (train/central.py): population BN statistics
        t0 = time.monotonic()
        reestimate_batchnorm(model, images)
        result["bn_reestimate_seconds"] = round(time.monotonic() - t0, 1)
        result["accuracy_before_bn_reestimate"] = accs[-1]
        accs.append(evaluate(model, test))  # the final network's: the curve keeps the running statistics' accuracies
    result["final_accuracy"] = accs[-1] if accs else None
    result["best_accuracy"] = max(accs) if accs else None
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
