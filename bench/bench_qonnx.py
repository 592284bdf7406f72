"""Benchmark: a Brevitas-trained SFC-shaped (784-256-256-256-10) 1W1A net on Fashion-MNIST, brought in through QONNX.

    python bench/bench_qonnx.py [--epochs 3] [--train-images N]

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
from fedxnor.export.qonnx_import import import_qonnx  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def tutorial():
    spec = importlib.util.spec_from_file_location("brevitas_mlp", ROOT / "docs" / "tutorial" / "brevitas_mlp.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sha256_of(out: Path) -> str:
    from fedxnor.export.manifest import load_export

    return load_export(out / "export").sha256


def main() -> None:
    ap = argparse.ArgumentParser(description="Brevitas SFC 1W1A -> QONNX -> fedxnor import, on Fashion-MNIST")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--train-images", type=int, default=None, help="first N training images (default all 60,000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared: 1)")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_qonnx")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tut = tutorial()
    hidden = (256, 256, 256)
    t0 = time.time()
    model = tut.train(hidden, args.epochs, args.train_images, seed=args.seed)
    t_train = time.time() - t0
    test = load_split("test")
    torch_pred = tut.predict(model, test.images)
    onnx_file = tut.export(model, args.out / "sfc_w1a1.onnx")
    t1 = time.time()
    summary = import_qonnx(onnx_file, args.out / "export")
    t_import = time.time() - t1
    qonnx_pred = np.fromfile(args.out / "export" / "torch_predictions.u8", np.uint8).astype(np.int64)
    row = {"model": "sfc-brevitas-w1a1", "shape": "784-256-256-256-10", "epochs": args.epochs, "seed": args.seed,
           "train_images": int(args.train_images or 60000), "train_seconds": round(t_train, 1),
           "import_seconds": round(t_import, 1), "test_images": summary["checked_images"],
           "torch_accuracy": float((torch_pred == test.labels).mean()),
           "qonnx_accuracy": float((qonnx_pred == test.labels).mean()), "reference_accuracy": summary["accuracy"],
           "agreement_with_qonnx": summary["agreement"], "agreement_with_torch": float((torch_pred == qonnx_pred).mean()),
           "input": summary["input"], "exact_accumulators": summary["exact_accumulators"],
           "thresholds_differing_from_float32_fold": summary["thresholds_differing_from_float32_fold"],
           "export_dir": str(args.out / "export"), "manifest_sha256": sha256_of(args.out),
           "recipe": "Adam lr 0.01, batch 100, cosine decay to 0, latent weights clipped to [-1, 1]", "threads": args.threads,
           "measured": provenance()}
    old = RESULTS / "qonnx.json"
    kept = {k: v for k, v in json.loads(old.read_text()).items() if k == "tutorial"} if old.is_file() else {}
    path = write_results("qonnx", {"rows": [row], **kept})  # a new export: board figures of the old one no longer apply
    print(f"{row['shape']}: trained {row['train_seconds']} s, imported {row['import_seconds']} s; accuracy torch "
          f"{row['torch_accuracy']:.4f} / qonnx {row['qonnx_accuracy']:.4f} / reference {row['reference_accuracy']:.4f}; "
          f"agreement with qonnx {row['agreement_with_qonnx']} on {row['test_images']} images -> {path}")


if __name__ == "__main__":
    main()
