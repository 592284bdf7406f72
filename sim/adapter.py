"""The one place that knows hw's API: generate the DUT's Verilog and describe its ports.

write_sources(export, directory) -> (Verilog files, SimPorts). The DUT is the
accelerator's network top from fedxnor.hw, or with FEDXNOR_SIM_DUT=standin the
behavioural stand-in of fedxnor.sim.standin (to test the testbench itself).
"""

from __future__ import annotations

import os
from pathlib import Path

from fedxnor.errors import FedxnorError
from fedxnor.export.manifest import Export
from fedxnor.sim import standin, wrapper
from fedxnor.sim.ports import SimPorts

BATCH_DEPTH = 256  # images per batch held by the sim-only wrapper
HW_MODULE = "fedxnor_top"


def dut_kind() -> str:
    """"hw" (the accelerator of fedxnor.hw.top), or what FEDXNOR_SIM_DUT=standin|hw says. Never a silent
    fallback: a broken hw import is an error to see, not a reason to verify a model instead of the RTL."""
    kind = os.environ.get("FEDXNOR_SIM_DUT", "") or "hw"
    if kind not in ("hw", "standin"):
        raise FedxnorError(f"FEDXNOR_SIM_DUT={kind!r}: use 'hw' or 'standin'")
    return kind


def write_sources(export: Export, directory: Path, kind: str | None = None,
                  device: str | None = None) -> tuple[list[Path], SimPorts]:
    kind = kind or dut_kind()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if kind == "standin":
        if any(info.kind != "dense" for info in export.layers):
            raise FedxnorError("the behavioural stand-in (FEDXNOR_SIM_DUT=standin) models dense layers only; "
                               "unset FEDXNOR_SIM_DUT to verify a conv network's RTL")
        ports = standin.standin_ports(export)
        dut_text = standin.standin_verilog(export)
    else:
        dut_text, ports = hw_verilog(export, device)
    dut = directory / "dut.v"
    dut.write_text(dut_text)
    top = directory / "sim_top.v"
    top.write_text(wrapper.wrapper_verilog(ports, BATCH_DEPTH))
    return [dut, top], ports


def hw_verilog(export: Export, device: str | None = None) -> tuple[str, SimPorts]:
    """The accelerator's Verilog (with its debug stream) and its ports, as the testbench sees them; device: as
    that device's board build makes it (its read registers, weight ROM placement and tiles).

    hw's contract (docs/accelerator.md): Amaranth's flattened port names, reset active
    high, TopPorts describing the payload layouts; busy/cycles are left unconnected.
    """
    from fedxnor.hw.top import generate_verilog

    text, tp = generate_verilog(export, debug=True, name=HW_MODULE, device=device)
    dbg = tp.dbg_beats > 0
    extra_in: tuple[tuple[str, int, int], ...] = ()
    extra_out = tuple(tp.extra_outputs)
    if not dbg and "debug__ready" in text:  # a debug port with nothing to say (no hidden layer): keep it drained
        extra_in = (("debug__ready", 1, 1),)
        extra_out += (("debug__valid", 1), ("debug__payload", 1))
    ports = SimPorts(
        dut_module=tp.module, clk="clk", rst="rst", rst_active_high=True,
        in_valid="image__valid", in_ready="image__ready", in_payload="image__payload",
        out_valid="result__valid", out_ready="result__ready", out_payload="result__payload", beats=tp.beats,
        dbg_valid="debug__valid" if dbg else None, dbg_ready="debug__ready" if dbg else None,
        dbg_payload="debug__payload" if dbg else None, extra_inputs=extra_in, extra_outputs=extra_out,
    )
    return text, ports
