"""Register copies that synthesis keeps apart, for nets whose loads spread over the die.

A register that feeds hundreds of LUTs (a LUT ROM's address, a wide mux's select) is
one net nextpnr must route to every load, wherever they were placed: on the ECP5-85F
such nets were the critical paths (5-6 ns of routing at a 120 MHz target). Copies,
each registered from the same value and each driving a share of the loads, let the
placer put every copy beside its share. They add no cycle.

Yosys' opt_merge would fold identical flip-flops back into one, so every copy's name
carries COPY_MARK and the build's Yosys script (KEEP_COPIES, run after reading the
design) marks their flip-flops `keep`.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, Value

COPY_MARK = "fanout_copy"
# Yosys, after read_rtlil: the flip-flops driving a marked wire are kept (not merged with their twins)
KEEP_COPIES = f"setattr -set keep 1 w:*{COPY_MARK}* %ci1 t:$*dff* %i"



def register_copies(m: Module, value: Value, n: int, name: str) -> list[Signal]:
    """n reset-less registers of `value` (one cycle later), to share out the loads of one register."""
    copies = [Signal(len(value), name=f"{name}_{COPY_MARK}{j}", reset_less=True) for j in range(n)]
    m.d.sync += [c.eq(value) for c in copies]
    return copies
