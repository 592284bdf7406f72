"""Processing rows and the systolic array of one layer.

A token is one L-bit input chunk plus the control that travels with it. The
array input `tok` enters row 0; every row registers it and hands it on, so a
chunk moves one row per cycle (no wide broadcast). Row p's weight ROM is
addressed one stage early, from the token at the previous row's register, so
its word is ready when the token reaches row p.

Token fields are split in two chains:
* early (chunk, waddr): what the ROM read and the lane group need;
* late (valid, first, pstart, last, imglast, k, bank, pcx): what the accumulator
  needs, delayed by the lane group's latency R once at the array input, so each
  row sees them exactly when its adder tree delivers the count.

Accumulator (Horner over bit planes, MSB plane first, docs/datapath.md):
    first token of a neuron:   acc = d
    first word of a plane:     acc = 2·acc + d
    otherwise:                 acc = acc + d
with d = popcount(XNOR(a, w)) for bipolar layers and d = 2·popcount(x_b AND w)
− popcount(x_b) for unsigned ones; popcount(x_b) is computed once at the array
input (`pcx`) and travels with the token. Signed (two's complement) inputs: the
MSB plane weighs −2^(B−1), so its tokens add −d instead of d; one flag (`neg`,
set by a neuron's first token, cleared by the next plane's start) is kept once
at the array input and travels with the token, and each row subtracts instead
of adding: a few gates, no multiplier.

Hidden rows compare acc >= T (T from the per-row threshold ROM) on the last
token of a neuron and hand (bit, bank) to the activation buffer. Output rows
pass a running (score, index) argmax along a chain instead; the strict `>`
keeps the lowest index on ties because indices grow along the chain.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from fedxnor.contract.bits import to_signed
from fedxnor.contract.structure import ROM_BITS_PER_ADDRESS, SMALL_ROM_BITS, count_width, slice_edges, tree_levels
from fedxnor.hw.fanout import register_copies
from fedxnor.hw.lanes import LaneGroup
from fedxnor.hw.ports import RowOutputSignature, WeightWriteSignature, bits_for
from fedxnor.hw.weightstore import WeightStore


class ArrayShape:
    """Widths of one layer's array, derived from its manifest entry."""

    def __init__(self, info, *, stages: int | None = None, store: str | None = None, in_reg: bool = False,
                 rom_logic: bool = False, tile_depth: int | None = None):
        self.info = info
        self.store = store  # None: weight ROMs initialised by the bitstream; a hw.weightstore kind: written at run time
        self.P, self.L = info.pe, info.simd
        self.W = info.words_per_row
        self.NP = info.neurons_per_pe
        self.B = info.input_bits if info.encoding != "bipolar" else 1
        self.unsigned = info.encoding != "bipolar"  # B-bit planes, AND lanes (unsigned or signed)
        self.signed = info.encoding == "signed"  # the MSB plane's term is subtracted
        self.is_output = info.is_output
        self.depth = info.weight_depth
        self.aw = bits_for(self.depth)
        self.kw = bits_for(self.NP)
        self.cw = count_width(self.L)
        self.acc_width = info.acc_width  # Horner partial sums |S| <= N(2^B - 1) stay in range
        self.tw = info.threshold_width
        self.class_width = bits_for(info.fan_out)
        self.stages = stages
        # in_reg: two registers between a weight RAM and its lanes (ECP5, see ProcessingRow); the chunk, which
        # needs one, travels a cycle behind its weight address instead, so both arrive together
        self.in_reg = bool(in_reg)
        self.rom_logic = bool(rom_logic)  # weight ROMs as LUT logic, never block RAM (NetworkTop weight_roms)
        # a block RAM weight ROM deeper than tile_depth words is built as tiles of that depth, each with its own
        # read register in place of w_near (NetworkTop weight_tiles; needs in_reg, whose second register follows)
        deep = tile_depth is not None and self.depth > tile_depth
        self.tile_depth = tile_depth if deep and self.in_reg and not (store or self.rom_logic) else None
        self.R = (tree_levels(self.L) if stages is None else stages) + 2 * self.in_reg  # token in -> count

    def early(self) -> data.StructLayout:
        return data.StructLayout({"chunk": self.L, "waddr": self.aw})

    def late(self) -> data.StructLayout:
        fields = {"valid": 1, "first": 1, "pstart": 1, "last": 1, "imglast": 1, "k": self.kw, "bank": 1, "pcx": self.cw}
        return data.StructLayout({**fields, "neg": 1} if self.signed else fields)

    def token(self) -> data.StructLayout:
        return data.StructLayout({"valid": 1, "chunk": self.L, "waddr": self.aw, "first": 1, "pstart": 1,
                                  "last": 1, "imglast": 1, "k": self.kw, "bank": 1})

    def arg(self) -> data.StructLayout:
        return data.StructLayout({"valid": 1, "score": signed(self.acc_width), "idx": self.class_width,
                                  "first_pass": 1, "imglast": 1})


