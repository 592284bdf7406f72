"""`fedxnor export`: a checkpoint through the torch -> integer bridge (train/to_export.py) to an export directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from fedxnor.progress import print_summary


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


def run_export(args: argparse.Namespace) -> int:
    from fedxnor.export.cli import check_count
    from fedxnor.export.out_paths import check_out_export_dir

    check_count(args.check_images, "--check-images")  # before torch loads: a negative count is not a slice
    check_out_export_dir(args.out)
    from fedxnor.train.to_export import export_checkpoint

    summary = export_checkpoint(args.checkpoint, args.out, args.pe, args.simd, data_dir=args.data,
                                check_images=args.check_images)
    print_summary(summary, args.json, f"exported {summary['layers']} layers to {summary['out']}; reference equals torch "
                                      f"eval on {summary['checked_images']} test images (torch accuracy "
                                      f"{summary['torch_accuracy']:.4f})")
    return 0
