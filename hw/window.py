"""Sliding-window unit: a binary feature map streamed pixel by pixel in, one k x k window at a time out,
for a conv layer's sequencer to read word by word (hw/convlayer.py). It emits a window in k·k cycles at best, so
hw/convlayer.py builds it for foldings that read a window in at least that long; faster ones get the column-parallel
generator, hw/colwindow.py (contract.conv.Conv.column_window).

    pixels -> WindowTaps (hw/linebuffer.py: line buffer, k·k taps per window)
           -> VectorBuffer (hw/vectorbuffer.py: 2 banks of K = k·k·C bits in flip-flops) -> rd (InputReadSignature)

The window vector is in (ky, kx, c) order with padding 0 outside the map (the bit -1 of a binary map, pixel 0
of a first layer's image), exactly
`fedxnor.contract.conv.Conv.window` (docs/datapath.md); word c of it is bits [c·L, c·L + L), the last word
padded with 0, the layout the conv layer's weight words are packed in. The sequencer reads a window's words
as it reads an activation buffer's (rd.word, one cycle latency), once per pass of its neurons, and releases
it; the next window fills the other bank meanwhile (ping-pong).
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from fedxnor.hw.linebuffer import WindowTaps
from fedxnor.hw.ports import InputReadSignature
from fedxnor.hw.vectorbuffer import VectorBuffer


class SlidingWindow(wiring.Component):
    def __init__(self, *, in_h: int, in_w: int, in_c: int, k: int, stride: int = 1, pad: int = 0, lanes: int,
                 bits: int = 1):
        """bits: B of each map element (1 for a binary map; 8 for a first layer's pixels, read by bit plane)."""
        self.line = WindowTaps(in_h=in_h, in_w=in_w, in_c=in_c * bits, k=k, stride=stride, pad=pad)
        self.buffer = VectorBuffer(pieces=k * k, width=in_c, lanes=lanes, bits=bits)
        self.H, self.W, self.C, self.OH, self.OW = in_h, in_w, in_c, self.line.OH, self.line.OW
        self.K, self.words = k * k * in_c, self.buffer.words
        super().__init__({
            "pixels": In(stream.Signature(in_c * bits)),
            "rd": In(InputReadSignature(words=self.words, planes=bits, lanes=lanes)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.line, m.submodules.buffer = self.line, self.buffer
        wiring.connect(m, wiring.flipped(self.pixels), self.line.pixels)
        taps, vec = self.line.taps, self.buffer.pieces  # a window is exactly k·k taps: `last` needs no check
        m.d.comb += [vec.valid.eq(taps.valid), vec.payload.eq(taps.payload.bits), taps.ready.eq(vec.ready)]
        wiring.connect(m, wiring.flipped(self.rd), self.buffer.rd)
        m.d.comb += self.busy.eq(self.line.busy | self.buffer.busy)
        return m