LOGIC_ROM = {"rom_style": "logic", "ram_style": "logic"}  # Yosys: build this memory of LUTs


def small_rom_attrs(bits: int) -> dict:
    """Tiny ROMs go to logic: a 4 Kbit EBR is the scarce resource on iCE40."""
    return LOGIC_ROM if bits <= SMALL_ROM_BITS else {}


class ProcessingRow(wiring.Component):
    """Row p of a layer: weight ROM, lane group, accumulator, threshold compare or argmax step."""

    def __init__(self, shape: ArrayShape, p: int, weight_words, threshold_words=None):
        self.shape = shape
        self.p = p
        self.weight_words = list(weight_words)
        self.threshold_words = None if threshold_words is None else list(threshold_words)
        members = {
            "e_prev": In(shape.early()),
            "e_out": Out(shape.early()),
            "l_prev": In(shape.late()),
            "l_out": Out(shape.late()),
        }
        if shape.store:
            members.update({"wen": In(1), "waddr": In(shape.aw), "wdata": In(shape.L)})
        if shape.is_output:
            members.update({"arg_prev": In(shape.arg()), "arg_out": Out(shape.arg())})
        else:
            members.update({"shift": Out(1), "bit": Out(1), "bank": Out(1), "done": Out(1)})
        super().__init__(members)

    def elaborate(self, platform):
        s = self.shape
        m = Module()
        if s.store:  # written at run time (hw/weightstore.py): same one-cycle read as the ROM
            rd = WeightStore(s.L, s.depth, cells=False if s.store == "ram" else None)
            m.submodules.store = rd
            m.d.comb += [rd.raddr.eq(self.e_prev.waddr), rd.wen.eq(self.wen), rd.waddr.eq(self.waddr),
                         rd.wdata.eq(self.wdata)]
            rdata = rd.rdata
        elif s.in_reg and (s.rom_logic or s.L * s.depth <= SMALL_ROM_BITS):
            rdata = self._sliced_logic_rom(m)
        elif s.tile_depth:
            rdata = self._tiled_rom(m)
        else:
            rom = Memory(shape=unsigned(s.L), depth=s.depth, init=self.weight_words,
                         attrs=LOGIC_ROM if s.rom_logic else small_rom_attrs(s.L * s.depth))
            m.submodules.rom = rom
            rd = rom.read_port()
            m.d.comb += rd.addr.eq(self.e_prev.waddr)
            rdata = rd.data
        # The token hops one row per cycle. Only its valid bit needs a reset (what it guards is don't-care):
        # thousands of reset-less flip-flops keep the reset net small (an ECP5 timing limit at 120 MHz).
        e_q = Signal(s.early(), reset_less=True)
        l_q = Signal(s.late(), reset_less=True)
        valid_q = Signal()
        m.d.sync += [e_q.eq(self.e_prev), l_q.eq(self.l_prev), valid_q.eq(self.l_prev.valid)]
        m.d.comb += [self.e_out.eq(e_q), self.l_out.eq(l_q), self.l_out.valid.eq(valid_q)]

        lanes = LaneGroup(s.L, mode="and" if s.unsigned else "xnor", stages=s.stages, in_reg=s.in_reg)
        m.submodules.lanes = lanes
        if s.in_reg and not s.tile_depth:  # (a tiled ROM registers each tile's read itself)
            # An ECP5 DP16KD's clock-to-output (5.8 ns, no output register) leaves ~2.4 ns of a 120 MHz cycle: a
            # flip-flop whose only load is the next flip-flop can sit beside the RAM, which the lanes' own input
            # register, placed by the lanes, could not (11.35 ns path). The chunk lags its address by one cycle
            # (SystolicArray) to match.
            w_near = Signal(s.L, name="w_near", reset_less=True)
            m.d.sync += w_near.eq(rdata)
            rdata = w_near
        m.d.comb += [lanes.a.eq(self.e_out.chunk), lanes.w.eq(rdata)]

        late = self.l_out
        acc = Signal(signed(s.acc_width), reset_less=True)  # set by each neuron's first token
        if s.unsigned:
            d = Signal(signed(s.cw + 2))
            m.d.comb += d.eq((lanes.count << 1) - late.pcx)
        else:
            d = lanes.count
        # One adder: acc' = base + d, base = 0 / 2·acc / acc (a 4-input function per bit).
        base = Signal(signed(s.acc_width))
        if s.unsigned and s.B > 1:
            m.d.comb += base.eq(Mux(late.first, 0, Mux(late.pstart, acc << 1, acc)))
        else:  # one plane: no doubling
            m.d.comb += base.eq(Mux(late.first, 0, acc))
        with m.If(late.valid):
            if s.signed:  # a token of the MSB plane (weight −2^(B−1)): subtract its term
                m.d.sync += acc.eq(Mux(late.neg, base - d, base + d))
            else:
                m.d.sync += acc.eq(base + d)
        # l2: the late fields one cycle on, aligned with the finished accumulator.
        fin = Signal()  # last token of a neuron has been accumulated
        imglast = Signal()
        k = Signal(s.kw)
        bank = Signal()
        m.d.sync += [fin.eq(late.valid & late.last), imglast.eq(late.imglast), k.eq(late.k), bank.eq(late.bank)]

        if s.is_output:
            prev = self.arg_prev
            better = ~prev.valid | (acc > prev.score)
            m.d.sync += [
                self.arg_out.valid.eq(fin),
                self.arg_out.score.eq(Mux(better, acc, prev.score)),
                self.arg_out.idx.eq(Mux(better, k * s.P + self.p, prev.idx)),
                self.arg_out.first_pass.eq(k == 0),
                self.arg_out.imglast.eq(imglast),
            ]
        else:
            trom = Memory(shape=signed(s.tw), depth=s.NP,
                          init=[to_signed(v, s.tw) for v in self.threshold_words],
                          attrs=small_rom_attrs(s.tw * s.NP))
            m.submodules.trom = trom
            trd = trom.read_port()
            m.d.comb += [
                trd.addr.eq(late.k),
                self.shift.eq(fin),
                self.bit.eq(acc >= trd.data),
                self.bank.eq(bank),
                self.done.eq(fin & imglast),
            ]
        return m

    def _tiled_rom(self, m: Module):
        """The weight ROM as tiles of tile_depth words, each read into its own register, then the tile mux, selected
        by the address's high bits two cycles on: the same two cycles as ROM + w_near. On ECP5 each tile is one
        block RAM column whose read register boards/ecp5_outreg.py moves into the DP16KD (0.7 ns clock-to-output
        instead of 5.8 ns); Yosys' own depth cascade put a LUT mux between the unregistered outputs and w_near,
        the ULX3S conv build's critical path at 62 MHz (fc6, 7 DP16KD deep)."""
        s = self.shape
        low = (s.tile_depth - 1).bit_length()  # tile_depth is a block RAM depth: a power of two
        tiles = []
        for j, start in enumerate(range(0, s.depth, s.tile_depth)):
            words = self.weight_words[start:start + s.tile_depth]
            rom = Memory(shape=unsigned(s.L), depth=len(words), init=words, attrs=small_rom_attrs(s.L * len(words)))
            m.submodules[f"tile{j}"] = rom
            rd = rom.read_port()
            m.d.comb += rd.addr.eq(self.e_prev.waddr[:low])
            reg = Signal(s.L, name=f"w_tile{j}", reset_less=True)
            m.d.sync += reg.eq(rd.data)
            tiles.append(reg)
        sel = self.e_prev.waddr[low:]
        for step in range(2):  # address -> the tile's read -> its register
            nxt = Signal(len(sel), name=f"tile_sel{step}", reset_less=True)
            m.d.sync += nxt.eq(sel)
            sel = nxt
        out = Signal(s.L, name="w_tiled")
        with m.Switch(sel):
            for j, reg in enumerate(tiles):
                with m.Case(j):
                    m.d.comb += out.eq(reg)
        return out

    def _sliced_logic_rom(self, m: Module):
        """A LUT ROM with the read's register on the address side (the same one cycle as a synchronous read),
        in slices of ROM_BITS_PER_ADDRESS bits, each read from its own address copy (hw/fanout.py): one address
        register had ~4 LUTs per word bit as loads (392 for 98 lanes) and was an ECP5 critical path."""
        s = self.shape
        edges = slice_edges(s.L, ROM_BITS_PER_ADDRESS)
        addrs = register_copies(m, self.e_prev.waddr, len(edges) - 1, "waddr")
        parts = []
        for j, addr in enumerate(addrs):
            lo, width = edges[j], edges[j + 1] - edges[j]
            rom = Memory(shape=unsigned(width), depth=s.depth, attrs=LOGIC_ROM,
                         init=[(w >> lo) & ((1 << width) - 1) for w in self.weight_words])
            m.submodules[f"rom{j}"] = rom
            rd = rom.read_port(domain="comb")
            m.d.comb += rd.addr.eq(addr)
            parts.append(rd.data)
        return Cat(*parts)


