"""PixelCollector: a conv layer's output pixels collected in a ring of S slots, sent in order as one beat each
(hw/convlayer.py with the column window generator; the serial one keeps its two-bank ActivationBuffer).

With two banks a window pair holds the collector for T_w + D + 1 cycles (the array's drain D is long when a
window is a few tokens), so the sequencer waits. Here a window takes a slot when it starts and frees it when its
pixel is sent: S = contract.conv.Conv.collector_slots windows in flight keep the array busy whenever the
consumer takes pixels as fast as they come (contract/colcycles.py models it).

Row p of the systolic array finishes its neurons of window w in order, NP = M / P of them, a fixed number of
cycles after row p − 1: it shifts them into its own NP-bit register in slot (w mod S), counted by its own
pointer, so the rows need no bank tag. `done` (the last row's last neuron) completes the pixel; the claim's
`free` says whether a slot is free for both banks (the sequencer's bank bit is not used).
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from fedxnor.hw.ports import BankClaimSignature, RowOutputSignature


class PixelCollector(wiring.Component):
    def __init__(self, fan_out: int, pe: int, slots: int):
        if slots < 1 or fan_out % pe:
            raise ValueError("a collector needs a slot and P dividing M")
        self.M, self.P, self.S, self.NP = fan_out, pe, slots, fan_out // pe
        super().__init__({
            "claim": In(BankClaimSignature()),
            "rows": In(RowOutputSignature(pe)),
            "out": Out(stream.Signature(fan_out)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        M, P, S, NP = self.M, self.P, self.S, self.NP
        rows, out = self.rows, self.out
        sr = [[Signal(NP, name=f"slot{s}_row{p}", reset_less=True) for p in range(P)] for s in range(S)]
        for p in range(P):
            wp = Signal(range(S), name=f"wp{p}")  # row p's slot: its windows counted mod S
            cnt = Signal(range(NP), name=f"cnt{p}")  # neurons of this window row p finished so far
            with m.If(rows.shift[p]):
                for s in range(S):
                    with m.If(wp == s):
                        m.d.sync += sr[s][p].eq(Cat(sr[s][p][1:], rows.bits[p]) if NP > 1 else rows.bits[p])
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == NP - 1):
                    m.d.sync += [cnt.eq(0), wp.eq(Mux(wp == S - 1, 0, wp + 1))]
        inflight = Signal(range(S + 1))  # windows started and not yet sent
        complete = Signal(range(S + 1))  # pixels done and not yet sent
        rp = Signal(range(S))  # the next slot to send
        sent = out.valid & out.ready
        m.d.comb += [self.claim.free.eq(Cat(inflight < S, inflight < S)),
                     out.valid.eq(complete != 0),
                     out.payload.eq(Array(Cat(*[sr[s][n % P][n // P] for n in range(M)]) for s in range(S))[rp])]
        m.d.sync += [inflight.eq(inflight + self.claim.start - sent), complete.eq(complete + rows.done - sent)]
        with m.If(sent):
            m.d.sync += rp.eq(Mux(rp == S - 1, 0, rp + 1))
        m.d.comb += self.busy.eq(inflight != 0)
        return m
