"""Argmax across the passes of the output layer, and the result FIFO.

The output array hands over, once per pass, the best (score, index) of that
pass's P neurons. Passes come in increasing neuron order, so a strict `>`
keeps the lowest index on ties (docs/datapath.md). On an image's last pass the
class goes into a 2-entry FIFO that drives the `result` stream; the output
layer starts an image only when a FIFO entry is reserved for it (`claim.free`), so
back-pressure stalls the pipeline and never drops a result.

`result_reg` (ECP5, NetworkTop read_regs): the class reaches the FIFO one cycle later; the
compare's carry chain and the FIFO's LUT RAM were one 8.9 ns path on the ULX3S. When passes are
at least two cycles apart (W·B tokens each, the usual case), the compare itself is registered
and the running best updated from it a cycle later (the compare -> best clock-enable loop was
next, 8.5 ns); with one-token passes the next compare would see a stale best, so there only the
class is registered.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from fedxnor.hw.array import ArrayShape
from fedxnor.hw.ports import BankClaimSignature

RESULT_DEPTH = 2


class ArgmaxMerge(wiring.Component):
    def __init__(self, shape: ArrayShape, *, result_reg: bool = False):
        self.shape = shape
        self.result_reg = bool(result_reg)
        super().__init__({
            "arg": In(shape.arg()),
            "claim": In(BankClaimSignature()),  # the output layer starts an image; free: it may (either bank)
            "result": Out(stream.Signature(shape.class_width)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        s = self.shape
        m = Module()
        fifo = SyncFIFO(width=s.class_width, depth=RESULT_DEPTH)
        m.submodules.fifo = fifo
        best = Signal.like(self.arg.score)
        idx = Signal(s.class_width)
        a = self.arg
        if self.result_reg and s.W * s.B >= 2:  # passes >= 2 cycles apart: compare, then update
            a_q = Signal.like(a)
            gt_q = Signal()
            m.d.sync += [a_q.eq(a), gt_q.eq(a.score > best)]
            take = a_q.first_pass | gt_q
            with m.If(a_q.valid & take):
                m.d.sync += [best.eq(a_q.score), idx.eq(a_q.idx)]
            w_en, w_data = a_q.valid & a_q.imglast, Mux(take, a_q.idx, idx)
        else:
            take = a.first_pass | (a.score > best)
            with m.If(a.valid):
                m.d.sync += [best.eq(Mux(take, a.score, best)), idx.eq(Mux(take, a.idx, idx))]
            w_en, w_data = a.valid & a.imglast, Mux(take, a.idx, idx)
            if self.result_reg:
                w_en_q, w_data_q = Signal(), Signal(s.class_width, reset_less=True)
                m.d.sync += [w_en_q.eq(w_en), w_data_q.eq(w_data)]
                w_en, w_data = w_en_q, w_data_q
        m.d.comb += [fifo.w_en.eq(w_en), fifo.w_data.eq(w_data)]
        m.d.comb += [self.result.valid.eq(fifo.r_rdy), self.result.payload.eq(fifo.r_data),
                     fifo.r_en.eq(self.result.ready)]
        outstanding = Signal(range(RESULT_DEPTH + 1))
        popped = self.result.valid & self.result.ready
        m.d.sync += outstanding.eq(outstanding + self.claim.start - popped)
        credit = outstanding < RESULT_DEPTH
        m.d.comb += [self.claim.free.eq(Cat(credit, credit)), self.busy.eq(outstanding != 0)]
        return m
