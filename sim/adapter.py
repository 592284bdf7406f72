"""The one place that knows hw's API: generate the DUT's Verilog and describe its ports.

write_sources(export, directory) -> (Verilog files, SimPorts). The DUT is the
accelerator's network top from fedxnor.hw when it is available, else (or with
FEDXNOR_SIM_DUT=standin) the behavioural stand-in of fedxnor.sim.standin.
"""

from __future__ import annotations

import os
from pathlib import Path

from fedxnor.export.manifest import Export
from fedxnor.sim import standin, wrapper
from fedxnor.sim.ports import SimPorts

BATCH_DEPTH = 256  # images per batch held by the sim-only wrapper


def dut_kind() -> str:
    kind = os.environ.get("FEDXNOR_SIM_DUT", "")
    if kind:
        return kind
    try:
        import fedxnor.hw.top  # noqa: F401
    except ImportError:
        return "standin"
    return "hw"


def write_sources(export: Export, directory: Path, kind: str | None = None) -> tuple[list[Path], SimPorts]:
    kind = kind or dut_kind()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if kind == "standin":
        ports = standin.standin_ports(export)
        dut_text = standin.standin_verilog(export)
    else:
        dut_text, ports = hw_verilog(export)
    dut = directory / "dut.v"
    dut.write_text(dut_text)
    top = directory / "sim_top.v"
    top.write_text(wrapper.wrapper_verilog(ports, BATCH_DEPTH))
    return [dut, top], ports


def hw_verilog(export: Export) -> tuple[str, SimPorts]:
    raise NotImplementedError("the accelerator's Verilog generator is not wired in yet")
