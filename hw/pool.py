"""Streaming max-pool on a binary feature map (a unit of the conv front, hw/convfront.py).

    pixels -> WindowTaps (hw/linebuffer.py) -> OR over each window's k·k taps -> pooled pixels (raster order)

On bits (1 = +1) the maximum is the OR (docs/datapath.md: pooling comes after BN + sign, in torch too); there
is no padding (contract.pool.MaxPool), so every tap lies inside the map.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from fedxnor.hw.linebuffer import WindowTaps


class MaxPoolUnit(wiring.Component):
    def __init__(self, *, in_h: int, in_w: int, channels: int, k: int, stride: int):
        self.line = WindowTaps(in_h=in_h, in_w=in_w, in_c=channels, k=k, stride=stride)
        self.C, self.OH, self.OW = channels, self.line.OH, self.line.OW
        super().__init__({
            "pixels": In(stream.Signature(channels)),
            "pooled": Out(stream.Signature(channels)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.line = line = self.line
        wiring.connect(m, wiring.flipped(self.pixels), line.pixels)
        acc = Signal(self.C)  # OR of the window's taps so far
        out = self.pooled
        tap = line.taps
        # a window's last tap waits until its pixel can go out; the others are taken at once
        m.d.comb += tap.ready.eq(~tap.payload.last | ~out.valid | out.ready)
        with m.If(out.valid & out.ready):
            m.d.sync += out.valid.eq(0)
        with m.If(tap.valid & tap.ready):
            with m.If(tap.payload.last):
                m.d.sync += [out.payload.eq(acc | tap.payload.bits), out.valid.eq(1), acc.eq(0)]
            with m.Else():
                m.d.sync += acc.eq(acc | tap.payload.bits)
        m.d.comb += self.busy.eq(line.busy | out.valid | acc.any())
        return m
