"""RamVectorBuffer: hw/vectorbuffer.py's two-bank vector buffer with its banks in a RAM instead of flip-flops, for
the vectors a small FPGA cannot keep in flip-flops: the flattened map a fully connected layer reads after the conv
layers (cnv-small's 800 bits were 1,600 flip-flops and as many LUTs of read mux) and large conv windows.
VectorBuffer builds it when contract/structure.py's vector_ram_width says so; the ports, the word layout and every
cycle are the flip-flop buffer's (contract/mapcycles.py counts with them unchanged).

    pieces (C bits) -> packer (the first n − 1 pieces of a RAM word) -> RAM: 2 banks x rows x Wm bits
                    -> rd: RAM word c // r, then its L-bit part c % r (r = Wm / L, a power of two)

Wm = lcm(C, L): a RAM word holds n = Wm / C whole pieces and r whole read words, so a piece is written in the cycle
it arrives (with the n − 1 before it, kept in the packer) and a read word is one RAM read. Split (the flattened map,
contract/structure.py vector_ram_width(split=True)): Wm = C / h, an EBR's width, so both banks fit one EBR; a piece is
then written as h RAM words, one a cycle, and taken (ready) with the last (contract/mapcycles.py MapBuffer). Word c of the vector is
bits [c·L, c·L + L): the NHWC flatten of docs/datapath.md for the map, the (ky, kx, c) window for a conv layer. The
vector's last RAM word is written with 0 past its last piece: the last read word's pad bits are inputs 0, which the
weights' pad bits (1) never count.

Read: one cycle latency, as the flip-flop buffer (InputReadSignature): the RAM's registered read (its output register
on iCE40 EBR), then the r:1 part select, whose select is registered beside it. Bank b is rows [b·rows, b·rows + rows)
(rows a power of two, the bank the address's top bit). The writer fills one bank while the reader reads the other,
so a read never meets a write of its address (no_rw_check: no bypass logic).
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from fedxnor.contract.bits import ceil_div
from fedxnor.contract.structure import vector_piece_cycles, vector_ram_rows, vector_ram_width
from fedxnor.hw.memread import registered_read
from fedxnor.hw.ports import InputReadSignature


class RamVectorBuffer(wiring.Component):
    def __init__(self, *, pieces: int, width: int, lanes: int, ram_width: int | None = None):
        """ram_width: the RAM word (default: contract/structure.py's rule); a multiple of `width` and `lanes`, a
        power-of-two multiple of `lanes`."""
        self.T, self.C, self.L = pieces, width, lanes
        wm = vector_ram_width(pieces, width, lanes) if ram_width is None else ram_width
        r = wm // lanes if wm else 0
        if not wm or (wm % width and width % wm) or wm % lanes or r & (r - 1):
            raise ValueError(f"a RAM vector buffer of {pieces} x {width}-bit pieces read in {lanes}-bit words cannot "
                             f"have {wm}-bit words")
        self.Wm, self.r = wm, r
        self.n = max(1, wm // width)  # pieces a RAM word (packed)
        self.h = vector_piece_cycles(width, wm)  # RAM words a piece (split: one written a cycle)
        self.words = ceil_div(pieces * width, lanes)
        self.rows = vector_ram_rows(pieces, width, wm)
        self.read_copies = 0  # one RAM read: no select copies
        super().__init__({
            "pieces": In(stream.Signature(width)),
            "rd": In(InputReadSignature(words=self.words, planes=1, lanes=lanes)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        L, r, rd = self.L, self.r, self.rd
        row_bits, sub_bits = (self.rows - 1).bit_length(), (r - 1).bit_length()
        mem = Memory(shape=self.Wm, depth=2 * self.rows, init=[], attrs={"no_rw_check": 1})
        m.submodules.mem = mem
        wr = mem.write_port()

        # read: RAM word c >> sub_bits of bank rd.bank, then part c mod r (its select registered with the read)
        row = Signal(max(1, row_bits))
        m.d.comb += row.eq(rd.word >> sub_bits)
        rdata = registered_read(m, mem, Cat(row[:row_bits], rd.bank) if row_bits else rd.bank)
        if r > 1:
            part = Signal(sub_bits, reset_less=True)
            m.d.sync += part.eq(rd.word[:sub_bits])
            m.d.comb += rd.data.eq(Array(rdata[j * L:(j + 1) * L] for j in range(r))[part])
        else:
            m.d.comb += rd.data.eq(rdata)

        if self.h > 1:
            self._split_write(m, wr, row_bits)
        else:
            self._packed_write(m, wr, row_bits)
        return m

    def _split_write(self, m: Module, wr, row_bits: int) -> None:
        """A piece of h RAM words: part q written in the q-th cycle it is offered (the payload is held while valid),
        the handshake on the last part, as the image buffer takes a beat's planes (hw/buffers.py)."""
        rd, h = self.rd, self.h
        full = Signal(2)
        wb = Signal()
        q = Signal(range(h))
        wrow = Signal(range(self.rows))
        free = ~full.bit_select(wb, 1)
        take = self.pieces.valid & free
        last = wrow == self.T * h - 1
        m.d.comb += [self.pieces.ready.eq(free & (q == h - 1)), wr.addr.eq(Cat(wrow, wb) if row_bits else wb),
                     wr.data.eq(self.pieces.payload.word_select(q, self.Wm)), wr.en.eq(take)]
        with m.If(take):
            m.d.sync += [q.eq(q + 1), wrow.eq(wrow + 1)]
            with m.If(q == h - 1):
                m.d.sync += q.eq(0)
            with m.If(last):
                m.d.sync += [wrow.eq(0), wb.eq(~wb), full.bit_select(wb, 1).eq(1)]
        with m.If(rd.release):
            m.d.sync += full.bit_select(rd.bank, 1).eq(0)
        m.d.comb += [rd.ready.eq(full), self.busy.eq(full.any() | (wrow != 0))]

    def _packed_write(self, m: Module, wr, row_bits: int) -> None:
        C, n, rd = self.C, self.n, self.rd
        # write: pieces fill slots 0..n-1 of RAM word `wrow`; the piece of the last slot goes to the RAM with the packer's
        # n - 1 (the vector's last piece too, with zeros above it)
        full = Signal(2)  # bank b holds a whole vector not yet released
        wb = Signal()  # the bank being filled
        slot = Signal(range(n))
        wrow = Signal(range(self.rows))
        pay = self.pieces.payload
        packer = [Signal(C, name=f"packer{j}", reset_less=True) for j in range(n - 1)]
        row_last, slot_last = divmod(self.T - 1, n)
        last = (wrow == row_last) & (slot == slot_last)  # the vector's last piece
        free = ~full.bit_select(wb, 1)
        take = self.pieces.valid & free
        m.d.comb += self.pieces.ready.eq(free)
        parts = []
        for j in range(n):
            normal = pay if j == n - 1 else packer[j]
            if slot_last == n - 1:
                parts.append(normal)
            else:  # the last word: the packer below the last piece, the piece, zeros above it
                end = packer[j] if j < slot_last else pay if j == slot_last else Const(0, C)
                parts.append(Mux(last, end, normal))
        m.d.comb += [wr.addr.eq(Cat(wrow, wb) if row_bits else wb), wr.data.eq(Cat(*parts)),
                     wr.en.eq(take & ((slot == n - 1) | last))]
        with m.If(take):
            for j in range(n - 1):
                with m.If(slot == j):
                    m.d.sync += packer[j].eq(pay)
            m.d.sync += slot.eq(slot + 1)
            with m.If(slot == n - 1):
                m.d.sync += [slot.eq(0), wrow.eq(wrow + 1)]
            with m.If(last):
                m.d.sync += [slot.eq(0), wrow.eq(0), wb.eq(~wb), full.bit_select(wb, 1).eq(1)]
        with m.If(rd.release):
            m.d.sync += full.bit_select(rd.bank, 1).eq(0)
        m.d.comb += [rd.ready.eq(full), self.busy.eq(full.any() | (slot != 0) | (wrow != 0))]
