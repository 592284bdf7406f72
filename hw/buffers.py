"""Ping-pong buffers between pipeline stages: the image memory and the hidden activation buffers.

Both have two banks; image n lives in bank n % 2 of every buffer, so a producer
fills one bank while its consumer reads the other and the layers pipeline.

ImageBuffer: the first layer's input, plane-major in block RAM (784 × 8 bits of
flip-flops would not fit a UP5K). Row `bank·2^a + plane·W + c` holds bit plane
(B − 1 − plane) of inputs [c·L, c·L + L): MSB plane first, the order the
Horner accumulator consumes them. The intake writes one plane of one beat per
cycle, holding `image.ready` low until the beat's last plane (stream payloads
are stable while valid), and masks the padding lanes of the last beat to 0.

ActivationBuffer: hidden activations are small (M bits), so they live in
flip-flops: per bank, row p of the producer shifts its output bits into its own
M/P-bit shift register (neuron k·P + p ends at position k), which needs no
address decoding; the consumer reads L-bit words through a mux. A 4 Kbit EBR per
64-bit bank would waste the block RAM that weights need.

Read latency: `rd_data` holds the word asked for one cycle later, or two with
`read_reg` (ECP5, NetworkTop read_regs): the image buffer then registers the
block RAM's output (its clock-to-output is most of a 120 MHz cycle), and the
activation buffer splits its word mux in two registered halves, groups of
READ_GROUP words first. A bank is static while its consumer reads it, so the
first half may sample it a cycle before the word is due.

Write and producer registers (`write_reg`, ECP5): the image buffer registers
its RAM write (address, data, enable) and sets `full` a cycle later with it (the
plane select into the RAM's data input was a critical path at 120 MHz); the
activation buffer registers its producer's outputs (shift, bits, banks, done) at
its door (the last row's bank register sits by its weight RAM, far from the
bank flags). Each costs one cycle of latency (contract/structure.py INTAKE_REG_CYCLES,
DRAIN_REG_CYCLES).

Bank flags: `full` (the producer finished the image), `pending` (the producer
started it), `consumed` (the consumer issued its last read), `dbgd` (the debug
stream sent it). A bank is freed when consumed and, with debug, sent.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from fedxnor.contract.structure import READ_GROUP, SELECT_BITS, image_address_bits, read_select_copies, slice_edges
from fedxnor.hw.fanout import COPY_MARK
from fedxnor.hw.memread import registered_read
from fedxnor.hw.ports import BankClaimSignature, DebugTapSignature, InputReadSignature, RowOutputSignature, bits_for


class ImageBuffer(wiring.Component):
    def __init__(self, fan_in: int, input_bits: int, lanes: int, *, read_reg: bool = False, write_reg: bool = False):
        self.N, self.B, self.L = fan_in, input_bits, lanes
        self.read_reg, self.write_reg = bool(read_reg), bool(write_reg)
        self.W = -(-fan_in // lanes)
        self.lin_bits = image_address_bits(self.W, self.B)
        self.read_copies = 0  # one plane-major RAM read: no select copies
        super().__init__({
            "image": In(stream.Signature(lanes * input_bits)),
            "rd": In(InputReadSignature(words=self.W, planes=input_bits, lanes=lanes)),  # ready: bank b is full
            "busy": Out(1),
        })

    @property
    def in_beats(self) -> int:
        return self.W

    def elaborate(self, platform):
        m = Module()
        B, W, L = self.B, self.W, self.L
        rd = self.rd
        full = Signal(2)
        m.d.comb += rd.ready.eq(full)
        # no_rw_check: the intake writes one bank while the sequencer reads the other (never one address in the
        # same cycle), so Yosys need not add its collision bypass, a LUT between the block RAM and its reader
        mem = Memory(shape=L, depth=2 << self.lin_bits, init=[], attrs={"no_rw_check": 1})
        m.submodules.mem = mem
        wr = mem.write_port()
        # an asynchronous read plus a register: Yosys then honours no_rw_check (hw/memread.py)
        rd_data = registered_read(m, mem, Cat(rd.lin.as_unsigned()[: self.lin_bits], rd.bank))
        if self.read_reg:
            data_q = Signal(L, reset_less=True)
            m.d.sync += data_q.eq(rd_data)
            m.d.comb += rd.data.eq(data_q)
        else:
            m.d.comb += rd.data.eq(rd_data)

        ib = Signal()  # intake bank
        j = Signal(bits_for(W))  # beat
        q = Signal(bits_for(B))  # plane step: plane B-1-q
        ia = Signal(self.lin_bits + 1)  # q·W + j
        pay = self.image.payload
        # Plane select as AND-OR with a one-hot register (bit b = plane b): cheaper than a binary mux.
        # read_reg (ECP5): each SELECT_BITS lanes get their own copy of that state register (a single one
        # drove ~8 LUT inputs per lane, all over the die: a 5.4 ns route on the ULX3S).
        edges = slice_edges(L, SELECT_BITS) if self.read_reg else [0, L]
        onehots = [Signal(B, init=1 << (B - 1), name=f"onehot_{COPY_MARK}{k}" if len(edges) > 2 else "onehot")
                   for k in range(len(edges) - 1)]
        plane = Signal(L)
        for k, onehot in enumerate(onehots):
            for i in range(edges[k], edges[k + 1]):
                m.d.comb += plane[i].eq((pay[i * B: i * B + B] & onehot).any())
        pad = W * L - self.N
        keep = Const((1 << (L - pad)) - 1, L)  # lanes of the last beat that carry inputs
        data = Mux(j == W - 1, plane & keep, plane) if pad else plane
        can = self.image.valid & ~full.bit_select(ib, 1)
        last_plane = q == B - 1
        filled = can & last_plane & (j == W - 1)  # this write is the bank's last
        addr = Cat(ia[: self.lin_bits], ib)
        if self.write_reg:  # the write a cycle later, and the bank's full flag with it
            addr_q, data_q = Signal.like(addr, reset_less=True), Signal(L, reset_less=True)
            en_q, filled_q = Signal(), Signal()
            m.d.sync += [addr_q.eq(addr), data_q.eq(data), en_q.eq(can), filled_q.eq(filled)]
            m.d.comb += [wr.addr.eq(addr_q), wr.data.eq(data_q), wr.en.eq(en_q)]
            with m.If(filled_q):
                m.d.sync += full.bit_select(addr_q[-1], 1).eq(1)
            pending = en_q
        else:
            m.d.comb += [wr.addr.eq(addr), wr.data.eq(data), wr.en.eq(can)]
            with m.If(filled):
                m.d.sync += full.bit_select(ib, 1).eq(1)
            pending = 0
        m.d.comb += self.image.ready.eq(can & last_plane)
        m.d.comb += self.busy.eq((j != 0) | (q != 0) | full.any() | pending)
        with m.If(can):
            m.d.sync += [q.eq(q + 1), ia.eq(ia + W)] + [oh.eq(oh.rotate_right(1)) for oh in onehots]
            with m.If(last_plane):
                m.d.sync += [q.eq(0), j.eq(j + 1), ia.eq(j + 1)]
                with m.If(j == W - 1):
                    m.d.sync += [j.eq(0), ia.eq(0), ib.eq(~ib)]
        with m.If(rd.release):
            m.d.sync += full.bit_select(rd.bank, 1).eq(0)
        return m


class ActivationBuffer(wiring.Component):
    """Between hidden layer l (producer: P rows, M neurons) and layer l + 1 (reads L-bit words)."""

    def __init__(self, fan_out: int, pe: int, lanes: int, *, debug: bool, read_reg: bool = False,
                 in_reg: bool = False):
        self.M, self.P, self.L = fan_out, pe, lanes
        self.read_reg, self.in_reg = bool(read_reg), bool(in_reg)
        self.NP = fan_out // pe
        self.W = -(-fan_out // lanes)
        self.debug = debug
        # a two-stage read: each slice of each first-stage group has its own select copy (hw/sequencer.py)
        self.read_copies = read_select_copies(lanes, self.W) if read_reg else 0
        super().__init__({
            "claim": In(BankClaimSignature()),  # producer's sequencer: free = bank b is empty
            "rows": In(RowOutputSignature(pe)),  # producer's array
            "rd": In(InputReadSignature(words=self.W, planes=1, lanes=lanes, copies=self.read_copies)),  # consumer
            "dbg": Out(DebugTapSignature(fan_out)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        M, P, NP, L, W = self.M, self.P, self.NP, self.L, self.W
        rows, rd, claim, dbg = self.rows, self.rd, self.claim, self.dbg
        shift, bits, banks, done, done_bank = rows.shift, rows.bits, rows.banks, rows.done, rows.done_bank
        if self.in_reg:  # the producer's outputs registered here, a cycle later (module docstring)
            shift, bits, banks = Signal(P), Signal(P, reset_less=True), Signal(P, reset_less=True)
            done, done_bank = Signal(), Signal(reset_less=True)
            m.d.sync += [shift.eq(rows.shift), bits.eq(rows.bits), banks.eq(rows.banks),
                         done.eq(rows.done), done_bank.eq(rows.done_bank)]
        sr = [[Signal(NP, name=f"sr_b{b}_p{p}", reset_less=True) for p in range(P)] for b in range(2)]
        for b in range(2):
            for p in range(P):
                with m.If(shift[p] & (banks[p] == b)):
                    m.d.sync += sr[b][p].eq(Cat(sr[b][p][1:], bits[p]) if NP > 1 else bits[p])
        vec = [Cat(*[sr[b][n % P][n // P] for n in range(M)]) for b in range(2)]
        if self.read_reg:
            self._two_stage_read(m, vec)
        else:
            words = [vec[b].as_unsigned()[c * L: c * L + L] for b in range(2) for c in range(W)]
            sel = Signal(bits_for(2 * W) + 1)
            m.d.comb += sel.eq(rd.bank * W + rd.word)
            m.d.sync += rd.data.eq(Array(words)[sel])
        m.d.comb += dbg.bits.eq(Mux(dbg.bank, vec[1], vec[0]))

        full, pending, consumed, dbgd = Signal(2), Signal(2), Signal(2), Signal(2)
        for b in range(2):
            sent = dbgd[b] if self.debug else 1
            m.d.comb += [
                claim.free[b].eq(~full[b] & ~pending[b]),
                rd.ready[b].eq(full[b] & ~consumed[b]),
                dbg.avail[b].eq(full[b] & ~dbgd[b]),
            ]
            with m.If(full[b] & consumed[b] & sent):
                m.d.sync += [full[b].eq(0), consumed[b].eq(0), dbgd[b].eq(0)]
            with m.If(claim.start & (claim.bank == b)):
                m.d.sync += pending[b].eq(1)
            with m.If(done & (done_bank == b)):
                m.d.sync += [pending[b].eq(0), full[b].eq(1)]
            with m.If(rd.release & (rd.bank == b)):
                m.d.sync += consumed[b].eq(1)
            with m.If(dbg.ack & (dbg.bank == b)):
                m.d.sync += dbgd[b].eq(1)
        m.d.comb += self.busy.eq(full.any() | pending.any())  # pending holds while done is in the register
        return m

    def _two_stage_read(self, m: Module, vec) -> None:
        """rd_data two cycles after rd_word: a bank-and-low-bits mux per group of READ_GROUP words, registered,
        then the group mux. No adder on the select (bank·W + word was the ECP5 critical path). Each
        group's mux is cut in slices of at most SELECT_BITS lanes, each slice selected by its own register copy
        of (word, bank) (`rd.copies`, from the sequencer), so no select net spans the buffer."""
        rd = self.rd
        L, W, G = self.L, self.W, READ_GROUP
        words = [[vec[b].as_unsigned()[c * L: c * L + L] for c in range(W)] for b in range(2)]
        edges = slice_edges(L, SELECT_BITS)
        n_groups, n_slices = -(-W // G), len(edges) - 1
        lo_bits = bits_for(G) if n_groups > 1 else len(rd.word)  # one group: the whole word number
        groups = []
        for j in range(n_groups):
            g = Signal(L, name=f"rd_group{j}", reset_less=True)
            for k in range(n_slices):
                lo, hi = edges[k], edges[k + 1]
                sel = rd.copies[j * n_slices + k]
                banks = [Array([w[lo:hi] for w in words[b][j * G: j * G + G]]) for b in range(2)]
                m.d.sync += g[lo:hi].eq(Array(banks)[sel.bank][sel.word[:lo_bits]])
            groups.append(g)
        if n_groups == 1:
            m.d.sync += rd.data.eq(groups[0])
            return
        hi_q = Signal(len(rd.word) - lo_bits, reset_less=True)
        m.d.sync += hi_q.eq(rd.word[lo_bits:])
        m.d.sync += rd.data.eq(Array(groups)[hi_q])
