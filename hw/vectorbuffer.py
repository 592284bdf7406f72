"""VectorBuffer: a vector arriving as a stream of equal pieces, kept whole in one of two banks and read
in L-bit words through InputReadSignature, as an activation buffer is read (one cycle latency, ready /
release per bank). Piece i holds elements [i·width, (i + 1)·width) of the vector, B bits each (element j of a
piece in bits [j·B, j·B + B), the image beats' layout); the last word is padded with 0.

B-bit elements (a first layer's pixels) are kept as B bit planes and read plane by plane, MSB plane first,
at rd.lin = q·W + c (plane B − 1 − q, word c), the order the sequencer walks an unsigned layer in.

Two users: a conv layer's window (the k·k taps of hw/linebuffer.py,
C channel bits each: the (ky, kx, c) order of contract.conv) and the feature map a fully connected layer
reads after a conv network (its pixels in raster order: the NHWC flatten of docs/datapath.md).

Storage: flip-flops (here) or, when contract/structure.py's vector_ram_width gives a RAM word for the vector (a
binary vector of at least VECTOR_RAM_MIN_BITS bits whose pieces and read words pack into a RAM word), a RAM
(hw/mapbuffer.py RamVectorBuffer) with the same ports, layout and cycles; `store` forces one or the other.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from fedxnor.contract.bits import ceil_div
from fedxnor.contract.structure import vector_piece_cycles, vector_ram_width, vector_ram_word
from fedxnor.hw.mapbuffer import RamVectorBuffer
from fedxnor.hw.ports import InputReadSignature, bits_for

STORES = ("auto", "ff", "ram")


class VectorBuffer(wiring.Component):
    def __init__(self, *, pieces: int, width: int, lanes: int, bits: int = 1, store: str = "auto", split: bool = False):
        """store: "auto" (contract/structure.py's rule), "ff" or "ram" (an error if the vector cannot be a RAM's).
        split: a RAM may take a wide piece in several cycles (the flattened map: vector_ram_width split)."""
        if store not in STORES:
            raise ValueError(f"store {store!r}: choose one of {', '.join(STORES)}")
        self.T, self.C, self.L, self.B = pieces, width, lanes, bits
        self.words = ceil_div(pieces * width, lanes)
        self.ram_width = {"ff": 0, "auto": vector_ram_width(pieces, width, lanes, bits, split=split),
                          "ram": vector_ram_width(pieces, width, lanes, bits, split=True) if split
                          else vector_ram_word(width, lanes, bits)}[store]
        self.piece_cycles = vector_piece_cycles(width, self.ram_width)
        if store == "ram" and not self.ram_width:
            raise ValueError(f"{pieces} pieces of {width} x {bits} bits read in {lanes}-bit words do not pack into a RAM word")
        self.read_copies = 0  # one read mux, no select copies (the sequencer asks every input buffer)
        super().__init__({
            "pieces": In(stream.Signature(width * bits)),
            "rd": In(InputReadSignature(words=self.words, planes=bits, lanes=lanes)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        if self.ram_width:
            m.submodules.ram = ram = RamVectorBuffer(pieces=self.T, width=self.C, lanes=self.L, ram_width=self.ram_width)
            wiring.connect(m, wiring.flipped(self.pieces), ram.pieces)
            wiring.connect(m, wiring.flipped(self.rd), ram.rd)
            m.d.comb += self.busy.eq(ram.busy)
            return m
        C, L, B, rd = self.C, self.L, self.B, self.rd
        # vec[bank][plane]: bits past T·C stay 0
        vec = [[Signal(self.words * L, name=f"vector{b}_plane{q}", reset_less=True) for q in range(B)] for b in range(2)]
        pay = self.pieces.payload
        full = Signal(2)  # bank b holds a whole vector not yet released
        wb = Signal()  # the bank being filled
        i = Signal(range(self.T))  # its next piece
        free = ~full.bit_select(wb, 1)
        m.d.comb += self.pieces.ready.eq(free)
        with m.If(self.pieces.valid & free):
            for b in range(2):
                for j in range(self.T):
                    with m.If((wb == b) & (i == j)):
                        for q in range(B):
                            m.d.sync += vec[b][q][j * C:(j + 1) * C].eq(Cat(pay[e * B + q] for e in range(C)))
            m.d.sync += i.eq(i + 1)
            with m.If(i == self.T - 1):
                m.d.sync += [i.eq(0), wb.eq(~wb), full.bit_select(wb, 1).eq(1)]
        per_bank = B * self.words  # plane-major, MSB plane first: word c of plane B - 1 - q at q·W + c
        words = [vec[b][B - 1 - q][c * L:(c + 1) * L] for b in range(2) for q in range(B) for c in range(self.words)]
        sel = Signal(bits_for(2 * per_bank) + 1)
        m.d.comb += sel.eq(rd.bank * per_bank + (rd.lin if B > 1 else rd.word))
        m.d.sync += rd.data.eq(Array(words)[sel])
        with m.If(rd.release):
            m.d.sync += full.bit_select(rd.bank, 1).eq(0)
        m.d.comb += [rd.ready.eq(full), self.busy.eq(full.any() | (i != 0))]
        return m
