"""The `fedxnor` command. Each part of the flow registers its own subcommands.

Every module listed in PARTS has register(subparsers) that adds subcommands
whose handler is `args.func(args) -> int`. A FedxnorError becomes one line on
stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from fedxnor.errors import EXIT_BAD_INPUT, FedxnorError


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (and exit 2) like every other bad input."""

    def error(self, message: str):
        print(f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


PARTS = ["fedxnor.train.cli", "fedxnor.train.export_cli", "fedxnor.export.cli", "fedxnor.export.qonnx_cli", "fedxnor.hw.cli",
         "fedxnor.hw.plan_cli", "fedxnor.sim.cli", "fedxnor.boards.cli", "fedxnor.app.flow"]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="fedxnor", description="Federated BNN training to FPGA bitstreams.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in PARTS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # that part does not exist yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    command = "fedxnor"
    try:  # Ctrl-C while the parts import (torch is slow to load) is an interrupt too, not a traceback
        args = build_parser().parse_args(argv)
        command = f"fedxnor {args.command}"
        return int(args.func(args) or 0)
    except FedxnorError as e:
        print(f"{command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
