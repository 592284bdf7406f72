"""A toy accelerator with NetworkTop's ports: for testing the host link without a model.

It XORs the beats of an image together and answers class = that word's low bits
(mod the class count), after a few cycles of pretend work; `cycles` counts the
cycles from the first beat to the result. `toy_class` is its Python model. It is
also a bring-up design: a board running it proves the UART link before a model
is loaded.
"""

from __future__ import annotations

import numpy as np
from amaranth import Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from fedxnor.contract.beats import BeatGeometry


def class_width(num_classes: int) -> int:
    return max(1, (num_classes - 1).bit_length())


class ToyCore(wiring.Component):
    def __init__(self, geometry: BeatGeometry, work_cycles: int = 7):
        self.geometry = geometry
        self.work_cycles = work_cycles
        super().__init__({
            "image": In(stream.Signature(unsigned(geometry.in_width))),
            "result": Out(stream.Signature(unsigned(class_width(geometry.num_classes)))),
            "busy": Out(1),
            "cycles": Out(32),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        g = self.geometry
        cw = class_width(g.num_classes)
        acc = Signal(g.in_width)
        beat = Signal(range(g.in_beats + 1))
        wait = Signal(range(self.work_cycles + 1))
        count = Signal(32)
        low = Signal(cw + 1)
        m.d.comb += low.eq(acc[:cw])
        with m.FSM():
            with m.State("TAKE"):
                m.d.comb += self.image.ready.eq(1)
                with m.If(self.image.valid):
                    m.d.sync += [acc.eq(acc ^ self.image.payload), beat.eq(beat + 1)]
                    with m.If(beat == 0):
                        m.d.sync += count.eq(1)
                    with m.Else():
                        m.d.sync += count.eq(count + 1)
                    with m.If(beat == g.in_beats - 1):
                        m.d.sync += wait.eq(self.work_cycles)
                        m.next = "WORK"
                with m.Elif(beat != 0):
                    m.d.sync += count.eq(count + 1)
            with m.State("WORK"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += count.eq(count + 1)
                with m.If(wait == 0):
                    m.next = "GIVE"
                with m.Else():
                    m.d.sync += wait.eq(wait - 1)
            with m.State("GIVE"):
                m.d.comb += [self.result.valid.eq(1), self.busy.eq(1),
                             self.result.payload.eq(low - (low >= g.num_classes) * g.num_classes)]
                with m.If(self.result.ready):
                    m.d.sync += [acc.eq(0), beat.eq(0)]
                    m.next = "TAKE"
        m.d.comb += self.cycles.eq(count)
        return m


def toy_class(geometry: BeatGeometry, x: np.ndarray) -> int:
    """What ToyCore answers for one prepared image."""
    payload = geometry.link_bytes(x)
    acc = 0
    for j in range(geometry.in_beats):
        word = int.from_bytes(payload[j * geometry.beat_bytes : (j + 1) * geometry.beat_bytes], "little")
        acc ^= word & ((1 << geometry.in_width) - 1)
    low = acc & ((1 << class_width(geometry.num_classes)) - 1)
    return low - geometry.num_classes if low >= geometry.num_classes else low
