"""The host link's LOAD handling: a LOAD frame's header and data bytes out to the weight loader.

A LOAD frame with more than a header (LEN > 5) is `loading`: its first five payload bytes are the
header, FILE (u8) and OFFSET (u32 LE); `chunk.header` pulses once they are in, then every further
payload byte goes out as one beat of `chunk.data`. At the frame's end `chunk.end` pulses (with
`chunk.good` when its CRC checked and it did not time out), and the loader settles the frame's
verdict (`status.busy` until then, `status.code`). The loader is boards/core.py WeightLoader; what a
LOAD does is in docs/hostlink.md, "Loading weights".
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from fedxnor.boards import frames as fr
from fedxnor.boards.link_rx import FrameSignature


class ChunkSignature(wiring.Signature):
    """One LOAD chunk, from the link's side: `header` pulses with `file`, `offset` and `length` (data bytes) set
    (they hold until the next header); `data` carries the data bytes; `end` pulses at the frame's end, `good` when
    the frame checked."""

    def __init__(self):
        super().__init__({
            "header": Out(1), "file": Out(8), "offset": Out(32), "length": Out(16),
            "data": Out(stream.Signature(8, always_ready=True)), "end": Out(1), "good": Out(1),
        })


class LoadStatusSignature(wiring.Signature):
    """The loader's side, from the loader: `busy` until a frame's verdict `code` (0, or the error to answer) is
    settled, and the status a LOAD reply carries (`flags`, `current`, `verified`, `next`)."""

    def __init__(self):
        super().__init__({"busy": Out(1), "code": Out(8), "flags": Out(8), "current": Out(8), "verified": Out(16),
                          "next": Out(32)})


class LoadSignature(wiring.Signature):
    """The host link <-> weight loader port, from the link's side: chunks out, the loader's status in."""

    def __init__(self):
        super().__init__({"chunk": Out(ChunkSignature()), "status": In(LoadStatusSignature())})


class LoadFrames(wiring.Component):
    """LOAD frames (the receiver's `frame`) -> `chunk`s for the weight loader; `loading`: this frame carries one."""

    def __init__(self):
        super().__init__({"frame": In(FrameSignature()), "chunk": Out(ChunkSignature()), "loading": Out(1)})

    def elaborate(self, platform) -> Module:
        m = Module()
        f = self.frame
        c = self.chunk
        byte = f.payload.payload
        hdr = Signal(range(fr.LOAD_HEADER_LEN + 1))  # LOAD header bytes received
        m.d.sync += [c.header.eq(0), c.data.valid.eq(0)]
        m.d.comb += [c.length.eq(f.length - fr.LOAD_HEADER_LEN), c.end.eq(f.end & self.loading),
                     c.good.eq(f.crc_ok & ~f.timed_out)]
        with m.If(f.start):  # `loading` belongs to the new frame from here on
            m.d.sync += self.loading.eq(0)
        with m.If(f.header.valid):
            m.d.sync += [self.loading.eq(f.is_load & (f.header.payload > fr.LOAD_HEADER_LEN)), hdr.eq(0)]
        with m.If(f.payload.valid):
            with m.If(self.loading & (hdr != fr.LOAD_HEADER_LEN)):  # header: file, offset (LE)
                with m.Switch(hdr):
                    with m.Case(0):
                        m.d.sync += c.file.eq(byte)
                    for k in range(1, fr.LOAD_HEADER_LEN):
                        with m.Case(k):
                            m.d.sync += c.offset[8 * (k - 1) : 8 * k].eq(byte)
                m.d.sync += [hdr.eq(hdr + 1), c.header.eq(hdr == fr.LOAD_HEADER_LEN - 1)]
            with m.Elif(self.loading):
                m.d.sync += [c.data.payload.eq(byte), c.data.valid.eq(1)]
        return m