class SystolicArray(wiring.Component):
    """P processing rows of L lanes for one layer; `tok` enters row 0 each cycle it is valid.

    Hidden layer outputs: `rows` (hw/ports.py RowOutputSignature): per row `shift[p]` (a neuron finished),
    `bits[p]`, `banks[p]`; `done`/`done_bank` when the last row finished the last neuron of an image.
    Output layer: `arg`, the argmax over one pass of P neurons, from the last row.
    """

    def __init__(self, info, weight_words, threshold_words=None, *, stages: int | None = None,
                 store: str | None = None, in_reg: bool = False, rom_logic: bool = False,
                 tile_depth: int | None = None):
        self.shape = ArrayShape(info, stages=stages, store=store, in_reg=in_reg, rom_logic=rom_logic,
                                tile_depth=tile_depth)
        s = self.shape
        self.weight_words = weight_words
        self.threshold_words = threshold_words
        members = {"tok": In(s.token())}
        if store:  # run-time weight writes: one enable per row, shared address and word
            members["wr"] = In(WeightWriteSignature(rows=s.P, addr_width=s.aw, data_width=s.L))
        if s.is_output:
            members["arg"] = Out(s.arg())
        else:
            members["rows"] = Out(RowOutputSignature(s.P))
        super().__init__(members)

    @property
    def latency(self) -> int:
        """Cycles from a token at `tok` to its row P-1 result (shift / arg register) being visible."""
        s = self.shape
        return self._tree_latency() + s.P + 2

    def _tree_latency(self) -> int:
        return self.shape.R

    def elaborate(self, platform):
        s = self.shape
        m = Module()
        tok = self.tok
        # Late fields (and pcx) delayed by the lane group latency R, once for all rows.
        late0 = Signal(s.late())
        m.d.comb += [late0.valid.eq(tok.valid), late0.first.eq(tok.first), late0.pstart.eq(tok.pstart),
                     late0.last.eq(tok.last), late0.imglast.eq(tok.imglast), late0.k.eq(tok.k),
                     late0.bank.eq(tok.bank)]
        R = self._tree_latency()
        chunk = tok.chunk
        if s.in_reg:  # the chunk one cycle behind its weight address (ProcessingRow's second weight register)
            chunk = Signal(s.L, name="chunk_lag", reset_less=True)
            m.d.sync += chunk.eq(tok.chunk)
        cur = late0
        for i in range(R):
            nxt = Signal(s.late(), name=f"late_dl{i}")
            m.d.sync += nxt.eq(cur)
            cur = nxt
        late_in = Signal(s.late())
        m.d.comb += late_in.eq(cur)
        if s.signed:  # in the MSB plane: from a neuron's first token until the next plane starts
            in_msb = Signal()
            neg = Signal()
            m.d.comb += neg.eq(cur.first | (in_msb & ~cur.pstart))
            with m.If(cur.valid):
                m.d.sync += in_msb.eq(neg)
            m.d.comb += late_in.neg.eq(neg)
        if s.unsigned:
            pop = LaneGroup(s.L, mode="pop", stages=s.stages, in_reg=s.in_reg)
            m.submodules.pcx = pop
            m.d.comb += [pop.a.eq(chunk), late_in.pcx.eq(pop.count)]

        early0 = Signal(s.early())
        m.d.comb += [early0.chunk.eq(chunk), early0.waddr.eq(tok.waddr)]
        e_prev, l_prev = early0, late_in
        arg_prev = None
        if s.is_output:
            arg_prev = Signal(s.arg())  # all zero: invalid
        for p in range(s.P):
            row = ProcessingRow(s, p, self.weight_words[p], None if s.is_output else self.threshold_words[p])
            m.submodules[f"row{p}"] = row
            m.d.comb += [row.e_prev.eq(e_prev), row.l_prev.eq(l_prev)]
            if s.store:
                m.d.comb += [row.wen.eq(self.wr.en[p]), row.waddr.eq(self.wr.addr), row.wdata.eq(self.wr.data)]
            e_prev, l_prev = row.e_out, row.l_out
            if s.is_output:
                m.d.comb += row.arg_prev.eq(arg_prev)
                arg_prev = row.arg_out
            else:
                out = self.rows
                m.d.comb += [out.shift[p].eq(row.shift), out.bits[p].eq(row.bit), out.banks[p].eq(row.bank)]
                if p == s.P - 1:
                    m.d.comb += [out.done.eq(row.done), out.done_bank.eq(row.bank)]
        if s.is_output:
            m.d.comb += self.arg.eq(arg_prev)
        return m
