"""`fedxnor import` (QONNX -> export directory) and `fedxnor export-qonnx` (export directory -> QONNX)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fedxnor.errors import FedxnorError
from fedxnor.progress import print_summary


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="turn a QONNX binarized MLP or CNV (e.g. Brevitas export_qonnx) into an export directory")
    p.add_argument("model", type=Path, help="the .onnx file (raw Brevitas export or after qonnx cleanup)")
    p.add_argument("--out", type=Path, required=True, help="export directory (replaced atomically)")
    p.add_argument("--input-scale", default="pixel/255", help="what the graph's float input is: pixel/D (default pixel/255)")
    p.add_argument("--images", type=int, default=None, help="check agreement with qonnx on the first N test images (default all)")
    p.add_argument("--data", type=Path, default=None, help="IDX data directory (default: Debian's Fashion-MNIST)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_import)

    e = sub.add_parser("export-qonnx", help="write a QONNX model of an export directory (runs in qonnx's executor)")
    e.add_argument("directory", type=Path)
    e.add_argument("--out", type=Path, required=True, help="the .onnx file to write (replaced atomically)")
    e.add_argument("--images", type=int, default=None, help="check qonnx against the reference on the first N images (default all)")
    e.add_argument("--data", type=Path, default=None, help="IDX data directory (default: Debian's Fashion-MNIST)")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=run_export_qonnx)


def _need_qonnx() -> None:
    try:
        import onnx  # noqa: F401
        import qonnx  # noqa: F401
    except ModuleNotFoundError as err:
        raise FedxnorError(f"QONNX support needs the package '{err.name}': pip install -e '.[qonnx]' (make setup does)") from None


def run_import(args: argparse.Namespace) -> int:
    _need_qonnx()
    from fedxnor.export.qonnx_import import import_qonnx

    s = import_qonnx(args.model, args.out, args.input_scale, args.images, args.data)
    print_summary(s, args.json, f"imported {' '.join(s['layers'])} to {s['out']}; equals qonnx's executor on "
                                f"{s['checked_images']} images (accuracy {s['accuracy']:.4f}); input {s['input']}")
    return 0


def run_export_qonnx(args: argparse.Namespace) -> int:
    _need_qonnx()
    from fedxnor.export.qonnx_export import export_qonnx

    s = export_qonnx(args.directory, args.out, args.images, args.data)
    print_summary(s, args.json, f"wrote {s['out']}; qonnx's executor equals the reference on {s['checked_images']} images")
    return 0
