"""DebugMerge: several layers' debug streams into the one debug port, each beat tagged with its layer.

    in_[0..n-1] (layer j's pieces, data bits) -> round-robin -> out: {data, tag = tags[j]} (contract/beats.py)
    (an input whose tag is None brings its own: the dense layers' beats, several layers on one stream)

Layers of a conv network produce feature-map pixels at the same time for different images, so their beats
interleave; the tag lets the receiver split them (BeatGeometry.split_debug) and each layer's own beats keep
their order. Round-robin, so no layer waits behind a busier one for more than n − 1 beats. The output is a
register: one beat per cycle, and the arbiter's select does not reach the port's consumer.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from fedxnor.contract.bits import bits_for


class DebugMerge(wiring.Component):
    def __init__(self, widths: list[int], tags: list[int | None], data_width: int, tag_width: int):
        self.widths, self.tags, self.data_width, self.tag_width = list(widths), list(tags), data_width, tag_width
        fixed = [t for t in tags if t is not None]
        if len(widths) != len(tags) or any(w > data_width + (tag_width if t is None else 0) for w, t in zip(widths, tags)) \
                or any(t >= 1 << tag_width for t in fixed):
            raise ValueError("DebugMerge: one tag per input, inputs no wider than the data, tags within the tag width")
        members = {f"in_{j}": In(stream.Signature(w)) for j, w in enumerate(widths)}
        members["out"] = Out(stream.Signature(data_width + tag_width))
        super().__init__(members)

    def inputs(self) -> list:
        return [getattr(self, f"in_{j}") for j in range(len(self.widths))]

    def elaborate(self, platform):
        m = Module()
        ins, n, out = self.inputs(), len(self.widths), self.out
        after = Signal(bits_for(n))  # the input granted last: the search starts after it
        load = ~out.valid | out.ready
        with m.If(out.valid & out.ready):
            m.d.sync += out.valid.eq(0)
        # priority order after `after`: (after + 1) % n first; the first valid one in that order wins
        for last in range(n):
            with m.If(after == last):
                earlier = None  # some input before j in this order is valid: j waits
                for step in range(n):
                    j = (last + 1 + step) % n
                    take = load & ins[j].valid if earlier is None else load & ins[j].valid & ~earlier
                    m.d.comb += ins[j].ready.eq(take)
                    with m.If(take):
                        m.d.sync += [out.valid.eq(1), out.payload.eq(ins[j].payload | ((self.tags[j] or 0) << self.data_width)),
                                     after.eq(j)]
                    earlier = ins[j].valid if earlier is None else earlier | ins[j].valid
        return m
