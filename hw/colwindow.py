"""ColumnWindow: the column-parallel sliding-window generator, a whole k x k window per output pixel, for a conv
layer whose sequencer reads a window in fewer cycles than the serial generator (hw/window.py) needs to emit one
(contract.conv.Conv.column_window decides; FINN's ConvolutionInputGenerator keeps the same k x k register).

    pixels (raster order, C·B bits) -> walker over the padded map (H + 2·pad) x (W + 2·pad), one position a cycle
        column memory: W + 2·pad words of k − 1 pixels (the k − 1 rows above, one read and one write a cycle)
        window register: the k − 1 previous columns; with the new column (memory word + this pixel) it is the
        window whose bottom-right pixel is this position
    -> 2 hold banks of K = k·k·C bits x B planes (ping-pong) -> rd (InputReadSignature, one cycle latency)

A position inside the map takes one pixel; a padded position takes none and stands for 0 (the bit −1, or pixel
0: contract.conv.PAD_VALUE). A position where a window ends (rows and columns k − 1 + i·stride) copies the window
into the free hold bank, in (ky, kx, c) order (contract.conv.Conv.window), B bit planes read MSB plane first at
rd.lin = q·words + c, word c = bits [c·L, c·L + L), as hw/vectorbuffer.py lays them out. Images follow each other
without a gap: the k − 1 rows a window needs are the image's own by the time its first window ends. The walker
waits only for a pixel (at a position inside the map) or for a free bank (at a window's end), so the model
(contract/colcycles.py) is one event per position.

The window's data path runs a cycle behind the walker (WINDOW_LAG, contract/structure.py): the walker's `go` (the
upstream pixel's valid, the position decode and the hold banks' flags) decides alone, in its own cycle, the counters,
the column memory and the banks' `full` flags; the new column and the load decisions are registered, and the window
register and the hold banks take them a cycle later from those registers, each slice of SELECT_BITS bits enabled by
a register copy of its own (hw/fanout.py). `go` had run on into the clock enables of every window and hold bit (the
ULX3S conv build's critical path: 17.5 ns, 9 ns of it one route). A bank is offered to its reader (`rd.ready`) the
cycle after its load, so a window's first token comes two cycles after its last position, not one.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from fedxnor.contract.bits import ceil_div
from fedxnor.contract.structure import COLUMN_WRITE_LAG_MIN_WIDTH, SELECT_BITS, slice_edges
from fedxnor.hw.fanout import COPY_MARK, register_copies
from fedxnor.hw.ports import InputReadSignature, bits_for


def _mask(n: int, bits) -> Const:
    return Const(sum(1 << i for i in range(n) if bits(i)), n)


class ColumnWindow(wiring.Component):
    def __init__(self, *, in_h: int, in_w: int, in_c: int, k: int, stride: int = 1, pad: int = 0, lanes: int,
                 bits: int = 1, groups: int = 1):
        """groups: Q readers (ConvLayer's window parallelism, Conv.window_parallelism): window w goes to group w mod Q,
        each group with its own two hold banks and read port (`rd`, then `rd_1` .. `rd_{Q-1}`)."""
        self.H, self.W, self.C, self.k, self.s, self.p, self.B, self.L = in_h, in_w, in_c, k, stride, pad, bits, lanes
        self.Q = groups
        self.Hp, self.Wp = in_h + 2 * pad, in_w + 2 * pad
        self.OH, self.OW = (self.Hp - k) // stride + 1, (self.Wp - k) // stride + 1
        if self.OH < 1 or self.OW < 1 or pad >= k:
            raise ValueError(f"a {k}x{k} window with pad {pad} does not fit a {in_h}x{in_w} map")
        self.K = k * k * in_c
        self.words = ceil_div(self.K, lanes)
        reads = {("rd" if g == 0 else f"rd_{g}"): In(InputReadSignature(words=self.words, planes=bits, lanes=lanes))
                 for g in range(groups)}
        super().__init__({"pixels": In(stream.Signature(in_c * bits)), **reads, "busy": Out(1)})
        self.reads = [getattr(self, "rd" if g == 0 else f"rd_{g}") for g in range(groups)]

    def elaborate(self, platform):
        m = Module()
        H, W, C, k, s, p, B, L = self.H, self.W, self.C, self.k, self.s, self.p, self.B, self.L
        Hp, Wp, E = self.Hp, self.Wp, self.C * self.B
        yp, xp = Signal(range(Hp)), Signal(range(Wp))
        real = (_mask(Hp, lambda y: p <= y < H + p).bit_select(yp, 1)
                & _mask(Wp, lambda x: p <= x < W + p).bit_select(xp, 1))
        ends = (_mask(Hp, lambda y: y >= k - 1 and (y - k + 1) % s == 0).bit_select(yp, 1)
                & _mask(Wp, lambda x: x >= k - 1 and (x - k + 1) % s == 0).bit_select(xp, 1))
        pix = Signal(E)
        m.d.comb += pix.eq(Mux(real, self.pixels.payload, 0))

        Q = self.Q
        # per group: hold bank b holds a window not yet released; the bank filled next; wg: the group filled next
        full = [Signal(2, name=f"full{g}") for g in range(Q)]
        wb = [Signal(name=f"wb{g}") for g in range(Q)]
        wg = Signal(range(Q))
        free = Signal()
        m.d.comb += free.eq(Array(~f.bit_select(b, 1) for f, b in zip(full, wb))[wg])
        go = Signal()
        m.d.comb += go.eq((~real | self.pixels.valid) & (~ends | free))
        m.d.comb += self.pixels.ready.eq(go & real)
        last_x = xp == Wp - 1
        with m.If(go):
            m.d.sync += xp.eq(Mux(last_x, 0, xp + 1))
            with m.If(last_x):
                m.d.sync += yp.eq(Mux(yp == Hp - 1, 0, yp + 1))

        # the new column: the k − 1 rows above from the column memory (slot 0 the top row), then this pixel
        col_q = [Signal(E, name=f"col_q{y}", reset_less=True) for y in range(k)]
        if k > 1:
            above = self._column_memory(m, go, xp, pix, col_q)
        else:
            above = []
        # the new column, registered: the window register and the hold banks run a cycle behind `go` (docstring)
        m.d.sync += [c.eq(v) for c, v in zip(col_q, [*above, pix])]
        prev = [[Signal(E, name=f"win_x{x}_y{y}", reset_less=True) for y in range(k)] for x in range(k - 1)]
        window = [*prev, col_q]  # window[kx][ky], as it was in the cycle of its `go`
        if k > 1:  # shifted on the registered go, a copy per slice of SELECT_BITS window bits
            flat = [(x, y) for x in range(k - 1) for y in range(k)]
            edges = slice_edges(len(flat) * E, SELECT_BITS)
            shifts = register_copies(m, go, len(edges) - 1, "win_go")
            for j, en in enumerate(shifts):
                with m.If(en):
                    for n, (x, y) in enumerate(flat):  # the part of pixel register (x, y) in this slice
                        lo, hi = max(edges[j], n * E) - n * E, min(edges[j + 1], n * E + E) - n * E
                        if lo < hi:
                            m.d.sync += prev[x][y][lo:hi].eq(window[x + 1][y][lo:hi])

        # hold banks: plane q of the window, element (ky, kx, c) at bit (ky·k + kx)·C + c
        planes = [Cat(window[kx][ky][c * B + q] for ky in range(k) for kx in range(k) for c in range(C))
                  for q in range(B)]
        load = go & ends
        with m.If(load):
            m.d.sync += wg.eq(Mux(wg == Q - 1, 0, wg + 1))
        per_bank = B * self.words  # plane-major, MSB plane first: word c of plane B − 1 − q at q·words + c
        ready = [Signal(2, name=f"ready{g}") for g in range(Q)]  # loaded: the reader may start (a cycle after full)
        for g, rd in enumerate(self.reads):
            hold = [[Signal(self.words * L, name=f"hold{g}_{b}_plane{q}", reset_less=True) for q in range(B)]
                    for b in range(2)]
            mine = load & (wg == g)
            edges = slice_edges(self.words * L, SELECT_BITS)
            for b in range(2):  # bank b's load a cycle later, from register copies, one per slice of every plane
                loads = register_copies(m, mine & (wb[g] == b), len(edges) - 1, f"hold{g}_{b}_load")
                for j, en in enumerate(loads):
                    with m.If(en):
                        lo, hi = edges[j], edges[j + 1]
                        m.d.sync += [hold[b][q][lo:hi].eq(planes[q].as_unsigned()[lo:hi]) for q in range(B)]
                with m.If(loads[0]):
                    m.d.sync += ready[g].bit_select(b, 1).eq(1)
            with m.If(mine):
                m.d.sync += [full[g].bit_select(wb[g], 1).eq(1), wb[g].eq(~wb[g])]
            with m.If(rd.release):
                m.d.sync += [full[g].bit_select(rd.bank, 1).eq(0), ready[g].bit_select(rd.bank, 1).eq(0)]
            words = [hold[b][B - 1 - q][c * L:(c + 1) * L] for b in range(2) for q in range(B) for c in range(self.words)]
            sel = Signal(bits_for(2 * per_bank) + 1, name=f"sel{g}")
            m.d.comb += sel.eq(rd.bank * per_bank + (rd.lin if B > 1 else rd.word))
            m.d.sync += rd.data.eq(Array(words)[sel])
            m.d.comb += rd.ready.eq(ready[g])
        m.d.comb += self.busy.eq(Cat(*full).any() | (xp != 0) | (yp != 0))
        return m

    def _column_memory(self, m: Module, go, xp, pix, col_q: list[Signal]) -> list[Value]:
        """The k − 1 rows above this position. The memory's address and write port are driven by registers only (no
        `go` before the memory: the ULX3S build's critical path ran the read-ahead `Mux(go, next x, x)` into the LUT
        RAM's address, 14.6 ns). The read address is always the next position (xn); the cycle after a stall the
        word is the one of the previous cycle, kept in col_q. The write lands a cycle late, from col_q (the column
        of the cycle of its go), when the map is at least 3 words wide: a read of that word is then two positions on.
        Neither adds a cycle: the words seen are the same as a read-ahead by go and an immediate write would give."""
        k, E, Wp = self.k, self.C * self.B, self.Wp
        width = (k - 1) * E
        mem = Memory(shape=width, depth=Wp, init=[])
        m.submodules.columns = mem
        wr, rdp = mem.write_port(), mem.read_port()
        xn = Signal(range(Wp), init=1 % Wp, name="col_ra")  # the position after xp: the word read for next cycle
        with m.If(go):
            m.d.sync += xn.eq(Mux(xn == Wp - 1, 0, xn + 1))
        m.d.comb += rdp.addr.eq(xn)
        edges = slice_edges(width, SELECT_BITS)
        went = [Signal(name=f"col_go_{COPY_MARK}{j}") for j in range(len(edges) - 1)]  # go, a cycle late, per slice
        m.d.sync += [w.eq(go) for w in went]
        kept = Cat(*col_q[:k - 1])
        word = Cat(*(Mux(went[j], rdp.data[edges[j]:edges[j + 1]], kept[edges[j]:edges[j + 1]])
                     for j in range(len(edges) - 1)))
        if Wp >= COLUMN_WRITE_LAG_MIN_WIDTH:
            xw = Signal(range(Wp), name="col_wa")  # xp, a cycle late: where col_q's column goes
            m.d.sync += xw.eq(xp)
            m.d.comb += [wr.addr.eq(xw), wr.en.eq(went[0]), wr.data.eq(Cat(*col_q[1:]))]
        else:  # two words: the late write would land as the next read of its word is made
            m.d.comb += [wr.addr.eq(xp), wr.en.eq(go), wr.data.eq(Cat(word[E:], pix))]
        return [word[i * E:(i + 1) * E] for i in range(k - 1)]
