"""Sliding-window unit: a binary feature map streamed pixel by pixel in, one k x k window at a time out,
for a conv layer's sequencer to read word by word (issue 21; not yet wired into NetworkTop).

    pixels (raster order, C bits each) -> line buffer (R = k + stride rows of W pixels, block RAM)
        -> window assembly (k·k reads, one per cycle; padding outside the map)
        -> window buffer (2 banks of K = k·k·C bits in flip-flops) -> rd (InputReadSignature)

The window vector is in (ky, kx, c) order with padding bit 0 (-1) outside the map, exactly
`fedxnor.contract.conv.Conv.window` (docs/datapath.md); word c of it is bits [c·L, c·L + L), the last word
padded with 0, the layout the conv layer's weight words are packed in. The sequencer reads a window's
words as it reads an activation buffer's (rd.word, one cycle latency), once per pass of its neurons, and
releases it; the next window is assembled into the other bank meanwhile (ping-pong).

Line buffer: R = k + stride rows, so the rows that output row oy needs (oy·stride − pad .. + k − 1) are never
overwritten while its windows are assembled, and the rows the next output row needs can stream in. One image
at a time: the next image's pixels are taken once every window of this one is assembled.
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from fedxnor.contract.bits import ceil_div
from fedxnor.hw.ports import InputReadSignature, bits_for


class SlidingWindow(wiring.Component):
    def __init__(self, *, in_h: int, in_w: int, in_c: int, k: int, stride: int = 1, pad: int = 0, lanes: int):
        self.H, self.W, self.C, self.k, self.s, self.p, self.L = in_h, in_w, in_c, k, stride, pad, lanes
        self.OH = (in_h + 2 * pad - k) // stride + 1
        self.OW = (in_w + 2 * pad - k) // stride + 1
        if self.OH < 1 or self.OW < 1 or not 1 <= lanes:
            raise ValueError("the window does not fit the map")
        self.K = k * k * in_c
        self.words = ceil_div(self.K, lanes)
        self.R = k + stride  # line-buffer rows
        super().__init__({
            "pixels": In(stream.Signature(in_c)),
            "rd": In(InputReadSignature(words=self.words, planes=1, lanes=lanes)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        H, W, C, k, s, p, L, R = self.H, self.W, self.C, self.k, self.s, self.p, self.L, self.R
        OH, OW = self.OH, self.OW
        mem = Memory(shape=C, depth=R * W, init=[])
        m.submodules.lines = mem
        wr, rdp = mem.write_port(), mem.read_port()

        # --- intake: pixel (iy, ix) of the image into slot (iy mod R)·W + ix
        iy, ix = Signal(range(H + 1)), Signal(range(W))
        slot_row = Signal(range(R))  # iy mod R
        oy = Signal(range(OH + 1))  # output row being assembled (OH: this image is done)
        # rows complete: iy (the row being written). Output row oy needs rows up to oy·s − p + k − 1 (clipped to H − 1);
        # input row iy may be written while iy < oy·s − p + R (it then never lands on a row oy still needs).
        limit = Signal(range(H + R + s + 1))
        m.d.comb += limit.eq(oy * s + R - p)
        take = self.pixels.valid & (iy < H) & ((iy < limit) | (oy == OH))  # after the last output row: the rest
        m.d.comb += [self.pixels.ready.eq(take), wr.addr.eq(slot_row * W + ix), wr.data.eq(self.pixels.payload),
                     wr.en.eq(take)]
        with m.If(take):
            m.d.sync += ix.eq(ix + 1)
            with m.If(ix == W - 1):
                m.d.sync += [ix.eq(0), iy.eq(iy + 1), slot_row.eq(Mux(slot_row == R - 1, 0, slot_row + 1))]

        # --- assembly: window (oy, ox) from k·k reads, (ky, kx) order, into bank `wb`
        ox = Signal(range(OW))
        ky, kx = Signal(range(k)), Signal(range(k))
        need = Signal(range(H + k + 1))  # input rows that must be complete for output row oy: min(H, oy·s − p + k)
        m.d.comb += need.eq(Mux(oy * s + k - p > H, H, oy * s + k - p))
        ready_row = (oy < OH) & (iy >= need)
        full = Signal(2)  # bank b holds a whole window not yet released
        wb = Signal()
        running = Signal()  # a window is being assembled
        start = ready_row & ~running & ~full.bit_select(wb, 1)
        y = Signal(range(-p - 1, H + k + s + 1))  # input coordinates of (ky, kx), signed
        x = Signal(range(-p - 1, W + k + s + 1))
        m.d.comb += [y.eq(oy * s + ky - p), x.eq(ox * s + kx - p)]
        inside = (y >= 0) & (y < H) & (x >= 0) & (x < W)
        m.d.comb += rdp.addr.eq(Mux(inside, (y.as_unsigned() % R) * W + x.as_unsigned(), 0))
        step = running | start
        # the read's data arrives a cycle later: the write into the window register follows the read by one cycle
        wvalid, wpos, winside, wlast, wbank = Signal(), Signal(range(k * k)), Signal(), Signal(), Signal()
        last_tap = (ky == k - 1) & (kx == k - 1)
        m.d.sync += [wvalid.eq(step), wpos.eq(ky * k + kx), winside.eq(inside), wlast.eq(step & last_tap),
                     wbank.eq(wb)]
        with m.If(step):
            m.d.sync += [running.eq(~last_tap), kx.eq(kx + 1)]
            with m.If(kx == k - 1):
                m.d.sync += [kx.eq(0), ky.eq(ky + 1)]
                with m.If(ky == k - 1):
                    m.d.sync += [ky.eq(0), ox.eq(ox + 1), wb.eq(~wb)]
                    with m.If(ox == OW - 1):
                        m.d.sync += [ox.eq(0), oy.eq(oy + 1)]

        # --- window buffer: 2 banks x K bits, taps written C bits at a time, words read L bits at a time
        vec = [Signal(self.words * L, name=f"window{b}", reset_less=True) for b in range(2)]
        tap = Mux(winside, rdp.data, 0)  # outside the map: bit 0 (-1), the contract's padding
        for b in range(2):
            for t in range(k * k):
                with m.If(wvalid & (wbank == b) & (wpos == t)):
                    m.d.sync += vec[b][t * C:(t + 1) * C].eq(tap)
        rd = self.rd
        words = [v[c * L:(c + 1) * L] for v in vec for c in range(self.words)]
        sel = Signal(bits_for(2 * self.words) + 1)
        m.d.comb += sel.eq(rd.bank * self.words + rd.word)
        m.d.sync += rd.data.eq(Array(words)[sel])
        with m.If(wlast):  # the window's last tap lands this cycle: the bank is ready from the next
            m.d.sync += full.bit_select(wbank, 1).eq(1)
        with m.If(rd.release):
            m.d.sync += full.bit_select(rd.bank, 1).eq(0)
        m.d.comb += rd.ready.eq(full)

        # --- next image: once every window of this one is assembled and every pixel taken
        with m.If((oy == OH) & (iy == H) & ~running & ~wvalid):
            m.d.sync += [oy.eq(0), iy.eq(0), slot_row.eq(0)]
        m.d.comb += self.busy.eq((iy != 0) | (ix != 0) | (oy != 0) | running | wvalid | full.any())
        return m
