"""Shared helpers for benchmarks: results files are JSON written atomically, with provenance."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from fedxnor.atomic import write_text_atomic

RESULTS = Path(__file__).resolve().parent / "results"


def provenance() -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, check=False).stdout.strip()
    except OSError:
        commit = ""
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "commit": commit,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"}


def write_results(name: str, data: dict[str, Any]) -> Path:
    path = RESULTS / f"{name}.json"
    write_text_atomic(path, json.dumps({"provenance": provenance(), **data}, indent=1) + "\n")
    return path
