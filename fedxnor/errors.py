"""The errors a user sees, and their exit codes.

The CLI turns a FedxnorError into one line on stderr and its exit code, so its
message must name the problem and the fix on a single line:

- FedxnorError (exit 2): bad input — a bad value, a missing or malformed file,
  a design that does not fit. Nothing was written.
- ToolError (exit 3): a tool we call (simulator, Yosys, nextpnr, a Flower
  process) failed. The message names the tool and a log file that still exists.
"""

from __future__ import annotations

from pathlib import Path

EXIT_BAD_INPUT = 2
EXIT_TOOL_FAILED = 3


class FedxnorError(Exception):
    """A user-facing error: bad input, a missing file, a design that does not fit."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class ToolError(FedxnorError):
    """A tool we call failed; `log` is a file that survives the run and tells why."""

    exit_code = EXIT_TOOL_FAILED

    def __init__(self, tool: str, message: str, log: Path | str | None = None):
        self.tool = tool
        self.log = Path(log) if log is not None else None
        where = f" (log: {self.log})" if self.log is not None else ""
        super().__init__(f"{tool} failed: {message}{where}")
