"""Sliding-window unit: a binary feature map streamed pixel by pixel in, one k x k window at a time out,
for a conv layer's sequencer to read word by word (issue 21; not yet wired into NetworkTop).

    pixels -> WindowTaps (hw/linebuffer.py: line buffer, k·k taps per window)
           -> WindowBuffer (2 banks of K = k·k·C bits in flip-flops) -> rd (InputReadSignature)

The window vector is in (ky, kx, c) order with padding bit 0 (-1) outside the map, exactly
`fedxnor.contract.conv.Conv.window` (docs/datapath.md); word c of it is bits [c·L, c·L + L), the last word
padded with 0, the layout the conv layer's weight words are packed in. The sequencer reads a window's words
as it reads an activation buffer's (rd.word, one cycle latency), once per pass of its neurons, and releases
it; the next window fills the other bank meanwhile (ping-pong).
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from fedxnor.contract.bits import ceil_div
from fedxnor.hw.linebuffer import WindowTaps, tap_layout
from fedxnor.hw.ports import InputReadSignature, bits_for


class WindowBuffer(wiring.Component):
    """Taps of k·k windows in, each window kept whole in one of two banks and read in L-bit words."""

    def __init__(self, *, taps: int, channels: int, lanes: int):
        self.T, self.C, self.L = taps, channels, lanes
        self.words = ceil_div(taps * channels, lanes)
        super().__init__({
            "taps": In(stream.Signature(tap_layout(channels))),
            "rd": In(InputReadSignature(words=self.words, planes=1, lanes=lanes)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        C, L, rd = self.C, self.L, self.rd
        full = Signal(2)  # bank b holds a whole window not yet released
        wb = Signal()  # the bank being filled
        t = Signal(range(self.T))  # its next tap
        vec = [Signal(self.words * L, name=f"window{b}", reset_less=True) for b in range(2)]  # bits past K stay 0
        free = ~full.bit_select(wb, 1)
        m.d.comb += self.taps.ready.eq(free)
        with m.If(self.taps.valid & free):
            for b in range(2):
                for i in range(self.T):
                    with m.If((wb == b) & (t == i)):
                        m.d.sync += vec[b][i * C:(i + 1) * C].eq(self.taps.payload.bits)
            m.d.sync += t.eq(t + 1)
            with m.If(self.taps.payload.last):
                m.d.sync += [t.eq(0), wb.eq(~wb), full.bit_select(wb, 1).eq(1)]
        words = [v[c * L:(c + 1) * L] for v in vec for c in range(self.words)]
        sel = Signal(bits_for(2 * self.words) + 1)
        m.d.comb += sel.eq(rd.bank * self.words + rd.word)
        m.d.sync += rd.data.eq(Array(words)[sel])
        with m.If(rd.release):
            m.d.sync += full.bit_select(rd.bank, 1).eq(0)
        m.d.comb += [rd.ready.eq(full), self.busy.eq(full.any() | (t != 0))]
        return m


class SlidingWindow(wiring.Component):
    def __init__(self, *, in_h: int, in_w: int, in_c: int, k: int, stride: int = 1, pad: int = 0, lanes: int):
        self.line = WindowTaps(in_h=in_h, in_w=in_w, in_c=in_c, k=k, stride=stride, pad=pad)
        self.buffer = WindowBuffer(taps=k * k, channels=in_c, lanes=lanes)
        self.H, self.W, self.C, self.OH, self.OW = in_h, in_w, in_c, self.line.OH, self.line.OW
        self.K, self.words = k * k * in_c, self.buffer.words
        super().__init__({
            "pixels": In(stream.Signature(in_c)),
            "rd": In(InputReadSignature(words=self.words, planes=1, lanes=lanes)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.line, m.submodules.buffer = self.line, self.buffer
        wiring.connect(m, wiring.flipped(self.pixels), self.line.pixels)
        wiring.connect(m, self.line.taps, self.buffer.taps)
        wiring.connect(m, wiring.flipped(self.rd), self.buffer.rd)
        m.d.comb += self.busy.eq(self.line.busy | self.buffer.busy)
        return m
