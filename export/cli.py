"""`fedxnor export` and `fedxnor reference`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from fedxnor.errors import FedxnorError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="fold a checkpoint into integer thresholds, ROM images and a manifest")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--out", type=Path, required=True, help="export directory (replaced atomically)")
    p.add_argument("--pe", type=int, nargs="+", default=None, help="PE rows per layer (one value, or one per layer)")
    p.add_argument("--simd", type=int, nargs="+", default=None, help="SIMD lanes per layer (one value, or one per layer)")
    p.add_argument("--data", type=Path, default=None,
                   help="IDX data directory for the agreement check (default: the data the checkpoint records)")
    p.add_argument("--check-images", type=int, default=None, help="check agreement on the first N test images (default all)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_export)

    r = sub.add_parser("reference", help="run the bit-exact reference on test images from an export directory")
    r.add_argument("directory", type=Path)
    r.add_argument("--images", type=int, default=None, help="first N test images (default all)")
    r.add_argument("--data", type=Path, default=None, help="IDX data directory (default: the data the export records)")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=run_reference)


def run_export(args: argparse.Namespace) -> int:
    from fedxnor.export.out_paths import check_out_export_dir

    check_count(args.check_images, "--check-images")  # before torch loads: a negative count is not a slice
    check_out_export_dir(args.out)
    from fedxnor.export.from_checkpoint import export_checkpoint

    summary = export_checkpoint(args.checkpoint, args.out, args.pe, args.simd, data_dir=args.data,
                                check_images=args.check_images)
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"exported {summary['layers']} layers to {summary['out']}; reference equals torch eval on "
              f"{summary['checked_images']} test images (torch accuracy {summary['torch_accuracy']:.4f})")
    return 0


def check_count(value: int | None, flag: str) -> None:
    """A count of images: None (all) or at least 1; never a slice, never 0 for "all"."""
    if value is not None and value < 1:
        raise FedxnorError(f"{flag} must be at least 1 (leave it out for all images), got {value}")


def check_labels(labels: np.ndarray, classes: int, data_dir: Path | None) -> None:
    """Labels the model can score: an accuracy against labels it cannot output is meaningless, not 0.0."""
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        where = f"--data {data_dir}" if data_dir else "the test data"
        raise FedxnorError(f"{where} has labels up to {int(labels.max())} but the model has {classes} classes "
                           f"(0..{classes - 1}); give the data the model was trained on with --data DIR")


def run_reference(args: argparse.Namespace) -> int:
    from fedxnor.export.manifest import PREDICTIONS_FILE
    from fedxnor.export.reference import Reference

    check_count(args.images, "--images")
    ref = Reference(args.directory)
    images, labels = reference_inputs(ref, args.data, args.images)
    if len(labels) == 0:
        raise FedxnorError("no test images to run; check --data")
    check_labels(labels, ref.export.num_classes, args.data)
    result = ref.classify(images)
    out = {"images": len(labels), "accuracy": float((result.classes == labels).mean())}
    files = ref.export.manifest.get("files", {})
    if PREDICTIONS_FILE in files:
        torch_pred = np.frombuffer(ref.export.extra_file(PREDICTIONS_FILE).read_bytes(), np.uint8).astype(np.int64)
        n = min(len(labels), len(torch_pred))
        if n < len(labels):
            raise FedxnorError(f"the export recorded torch predictions for {len(torch_pred)} images; use --images {len(torch_pred)}")
        agree = result.classes[:n] == torch_pred[:n]
        out["agreement"] = float(agree.mean())
        out["mismatches"] = int((~agree).sum())
    else:
        out["agreement"] = None
    out["checkpoint"] = ref.export.manifest.get("source", {}).get("checkpoint")
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['images']} images: accuracy {out['accuracy']:.4f}, agreement with torch eval {out['agreement']}")
    return 0 if out.get("mismatches", 0) == 0 else 1


def reference_inputs(ref, data_dir: Path | None, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The test inputs of an export: its own inputs file when it has one (e.g. HyBNN
    latents made by a frozen encoder), else the dataset's test split."""
    from fedxnor.export.manifest import INPUTS_FILE, LABELS_FILE

    inputs, labels = ref.export.extra_file(INPUTS_FILE), ref.export.extra_file(LABELS_FILE)
    if inputs is not None and labels is not None:  # load_export checked their sizes against each other and the model
        n_in = ref.export.layers[0].fan_in
        x = np.frombuffer(inputs.read_bytes(), np.uint8).reshape(-1, n_in)
        y = np.frombuffer(labels.read_bytes(), np.uint8).astype(np.int64)
        return x[:limit], y[:limit]
    from fedxnor.export.recorded_data import recorded_test_split  # default: the data the export records

    test = recorded_test_split(ref.export.manifest, data_dir, limit)
    return test.images, test.labels
