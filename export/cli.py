"""`fedxnor reference`: the bit-exact reference on test images from an export directory."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fedxnor.errors import FedxnorError
from fedxnor.progress import print_summary


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("reference", help="run the bit-exact reference on test images from an export directory")
    r.add_argument("directory", type=Path)
    r.add_argument("--images", type=int, default=None, help="first N test images (default all)")
    r.add_argument("--data", type=Path, default=None, help="IDX data directory (default: the data the export records)")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=run_reference)



def check_count(value: int | None, flag: str) -> None:
    """A count of images: None (all) or at least 1; never a slice, never 0 for "all"."""
    if value is not None and value < 1:
        raise FedxnorError(f"{flag} must be at least 1 (leave it out for all images), got {value}")



def run_reference(args: argparse.Namespace) -> int:
    from fedxnor.export.manifest import PREDICTIONS_FILE
    from fedxnor.export.recorded_data import check_labels, reference_inputs
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
    print_summary(out, args.json, f"{out['images']} images: accuracy {out['accuracy']:.4f}, "
                                  f"agreement with torch eval {out['agreement']}")
    return 0 if out.get("mismatches", 0) == 0 else 1
