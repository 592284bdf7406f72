"""Benchmark: Brevitas-trained 1W1A nets on Fashion-MNIST brought in through QONNX: bnn_pynq's SFC shape
(784-256-256-256-10, binarized input) and a CNV-shaped conv net (8-bit signed input, conv + max-pool, dense).

    python bench/bench_qonnx.py [--model sfc|cnv] [--epochs 3] [--train-images N] [--deadline HH:MM] [--reuse] [--verify N]

CNV: docs/tutorial/brevitas_cnv.py (bnn_pynq's CNV layers, 16-16-pool-32-32-pool-128-10), trained until --epochs or the
UTC --deadline, whichever comes first; --reuse imports the ONNX file and torch predictions a previous run left in --out.
Each run replaces its own row of bench/results/qonnx.json and keeps the others (and their board figures).

Trains with docs/tutorial/brevitas_mlp.py (bnn_pynq's SFC layout: 2x-1 and a bipolar input quantizer, BatchNorm, TensorNorm),
exports with Brevitas' export_qonnx (dynamo), runs `fedxnor import` on all 10,000 test images (the integer network must
equal qonnx's executor on every one), and writes bench/results/qonnx.json with the timings, the accuracies and the
agreement with qonnx and with torch eval. The board build of this export is a separate step, bench/bench_qonnx_board.py,
which adds the ULX3S-85F figures to the same row.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, provenance, write_results  # noqa: E402

from fedxnor.datasets import load_split  # noqa: E402
from fedxnor.export.manifest import load_export  # noqa: E402
from fedxnor.export.qonnx_import import import_qonnx  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def tutorial(name: str = "brevitas_mlp"):
    spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / "tutorial" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def deadline_of(text: str | None) -> float | None:
    """'HH:MM' UTC today (tomorrow if already past) -> a time.time() value."""
    if not text:
        return None
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    h, m = (int(v) for v in text.split(":"))
    t = now.replace(hour=h, minute=m, second=0, microsecond=0)
    return (t if t > now else t + dt.timedelta(days=1)).timestamp()


def train_cnv(args) -> tuple[Path, np.ndarray, dict]:
    """Train (or, with --reuse, reload) the CNV-shaped net: its ONNX file, torch's test predictions and the recipe."""
    onnx_file, pred_file, info_file = args.out / "cnv_w1a1.onnx", args.out / "cnv_torch_pred.npy", args.out / "cnv_train.json"
    if args.reuse and onnx_file.is_file() and pred_file.is_file() and info_file.is_file():
        return onnx_file, np.load(pred_file), json.loads(info_file.read_text())
    tut = tutorial("brevitas_cnv")
    model = tut.SmallCNV()
    done = []
    t0 = time.time()
    model = tut.train(model, args.epochs, args.train_images, seed=args.seed, deadline=deadline_of(args.deadline),
                      log=lambda msg: (done.append(msg), print(msg, flush=True)))
    info = {"train_seconds": round(time.time() - t0, 1), "epochs_done": sum(m.startswith("epoch") for m in done),
            "stopped_by_deadline": any(m.startswith("deadline") for m in done)}
    pred = tut.predict(model, load_split("test").images)
    tut.export(model, onnx_file)
    np.save(pred_file, pred)
    info_file.write_text(json.dumps(info))
    return onnx_file, pred, info


