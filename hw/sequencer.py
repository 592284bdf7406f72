"""Layer sequencer: walks one image through a layer's ROM words, one token per cycle.

For each pass k (neurons k·P .. k·P + P − 1, one per row), for each bit plane
(MSB first; one plane for bipolar layers), for each word c, it issues a read of
input word c of that plane and, one cycle later (when the read data is there),
the token {chunk, weight address k·W + c, flags} to the array. No gaps within an
image; the next image starts on the cycle after the last token when its input
bank is full and its output is free (`start_ok`).

`start_reg` (ECP5, NetworkTop read_regs): `start_ok` is registered, so that the
buffer flags, their bank selects and the next layer's credit end at a register
instead of running on into the clock enables of every counter here and of the
read-select copies beside the buffer (6 LUT levels, 9.4-10.8 ns on the ULX3S).
A start then waits a cycle after the flags allow it, and none follows the cycle
of an issue, since that issue may itself have changed the flags (a start sets
the output bank's pending flag, a finish releases the input bank): one idle
cycle between images.

Read request: `rd_lin` = plane·W + c (linear index into a plane-major image
memory), `rd_word` = c, bank `rb`; `rd_data` must hold that word `read_latency`
cycles later (1, or 2 for a buffer with a registered read, hw/buffers.py); the
token's other fields are delayed to match.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from fedxnor.hw.array import ArrayShape, bits_for
from fedxnor.hw.fanout import COPY_MARK


def read_select(words: int) -> data.StructLayout:
    """One copy of a two-stage read's select: the word number and the bank."""
    return data.StructLayout({"word": bits_for(words), "bank": 1})


class LayerSequencer(wiring.Component):
    def __init__(self, shape: ArrayShape, *, read_latency: int = 1, read_copies: int = 0, start_reg: bool = False):
        """read_copies (two-stage reads): copies of (word, bank) in `rd_copies`, one per slice of a first-stage
        mux group of the input buffer (hw/buffers.py), so each slice's select is a register of its own."""
        if read_latency not in (1, 2):
            raise ValueError("read_latency must be 1 or 2")
        self.read_latency = read_latency
        self.start_reg = bool(start_reg)
        self.read_copies = read_copies if read_latency == 2 else 0
        self.shape = shape
        s = shape
        copies = {"rd_copies": Out(data.ArrayLayout(read_select(s.W), self.read_copies))} if self.read_copies else {}
        super().__init__({**copies,
            "start_ok": In(1),
            "rb": Out(1),
            "wb": Out(1),
            "running": Out(1),
            "started": Out(1),
            "finished": Out(1),
            "rd_lin": Out(bits_for(s.B * s.W)),
            "rd_word": Out(bits_for(s.W)),
            "rd_data": In(s.L),
            "tok": Out(s.token()),
        })

    def elaborate(self, platform):
        s = self.shape
        m = Module()
        c = Signal(bits_for(s.W))
        q = Signal(bits_for(s.B))
        k = Signal(s.kw)
        lin = Signal(bits_for(s.B * s.W))
        waddr = Signal(s.aw)
        wbase = Signal(s.aw)

        issue = Signal()
        start_ok = self.start_ok
        if self.start_reg:  # (module docstring) never OK the cycle after an issue: the flags may be stale
            start_ok = Signal()
            m.d.sync += start_ok.eq(self.start_ok & ~issue)
        m.d.comb += issue.eq(self.running | start_ok)
        end_word = c == s.W - 1
        end_pass = end_word & (q == s.B - 1)
        end_img = end_pass & (k == s.NP - 1)
        m.d.comb += [
            self.started.eq(issue & ~self.running),
            self.finished.eq(issue & end_img),
            self.rd_lin.eq(lin),
        ]
        # With a two-stage read (ECP5) the buffer's first-stage muxes take (word, bank) from copies of c and rb
        # of their own, one per slice of a mux group, beside it, while c and rb stay beside this sequencer (one
        # shared c was an ECP5 critical path: 5.6 ns of routing; one copy for all groups 3.3 ns plus a decode LUT
        # synthesis shared between groups; rb to a 128-lane mux 7.7 ns). The copies hold c and rb's values in
        # the same cycle: no cycle is added.
        c_rd = [Signal.like(c, name=f"c_{COPY_MARK}{j}") for j in range(self.read_copies)]
        rb_rd = [Signal(name=f"rb_{COPY_MARK}{j}") for j in range(self.read_copies)]
        m.d.comb += self.rd_word.eq(c)
        if self.read_copies:
            m.d.comb += [x.eq(Cat(cj, bj)) for x, cj, bj in zip(self.rd_copies, c_rd, rb_rd)]
        # The token's fields but the chunk, registered once per cycle of read latency.
        tok = Signal(s.token(), name="tok_ctl")
        m.d.sync += [
            tok.valid.eq(issue),
            tok.waddr.eq(waddr),
            tok.first.eq((c == 0) & (q == 0)),
            tok.pstart.eq(c == 0),
            tok.last.eq(end_pass),
            tok.imglast.eq(end_img),
            tok.k.eq(k),
            tok.bank.eq(self.wb),
        ]
        for _ in range(self.read_latency - 1):
            later = Signal(s.token(), name="tok_ctl_q")
            m.d.sync += later.eq(tok)
            tok = later
        m.d.comb += [getattr(self.tok, f).eq(getattr(tok, f)) for f in s.token().members if f != "chunk"]
        m.d.comb += self.tok.chunk.eq(self.rd_data)
        with m.If(issue):
            m.d.sync += [self.running.eq(~end_img), lin.eq(lin + 1), waddr.eq(waddr + 1)]
            m.d.sync += [x.eq(c + 1) for x in (c, *c_rd)]
            with m.If(end_word):
                m.d.sync += [q.eq(q + 1), waddr.eq(wbase)]
                m.d.sync += [x.eq(0) for x in (c, *c_rd)]
                with m.If(end_pass):
                    m.d.sync += [q.eq(0), lin.eq(0), k.eq(k + 1), waddr.eq(waddr + 1), wbase.eq(waddr + 1)]
                    with m.If(end_img):
                        m.d.sync += [k.eq(0), waddr.eq(0), wbase.eq(0),
                                     self.rb.eq(~self.rb), self.wb.eq(~self.wb)]
                        m.d.sync += [b.eq(~self.rb) for b in rb_rd]
        return m
