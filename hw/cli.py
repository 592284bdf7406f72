"""`fedxnor verilog`: the accelerator's Verilog for an export directory."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from fedxnor.errors import FedxnorError
from fedxnor.progress import print_summary

MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
VERILOG_KEYWORDS = frozenset("""always and assign begin buf case default defparam disable else end endcase endfunction endmodule
    endtask for forever function if initial inout input integer module nand negedge nor not or output parameter posedge reg
    repeat task time wait while wire xor logic""".split())
MAX_STAGES = 32  # past the tree's levels, extra stages are only delay registers


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verilog", help="write the accelerator's Verilog (Amaranth back end) for an export directory")
    p.add_argument("directory", type=Path, help="export directory (manifest.json + ROM images)")
    p.add_argument("--out", type=Path, required=True, help="Verilog file to write")
    p.add_argument("--no-debug", action="store_true", help="leave out the debug stream of hidden activations")
    p.add_argument("--name", default="fedxnor_top", help="module name (default fedxnor_top)")
    p.add_argument("--stages", type=int, default=None,
                   help="adder-tree register stages per lane group (default: one per tree level)")
    p.add_argument("--json", action="store_true", help="print the port description and cycle model as JSON")
    p.set_defaults(func=run_verilog)


PORT_FIELDS = ("module", "in_width", "in_beats", "input_bits", "fan_in", "out_width", "class_width", "hidden_sizes",
               "dbg_width", "dbg_beats", "dbg_fields", "extra_outputs")


def ports_json(ports) -> dict:
    """TopPorts as docs/accelerator.md lists its fields (flat), whatever object holds the beat geometry."""
    return json.loads(json.dumps({name: getattr(ports, name) for name in PORT_FIELDS}, default=list))


def run_verilog(args: argparse.Namespace) -> int:
    from fedxnor.atomic import write_text_atomic
    from fedxnor.contract import cycles
    from fedxnor.export.manifest import load_export
    from fedxnor.export.out_paths import check_out_file
    from fedxnor.hw.top import check_buildable, generate_verilog

    if not MODULE_NAME.fullmatch(args.name) or args.name in VERILOG_KEYWORDS:
        raise FedxnorError(f"--name {args.name!r} is not a Verilog module name: use 1-128 ASCII letters, digits and '_', "
                           f"starting with a letter or '_', not a keyword")
    if args.stages is not None and not 0 <= args.stages <= MAX_STAGES:
        raise FedxnorError(f"--stages must be in 0..{MAX_STAGES} (register stages per adder tree), got {args.stages}")
    check_out_file(args.out, "--out", "top.v")
    export = load_export(args.directory)  # validates folding, images, widths before anything is built
    check_buildable(export)
    text, ports = generate_verilog(export, debug=not args.no_debug, name=args.name, stages=args.stages)
    try:
        write_text_atomic(args.out, text)
    except OSError as e:
        raise FedxnorError(f"cannot write {args.out} ({e.strerror or e}); choose another --out") from None
    summary = {"out": str(args.out), "ports": ports_json(ports),
               "cycles_per_inference": cycles.cycles_per_inference(export.layers, stages=args.stages),
               "latency_cycles": cycles.latency_cycles(export.layers, args.stages)}
    print_summary(summary, args.json, f"wrote {args.out}: module {args.name}, {len(export.layers)} layers, "
                                      f"{summary['latency_cycles']} cycles latency")
    return 0