def main() -> None:
    ap = argparse.ArgumentParser(description="Brevitas 1W1A (SFC or CNV-shaped) -> QONNX -> fedxnor import, on Fashion-MNIST")
    ap.add_argument("--model", choices=("sfc", "cnv"), default="sfc")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--train-images", type=int, default=None, help="first N training images (default all 60,000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared: 1)")
    ap.add_argument("--deadline", default=None, help="cnv: stop training at this UTC time, HH:MM")
    ap.add_argument("--reuse", action="store_true", help="cnv: import the model a previous run trained and exported")
    ap.add_argument("--train-only", action="store_true", help="cnv: train and export, do not import")
    ap.add_argument("--verify", type=int, default=0, help="also simulate the RTL (Verilator) on the first N test images")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_qonnx")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    test = load_split("test")
    if args.model == "cnv":
        onnx_file, torch_pred, info = train_cnv(args)
        if args.train_only:
            return
        t_train, epochs = info["train_seconds"], info["epochs_done"]
        export_dir = args.out / "cnv_export"
        row = {"model": "cnv-brevitas-w1a1", "shape": "28x28x1 c16 c16 p2 c32 c32 p2 fc128 fc10 (3x3 valid convs)",
               "stopped_by_deadline": info["stopped_by_deadline"]}
    else:
        tut = tutorial()
        t0 = time.time()
        model = tut.train((256, 256, 256), args.epochs, args.train_images, seed=args.seed)
        t_train, epochs = time.time() - t0, args.epochs
        torch_pred = tut.predict(model, test.images)
        onnx_file = tut.export(model, args.out / "sfc_w1a1.onnx")
        export_dir = args.out / "export"
        row = {"model": "sfc-brevitas-w1a1", "shape": "784-256-256-256-10"}
    t1 = time.time()
    summary = import_qonnx(onnx_file, export_dir)
    t_import = time.time() - t1
    qonnx_pred = np.fromfile(export_dir / "torch_predictions.u8", np.uint8).astype(np.int64)
    row.update({"epochs": epochs, "seed": args.seed,
                "train_images": int(args.train_images or 60000), "train_seconds": round(t_train, 1),
                "import_seconds": round(t_import, 1), "test_images": summary["checked_images"],
                "torch_accuracy": float((torch_pred == test.labels).mean()),
                "qonnx_accuracy": float((qonnx_pred == test.labels).mean()), "reference_accuracy": summary["accuracy"],
                "agreement_with_qonnx": summary["agreement"], "agreement_with_torch": float((torch_pred == qonnx_pred).mean()),
                "input": summary["input"], "exact_accumulators": summary["exact_accumulators"],
                "thresholds_differing_from_float32_fold": summary["thresholds_differing_from_float32_fold"],
                "export_dir": str(export_dir), "manifest_sha256": load_export(export_dir).sha256,
                "recipe": "Adam lr 0.01, batch 100, cosine decay to 0, latent weights clipped to [-1, 1]", "threads": args.threads,
                "measured": provenance()})
    if args.verify:  # the imported network's RTL against the reference, every class and every hidden bit
        from fedxnor.sim.verify import verify_export

        v = verify_export(export_dir, "verilator", images=args.verify, progress=False)
        row["rtl_verify"] = {"simulator": "verilator", "images": v["images"], "mismatches": v["mismatches"],
                             "cycles": v["cycles"], "folding": "the import's default (one PE, up to 32 lanes per layer)"}
    if args.model == "cnv":  # the 256-entry map is in the manifest; the row names it
        row["input"] = {k: v for k, v in row["input"].items() if k != "map"} | {"map": "Brevitas' 8-bit signed Q1.7 of 2p/255 - 1"}
    old = RESULTS / "qonnx.json"
    kept = json.loads(old.read_text()) if old.is_file() else {}
    kept.pop("provenance", None)
    rows = [r for r in kept.pop("rows", []) if r.get("model") != row["model"]] + [row]  # the other rows keep their figures
    path = write_results("qonnx", {**kept, "rows": rows})
    print(f"{row['shape']}: trained {row['train_seconds']} s, imported {row['import_seconds']} s; accuracy torch "
          f"{row['torch_accuracy']:.4f} / qonnx {row['qonnx_accuracy']:.4f} / reference {row['reference_accuracy']:.4f}; "
          f"agreement with qonnx {row['agreement_with_qonnx']} on {row['test_images']} images -> {path}")


if __name__ == "__main__":
    main()
