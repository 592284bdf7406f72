"""WindowTaps: a feature map streamed pixel by pixel in, every k x k window's taps out, one tap per cycle.

    pixels (raster order, C bits each) -> line buffer (R = k + stride rows of W pixels, block RAM)
        -> taps: for each output pixel (raster order), its k·k input pixels in (ky, kx) order,
           0 (the bit -1) where the window leaves the map (docs/datapath.md), `last` on a window's last tap

What consumes the taps decides what a window is: hw/window.py keeps them as a conv layer's window vector,
hw/pool.py ORs them into a max-pooled pixel. R = k + stride rows, so the rows output row oy reads
(oy·stride − pad .. + k − 1) are never overwritten while its windows go out, and the next output row's rows
stream in meanwhile. The ring runs on across images: the next image's first rows are taken into the slots this
image's last output rows no longer read (at most R − pad of them) while its taps go out, so a unit upstream is
not held at the image boundary (contract/mapcycles.py models exactly when each pixel is taken).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out


def tap_layout(channels: int) -> data.StructLayout:
    return data.StructLayout({"bits": channels, "last": 1})


class WindowTaps(wiring.Component):
    def __init__(self, *, in_h: int, in_w: int, in_c: int, k: int, stride: int = 1, pad: int = 0):
        self.H, self.W, self.C, self.k, self.s, self.p = in_h, in_w, in_c, k, stride, pad
        self.OH = (in_h + 2 * pad - k) // stride + 1
        self.OW = (in_w + 2 * pad - k) // stride + 1
        if self.OH < 1 or self.OW < 1 or pad >= k:
            raise ValueError(f"a {k}x{k} window with pad {pad} does not fit a {in_h}x{in_w} map")
        self.R = k + stride
        super().__init__({
            "pixels": In(stream.Signature(in_c)),
            "taps": Out(stream.Signature(tap_layout(in_c))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        H, W, k, s, p, R, OH, OW = self.H, self.W, self.k, self.s, self.p, self.R, self.OH, self.OW
        mem = Memory(shape=self.C, depth=R * W, init=[])
        m.submodules.lines = mem
        wr, rdp = mem.write_port(), mem.read_port()

        # intake: row g (counted from the tap image's row 0, so g >= H is the next image's row g - H) goes to slot
        # (base + g) mod R, the ring running on across images; it overwrites row g - R, so it is taken once no output
        # row still to go reads that row: g < oy·s + R − p, and g < H + R − p (the next image's rows, while this one's
        # taps run, overwrite only this image's rows) and g < 2H (one image ahead at most)
        iy, ix = Signal(range(2 * H + 1)), Signal(range(W))
        slot_row = Signal(range(R))  # (base + iy) mod R: the slot row being written
        base = Signal(range(R))  # the slot of the tap image's row 0
        oy = Signal(range(OH + 1))  # output row whose taps go out (OH: all of this image's are out)
        # oy's row bounds live in registers stepped with oy (no multiply-compare chain before `ready` and `valid`,
        # the iCEBreaker's critical path): limit = oy·s + R − p, need = min(H, oy·s + k − p) (the input rows complete
        # before output row oy's taps), need_next = (oy + 1)·s + k − p unclamped
        limit = Signal(range(OH * s + R + 1), init=R - p)
        need = Signal(range(H + k + 1), init=min(H, k - p))
        need_next = Signal(range(OH * s + s + k + 1), init=s + k - p)
        take = self.pixels.valid & (iy < limit) & (iy < min(H + R - p, 2 * H))
        m.d.comb += [self.pixels.ready.eq(take), wr.addr.eq(slot_row * W + ix), wr.data.eq(self.pixels.payload),
                     wr.en.eq(take)]
        row_done = take & (ix == W - 1)
        with m.If(take):
            m.d.sync += ix.eq(ix + 1)
            with m.If(row_done):
                m.d.sync += [ix.eq(0), slot_row.eq(Mux(slot_row == R - 1, 0, slot_row + 1))]

        # taps: a read per cycle while the output register is free or taken (the read port holds its data else)
        ox, ky, kx = Signal(range(OW)), Signal(range(k)), Signal(range(k))
        have = (oy < OH) & (iy >= need)
        out = self.taps
        advance = ~out.valid | out.ready
        issue = have & advance
        y = Signal(range(-p - 1, OH * s + k + 1))
        x = Signal(range(-p - 1, OW * s + k + 1))
        m.d.comb += [y.eq(oy * s + ky - p), x.eq(ox * s + kx - p)]
        inside = (y >= 0) & (y < H) & (x >= 0) & (x < W)
        m.d.comb += [rdp.en.eq(advance),
                     rdp.addr.eq(Mux(inside, ((base + y.as_unsigned()) % R) * W + x.as_unsigned(), 0))]
        last_tap = (ky == k - 1) & (kx == k - 1)
        inside_q, last_q = Signal(), Signal()
        with m.If(advance):
            m.d.sync += [out.valid.eq(issue), inside_q.eq(inside), last_q.eq(last_tap)]
        m.d.comb += [out.payload.bits.eq(Mux(inside_q, rdp.data, 0)), out.payload.last.eq(last_q)]
        with m.If(issue):
            m.d.sync += kx.eq(kx + 1)
            with m.If(kx == k - 1):
                m.d.sync += [kx.eq(0), ky.eq(ky + 1)]
                with m.If(ky == k - 1):
                    m.d.sync += [ky.eq(0), ox.eq(ox + 1)]
                    with m.If(ox == OW - 1):
                        m.d.sync += [ox.eq(0), oy.eq(oy + 1), limit.eq(limit + s), need_next.eq(need_next + s),
                                     need.eq(Mux(need_next > H, H, need_next))]

        # the next image becomes the tap image once every tap of this one is issued and its last row is in: its rows
        # taken so far count from 0, its row 0 is at slot base + H
        switch = (oy == OH) & (iy >= H)
        with m.If(switch):
            m.d.sync += [oy.eq(0), base.eq((base + H) % R), limit.eq(R - p), need.eq(min(H, k - p)),
                         need_next.eq(s + k - p)]
        m.d.sync += iy.eq(iy + row_done - Mux(switch, H, 0))
        m.d.comb += self.busy.eq((iy != 0) | (ix != 0) | (oy != 0) | out.valid)
        return m
