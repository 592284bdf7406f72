"""VectorBuffer: a vector arriving as a stream of equal pieces, kept whole in one of two banks and read
in L-bit words through InputReadSignature, as an activation buffer is read (one cycle latency, ready /
release per bank). Piece i is bits [i·width, (i + 1)·width) of the vector; the last word is padded with 0.

Two users (issue 21; not yet wired into NetworkTop): a conv layer's window (the k·k taps of hw/linebuffer.py,
C channel bits each: the (ky, kx, c) order of contract.conv) and the feature map a fully connected layer
reads after a conv network (its pixels in raster order: the NHWC flatten of docs/datapath.md).
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from fedxnor.contract.bits import ceil_div
from fedxnor.hw.ports import InputReadSignature, bits_for


class VectorBuffer(wiring.Component):
    def __init__(self, *, pieces: int, width: int, lanes: int):
        self.T, self.C, self.L = pieces, width, lanes
        self.words = ceil_div(pieces * width, lanes)
        super().__init__({
            "pieces": In(stream.Signature(width)),
            "rd": In(InputReadSignature(words=self.words, planes=1, lanes=lanes)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        C, L, rd = self.C, self.L, self.rd
        vec = [Signal(self.words * L, name=f"vector{b}", reset_less=True) for b in range(2)]  # bits past T·C stay 0
        full = Signal(2)  # bank b holds a whole vector not yet released
        wb = Signal()  # the bank being filled
        i = Signal(range(self.T))  # its next piece
        free = ~full.bit_select(wb, 1)
        m.d.comb += self.pieces.ready.eq(free)
        with m.If(self.pieces.valid & free):
            for b in range(2):
                for j in range(self.T):
                    with m.If((wb == b) & (i == j)):
                        m.d.sync += vec[b][j * C:(j + 1) * C].eq(self.pieces.payload)
            m.d.sync += i.eq(i + 1)
            with m.If(i == self.T - 1):
                m.d.sync += [i.eq(0), wb.eq(~wb), full.bit_select(wb, 1).eq(1)]
        words = [v[c * L:(c + 1) * L] for v in vec for c in range(self.words)]
        sel = Signal(bits_for(2 * self.words) + 1)
        m.d.comb += sel.eq(rd.bank * self.words + rd.word)
        m.d.sync += rd.data.eq(Array(words)[sel])
        with m.If(rd.release):
            m.d.sync += full.bit_select(rd.bank, 1).eq(0)
        m.d.comb += [rd.ready.eq(full), self.busy.eq(full.any() | (i != 0))]
        return m
