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

Ports (hw/ports.py): `rd` reads the input buffer — `rd.lin` = plane·W + c (linear
index into a plane-major image memory), `rd.word` = c, bank `rd.bank`; `rd.data`
must hold that word `read_latency` cycles later (1, or 2 for a buffer with a
registered read, hw/buffers.py); the token's other fields are delayed to match.
`claim` starts an image in the output's bank `claim.bank`. An image starts when
its input bank is ready (`rd.ready`) and its output bank is free (`claim.free`).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from fedxnor.hw.array import ArrayShape
from fedxnor.hw.fanout import COPY_MARK
from fedxnor.hw.ports import BankClaimSignature, InputReadSignature, bits_for


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
        super().__init__({
            "rd": Out(InputReadSignature(words=s.W, planes=s.B, lanes=s.L, copies=self.read_copies)),
            "claim": Out(BankClaimSignature()),
            "running": Out(1),
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

        rd, claim = self.rd, self.claim
        rb, wb = Signal(), Signal()  # the input bank read and the output bank written, flipped per image
        issue = Signal()
        start_ok = Signal()
        m.d.comb += start_ok.eq(rd.ready.bit_select(rb, 1) & claim.free.bit_select(wb, 1))
        if self.start_reg:  # (module docstring) never OK the cycle after an issue: the flags may be stale
            start_ok_q = Signal()
            m.d.sync += start_ok_q.eq(start_ok & ~issue)
            start_ok = start_ok_q
        m.d.comb += issue.eq(self.running | start_ok)
        end_word = c == s.W - 1
        end_pass = end_word & (q == s.B - 1)
        end_img = end_pass & (k == s.NP - 1)
        m.d.comb += [
            claim.start.eq(issue & ~self.running),
            claim.bank.eq(wb),
            rd.bank.eq(rb),
            rd.release.eq(issue & end_img),
            rd.lin.eq(lin),
        ]
        # With a two-stage read (ECP5) the buffer's first-stage muxes take (word, bank) from copies of c and rb
        # of their own, one per slice of a mux group, beside it, while c and rb stay beside this sequencer (one
        # shared c was an ECP5 critical path: 5.6 ns of routing; one copy for all groups 3.3 ns plus a decode LUT
        # synthesis shared between groups; rb to a 128-lane mux 7.7 ns). The copies hold c and rb's values in
        # the same cycle: no cycle is added.
        c_rd = [Signal.like(c, name=f"c_{COPY_MARK}{j}") for j in range(self.read_copies)]
        rb_rd = [Signal(name=f"rb_{COPY_MARK}{j}") for j in range(self.read_copies)]
        m.d.comb += rd.word.eq(c)
        if self.read_copies:
            m.d.comb += [x.eq(Cat(cj, bj)) for x, cj, bj in zip(rd.copies, c_rd, rb_rd)]
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
            tok.bank.eq(wb),
        ]
        for _ in range(self.read_latency - 1):
            later = Signal(s.token(), name="tok_ctl_q")
            m.d.sync += later.eq(tok)
            tok = later
        m.d.comb += [getattr(self.tok, f).eq(getattr(tok, f)) for f in s.token().members if f != "chunk"]
        m.d.comb += self.tok.chunk.eq(rd.data)
        with m.If(issue):
            m.d.sync += [self.running.eq(~end_img), lin.eq(lin + 1), waddr.eq(waddr + 1)]
            m.d.sync += [x.eq(c + 1) for x in (c, *c_rd)]
            with m.If(end_word):
                m.d.sync += [q.eq(q + 1), waddr.eq(wbase)]
                m.d.sync += [x.eq(0) for x in (c, *c_rd)]
                with m.If(end_pass):
                    m.d.sync += [q.eq(0), lin.eq(0), k.eq(k + 1), waddr.eq(waddr + 1), wbase.eq(waddr + 1)]
                    with m.If(end_img):
                        m.d.sync += [k.eq(0), waddr.eq(0), wbase.eq(0), rb.eq(~rb), wb.eq(~wb)]
                        m.d.sync += [b.eq(~rb) for b in rb_rd]
        return m
