"""Run the `fedxnor` command in-process and check how it refuses bad input.

A refusal is: exit code 2 (bad input) or 3 (a tool failed), exactly one line on
stderr, no traceback (an exception escaping main() fails the test), and nothing
left in the output location the command was asked to write.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

from fedxnor.app.cli import main


@dataclass
class Run:
    code: int
    out: str
    err: str


def run_cli(argv: list[str]) -> Run:
    """fedxnor ARGV in this process; argparse's SystemExit becomes its exit code."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:  # argparse: --help (0) or a usage error (2)
            code = e.code if isinstance(e.code, int) else 1
    return Run(code, out.getvalue(), err.getvalue())


def files_under(path: Path) -> list[Path]:
    path = Path(path)
    if not path.exists():
        return []
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*"))


def assert_refused(run: Run, *, code: int = 2, nothing_in: Path | None = None, before: list[Path] | None = None) -> None:
    """The command refused: `code`, one line on stderr, no traceback, `nothing_in` as it was (`before`, default empty)."""
    lines = [line for line in run.err.splitlines() if line.strip()]
    assert run.code == code, f"exit {run.code}, expected {code}; stderr: {run.err!r}"
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {run.err!r}"
    assert "Traceback" not in run.err
    assert "error" in lines[0], lines[0]
    if nothing_in is not None:
        assert files_under(nothing_in) == (before or []), f"left behind in {nothing_in}: {files_under(nothing_in)}"
