"""Run a build's tools (Amaranth's shell script: Yosys, nextpnr, icepack/ecppack) so that nothing outlives them.

The script runs in a process group of its own, its output in a log file. While
`interruptible()` is active, SIGTERM and SIGINT are forwarded to that whole group
(the shell, nextpnr and the seed stand-in alike), the group is waited for (SIGKILL
after a grace period), and then Interrupted is raised, so the caller's cleanup
(fedxnor.atomic.atomic_directory) removes the partial output. Outside a tool run
the signal raises Interrupted at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from fedxnor.errors import FedxnorError

SIGNALS = (signal.SIGTERM, signal.SIGINT)
GRACE_S = 5.0  # after the forwarded signal, before SIGKILL
LOG_NAME = "build.log"  # the script's stdout and stderr, in its build directory


class Interrupted(FedxnorError):
    """A build stopped by SIGTERM or SIGINT. Exit 128 + the signal's number (143, 130), as a shell reports it."""

    def __init__(self, signum: int, message: str | None = None):
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(message or f"interrupted by {signal.Signals(signum).name}")


class _State:
    def __init__(self) -> None:
        self.pending: int | None = None  # the first signal received
        self.group: int | None = None  # the running tools' process group
        self.in_tool = False  # between starting the tools and having waited for them: do not raise, forward
        self.raised = False  # raise once: a second signal must not cut the cleanup short


_state: _State | None = None


def _handler(signum: int, frame) -> None:
    st = _state
    if st is None:
        return
    if st.pending is None:
        st.pending = signum
    if st.group is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(st.group, signum)
    if not st.in_tool and not st.raised:
        st.raised = True
        raise Interrupted(signum)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """SIGTERM/SIGINT stop the tools started by run_script() and raise Interrupted (main thread only)."""
    global _state
    if threading.current_thread() is not threading.main_thread() or _state is not None:
        yield  # signals can only be caught in the main thread; nested: the outer one is in charge
        return
    _state = _State()
    old = {s: signal.signal(s, _handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        _state = None


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group `pgid`, from /proc."""
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # state, ppid, pgrp, ... (the name may hold spaces)
        if fields[0] != "Z" and int(fields[2]) == pgid:
            out.append(int(entry.name))
    return out


def _wait_gone(proc: subprocess.Popen, deadline: float) -> bool:
    while time.monotonic() < deadline:
        proc.poll()
        if proc.returncode is not None and not group_members(proc.pid):
            return True
        time.sleep(0.05)
    return False


def stop_group(proc: subprocess.Popen, signum: int = signal.SIGTERM) -> None:
    """Send `signum` to the script's whole process group, wait for it; SIGKILL whatever is left after GRACE_S."""
    for sig in (signum, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        if _wait_gone(proc, time.monotonic() + GRACE_S):
            return
    proc.wait()


def run_script(script: str, cwd: Path, env: dict[str, str]) -> int:
    """Run `sh script` in `cwd` in a new process group, output to cwd/build.log; its exit status.

    Interrupted when a signal came (inside interruptible()): the group is gone by then."""
    st = _state
    if st is not None:
        st.in_tool = True
    try:
        with open(Path(cwd) / LOG_NAME, "wb") as log:
            proc = subprocess.Popen(["sh", script], cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        if st is not None:
            st.group = proc.pid
            if st.pending is not None:  # the signal came while the group was being started
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, st.pending)
        try:
            code = proc.wait()
        finally:
            if group_members(proc.pid) or (st is not None and st.pending is not None):
                stop_group(proc, st.pending if st is not None and st.pending is not None else signal.SIGTERM)
            if st is not None:
                st.group = None
    finally:
        if st is not None:
            st.in_tool = False
    if st is not None and st.pending is not None and not st.raised:
        st.raised = True
        raise Interrupted(st.pending)
    return code


def tail(log: Path, limit: int = 200) -> str:
    """The last non-empty line of a log, shortened, for a one-line message."""
    try:
        lines = [ln.strip() for ln in Path(log).read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][-limit:] if lines else ""


def failed_tool(build_dir: Path, family: str, top: str) -> tuple[str, Path]:
    """Which step of Amaranth's script failed (from the files it got to write), and the log that says why."""
    d = Path(build_dir)
    script_log = d / LOG_NAME
    if not (d / f"{top}.json").is_file():
        return "yosys", d / f"{top}.rpt" if (d / f"{top}.rpt").is_file() else script_log
    placed = d / (f"{top}.asc" if family == "ice40" else f"{top}.config")
    if not placed.is_file():
        tim = d / f"{top}.tim"
        return f"nextpnr-{family}", tim if tim.is_file() and tim.stat().st_size else script_log
    return ("icepack" if family == "ice40" else "ecppack"), script_log
