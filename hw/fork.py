"""StreamFork: one stream to two consumers, each taking every beat once (an eager fork).

A beat leaves the input once both outputs have taken it, in the same cycle or in different ones: a branch that
took it early waits (its valid low) for the other, so neither consumer can lose or repeat a beat, and a slow
branch only stalls the producer, never the other branch's past beats. Used to copy a feature-map layer's pixels
to the debug stream (hw/convfront.py) beside the next layer.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class StreamFork(wiring.Component):
    def __init__(self, width: int):
        super().__init__({
            "i": In(stream.Signature(width)),
            "a": Out(stream.Signature(width)),
            "b": Out(stream.Signature(width)),
        })

    def elaborate(self, platform):
        m = Module()
        done_a, done_b = Signal(), Signal()  # this branch took the current beat in an earlier cycle
        i, a, b = self.i, self.a, self.b
        m.d.comb += [a.payload.eq(i.payload), b.payload.eq(i.payload),
                     a.valid.eq(i.valid & ~done_a), b.valid.eq(i.valid & ~done_b)]
        got_a = done_a | (a.valid & a.ready)
        got_b = done_b | (b.valid & b.ready)
        m.d.comb += i.ready.eq(got_a & got_b)
        with m.If(i.valid):
            with m.If(got_a & got_b):
                m.d.sync += [done_a.eq(0), done_b.eq(0)]
            with m.Else():
                m.d.sync += [done_a.eq(got_a), done_b.eq(got_b)]
        return m
