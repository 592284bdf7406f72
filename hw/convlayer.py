"""A hidden conv layer, on a binary feature map or a first layer's B-bit pixels: pixel stream in, pixel stream
out: a unit of the conv front (hw/convfront.py).

    pixels (C_in bits) -> SlidingWindow -> LayerSequencer -> SystolicArray (P rows x L lanes)
                       -> ActivationBuffer (one output pixel's M bits, two banks) -> pixels (M bits)
    or, when the folding reads a window faster than the serial generator emits one (Conv.column_window):
    pixels -> ColumnWindow (hw/colwindow.py) -> LayerSequencer -> SystolicArray -> PixelCollector (hw/collector.py,
              Conv.collector_slots slots) -> pixels
    with Q = Conv.window_parallelism (sequencer, array, collector) groups taking alternate windows, merged in order.

The dense layer's machinery runs unchanged once per output pixel: to the sequencer a window is an input
vector of K = k·k·C bits (read word by word, once per pass of its neurons) and an output pixel is a layer
output of M bits. An output pixel leaves as one beat as soon as its last neuron is in; its bank is then free.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from fedxnor.hw.array import SystolicArray
from fedxnor.hw.buffers import ActivationBuffer
from fedxnor.hw.collector import PixelCollector
from fedxnor.hw.colwindow import ColumnWindow
from fedxnor.hw.sequencer import LayerSequencer
from fedxnor.hw.window import SlidingWindow


class ConvLayer(wiring.Component):
    def __init__(self, info, weight_words, threshold_words, *, stages: int | None = None, column: bool | None = None):
        """column: build the column-parallel generator (True) or the serial one (False); None: the folding's rule,
        Conv.column_window, which the cycle and cost models follow (force it only to test both)."""
        spec = info.spec
        if spec.kind != "conv" or spec.is_output:
            raise ValueError("ConvLayer runs hidden conv layers")
        self.info = info
        self.column = spec.column_window(info.fold) if column is None else bool(column)
        shape = dict(in_h=spec.in_h, in_w=spec.in_w, in_c=spec.in_c, k=spec.k, stride=spec.stride, pad=spec.pad,
                     lanes=info.simd, bits=spec.planes)
        # Q arrays take alternate windows where the fastest folding still spends B planes a window (Conv.window_parallelism)
        self.Q = spec.window_parallelism(info.fold) if self.column else 1
        self.window = ColumnWindow(**shape, groups=self.Q) if self.column else SlidingWindow(**shape)
        self.arrays = [SystolicArray(info, weight_words, threshold_words, stages=stages) for _ in range(self.Q)]
        self.seqs = [LayerSequencer(a.shape) for a in self.arrays]
        self.array, self.seq = self.arrays[0], self.seqs[0]
        if self.column:
            self.collects = [PixelCollector(spec.out_c, info.pe, spec.collector_slots(info.fold)) for _ in range(self.Q)]
            self.collect = self.collects[0]
        else:  # one pixel's outputs; read by no sequencer, so a bank counts as consumed the moment it is full
            self.collect = ActivationBuffer(spec.out_c, info.pe, spec.out_c, debug=True)
        super().__init__({
            "pixels": In(stream.Signature(spec.in_c * spec.planes)),
            "out": Out(stream.Signature(spec.out_c)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.window = win = self.window
        wiring.connect(m, wiring.flipped(self.pixels), win.pixels)
        if self.column:
            return self._column(m)
        m.submodules.array, m.submodules.seq, m.submodules.collect = self.array, self.seq, self.collect
        arr, seq, col = self.array, self.seq, self.collect
        wiring.connect(m, seq.rd, win.rd)
        m.d.comb += arr.tok.eq(seq.tok)
        wiring.connect(m, seq.claim, col.claim)
        wiring.connect(m, arr.rows, col.rows)
        # the collector's "consumer" side: release each bank as soon as it is full (its bits leave by the tap)
        rb = Signal()
        m.d.comb += [col.rd.bank.eq(rb), col.rd.release.eq(col.rd.ready.bit_select(rb, 1))]
        with m.If(col.rd.release):
            m.d.sync += rb.eq(~rb)
        # out: the debug tap of the collector, one beat per pixel, in pixel order
        ob = Signal()
        m.d.comb += [col.dbg.bank.eq(ob), self.out.valid.eq(col.dbg.avail.bit_select(ob, 1)),
                     self.out.payload.eq(col.dbg.bits)]
        sent = self.out.valid & self.out.ready
        m.d.comb += col.dbg.ack.eq(sent)
        with m.If(sent):
            m.d.sync += ob.eq(~ob)
        m.d.comb += self.busy.eq(win.busy | seq.running | col.busy)
        return m

    def _column(self, m: Module) -> Module:
        """Q (sequencer, array, pixel ring) groups, group g taking windows g, g + Q, ...; their pixels merged back in
        window order, a group at a time."""
        og = Signal(range(self.Q))  # the group whose pixel goes out next
        busy = self.window.busy
        for g, (rd, seq, arr, col) in enumerate(zip(self.window.reads, self.seqs, self.arrays, self.collects)):
            sfx = "" if g == 0 else f"_{g}"
            m.submodules["seq" + sfx], m.submodules["array" + sfx], m.submodules["collect" + sfx] = seq, arr, col
            wiring.connect(m, seq.rd, rd)
            m.d.comb += arr.tok.eq(seq.tok)
            wiring.connect(m, seq.claim, col.claim)
            wiring.connect(m, arr.rows, col.rows)
            with m.If(og == g):
                m.d.comb += [self.out.valid.eq(col.out.valid), self.out.payload.eq(col.out.payload),
                             col.out.ready.eq(self.out.ready)]
            busy = busy | seq.running | col.busy
        with m.If(self.out.valid & self.out.ready):
            m.d.sync += og.eq(Mux(og == self.Q - 1, 0, og + 1))
        m.d.comb += self.busy.eq(busy)
        return m
