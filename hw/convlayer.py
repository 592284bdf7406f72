"""A hidden conv layer, on a binary feature map or a first layer's B-bit pixels: pixel stream in, pixel stream
out: a unit of the conv front (hw/convfront.py).

    pixels (C_in bits) -> SlidingWindow -> LayerSequencer -> SystolicArray (P rows x L lanes)
                       -> ActivationBuffer (one output pixel's M bits, two banks) -> pixels (M bits)
    or, when the folding reads a window faster than the serial generator emits one (Conv.column_window):
    pixels -> ColumnWindow (hw/colwindow.py) -> LayerSequencer -> SystolicArray -> PixelCollector (hw/collector.py,
              Conv.collector_slots slots) -> pixels

The dense layer's machinery runs unchanged once per output pixel: to the sequencer a window is an input
vector of K = k·k·C bits (read word by word, once per pass of its neurons) and an output pixel is a layer
output of M bits. An output pixel leaves as one beat as soon as its last neuron is in; its bank is then free.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
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
        self.window = ColumnWindow(**shape) if self.column else SlidingWindow(**shape)
        self.array = SystolicArray(info, weight_words, threshold_words, stages=stages)
        self.seq = LayerSequencer(self.array.shape)
        if self.column:
            self.collect = PixelCollector(spec.out_c, info.pe, spec.collector_slots(info.fold))
        else:  # one pixel's outputs; read by no sequencer, so a bank counts as consumed the moment it is full
            self.collect = ActivationBuffer(spec.out_c, info.pe, spec.out_c, debug=True)
        super().__init__({
            "pixels": In(stream.Signature(spec.in_c * spec.planes)),
            "out": Out(stream.Signature(spec.out_c)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.window, m.submodules.array = self.window, self.array
        m.submodules.seq, m.submodules.collect = self.seq, self.collect
        win, arr, seq, col = self.window, self.array, self.seq, self.collect
        wiring.connect(m, wiring.flipped(self.pixels), win.pixels)
        wiring.connect(m, seq.rd, win.rd)
        m.d.comb += arr.tok.eq(seq.tok)
        wiring.connect(m, seq.claim, col.claim)
        wiring.connect(m, arr.rows, col.rows)
        if self.column:
            wiring.connect(m, col.out, wiring.flipped(self.out))
            m.d.comb += self.busy.eq(win.busy | seq.running | col.busy)
            return m
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
