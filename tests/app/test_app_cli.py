"""The `fedxnor` command itself: usage errors and interrupts are one line, never a traceback."""

from __future__ import annotations

import importlib

import pytest
from cli_helpers import assert_refused, run_cli

from fedxnor.app import cli


@pytest.mark.parametrize("argv", [["no-such-command"], ["train", "--lr", "fast", "--out", "x"], ["export"],
                                  ["reference", "d", "--images", "many"], ["flow", "--only"]])
def test_usage_errors_are_one_line_and_exit_2(argv):
    assert_refused(run_cli(argv))


def test_ctrl_c_while_the_parts_import_is_an_interrupt_not_a_traceback(monkeypatch):
    """torch and amaranth load while the parser is built: a Ctrl-C there used to print a traceback."""
    real = importlib.import_module

    def slow_import(name, *a, **k):
        if name == "fedxnor.train.cli":
            raise KeyboardInterrupt
        return real(name, *a, **k)

    monkeypatch.setattr(cli.importlib, "import_module", slow_import)
    r = run_cli(["train", "--out", "x"])
    assert r.code == 130 and r.err.strip() == "fedxnor: interrupted" and "Traceback" not in r.err


def test_a_tool_failure_exits_3_and_names_its_log(tmp_path):
    from fedxnor.errors import ToolError

    log = tmp_path / "nextpnr.log"
    e = ToolError("nextpnr-ice40", "placement failed", log)
    assert e.exit_code == 3 and str(e) == f"nextpnr-ice40 failed: placement failed (log: {log})"
