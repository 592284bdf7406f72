"""A synchronous memory read that lets Yosys honour `no_rw_check`.

Amaranth's synchronous read port (`read_port()`, read-old-data on a collision with a write) reaches
Yosys as a port that is synchronous from the start, and Yosys reads a memory's `no_rw_check`
attribute only in memory_dff, when it merges a register into an asynchronous read port. So a
synchronous port ignores the attribute and memory_libmap emulates read-old-data on block RAMs whose
ports do not give it (ECP5 DP16KD, iCE40 SB_RAM40_4K): a flip-flop per data bit, an address compare
and a LUT between the RAM and its reader. Built as an asynchronous read plus a register, the read
has the same cycle and the same values, and memory_dff merges the register with the attribute
honoured: the RAM output goes straight to its reader.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, Value
from amaranth.lib.memory import Memory


def registered_read(m: Module, mem: Memory, addr: Value, *, name: str = "rd_data") -> Signal:
    """The word at `addr` one cycle later (the value before that cycle's write, as `mem.read_port()`)."""
    port = mem.read_port(domain="comb")
    m.d.comb += port.addr.eq(addr)
    data = Signal(port.data.shape(), name=name, reset_less=True)
    m.d.sync += data.eq(port.data)
    return data
