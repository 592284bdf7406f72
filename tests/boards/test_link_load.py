"""The weight-load handling: LoadFrames (boards/link_load.py) joined to the WeightLoader (boards/core.py) by
wiring.connect, against a behavioural model of docs/hostlink.md "Loading weights". Random sessions of LOAD
frames: files sent in chunks, restarts, wrong files and offsets, chunks past a file's end, damaged and
timed-out frames (some cut inside the header), a changed byte (hash error), and frames of other commands.
Per frame: the chunk the loader saw (header fields, data bytes), then its verdict and status (code, flags,
file in progress, verified mask, next offset); over the session, every word written to the weight store."""

from __future__ import annotations

import hashlib
import random

from amaranth import Elaboratable, Module, Signal
from amaranth.lib import wiring
from gateware import simulate
from hypothesis import given, settings
from hypothesis import strategies as st

from fedxnor.boards import frames as fr
from fedxnor.boards.core import HEX_NEWLINE, WeightLoader
from fedxnor.boards.link_load import LoadFrames
from fedxnor.hw.weightstore import WritableImage, write_layout

BYTE_CYCLES = 5


class LoaderModel:
    """What the loader decides, byte by byte (its registers, in Python)."""

    def __init__(self, files, blobs, data_width):
        self.files, self.blobs, self.dw = files, blobs, data_width
        self.pw = max(f.nbytes for f in files).bit_length() + 1
        self.cur, self.cur_valid, self.pos, self.verified, self.code, self.file_done = 0, False, 0, 0, 0, False
        self.accepted, self.received, self.writes, self.shift, self.waddr = False, b"", [], 0, 0

    def header(self, file, offset, length):
        self.file_done, self.accepted = False, False
        big, end_at = offset >> self.pw != 0, (offset & ((1 << self.pw) - 1)) + length
        if file >= len(self.files):
            self.code = fr.ERR_LOAD_ORDER
        elif big or end_at > self.files[file].nbytes:
            self.code = fr.ERR_LENGTH
        elif offset == 0:
            self.code, self.accepted, self.cur, self.cur_valid, self.pos = 0, True, file, True, 0
            self.received, self.shift, self.waddr = b"", 0, 0
            self.verified &= ~(1 << file)
        elif self.cur_valid and file == self.cur and offset == self.pos:
            self.code, self.accepted = 0, True
        else:
            self.code = fr.ERR_LOAD_ORDER

    def byte(self, b):
        if not self.accepted:
            return
        self.pos += 1
        self.received += bytes([b])
        if b == HEX_NEWLINE:
            self.writes.append((self.cur, self.waddr, self.shift & ((1 << self.dw) - 1)))
            self.waddr, self.shift = self.waddr + 1, 0
        else:
            nibble = ((b & 15) + (9 if b & 0x40 else 0)) & 15
            self.shift = ((self.shift << 4) | nibble) & ((1 << 4 * self.files[0].digits) - 1)

    def end(self, good):
        if not good:
            self.cur_valid = False
        elif self.accepted and self.pos == self.files[self.cur].nbytes:
            match = hashlib.sha256(self.received).hexdigest() == self.files[self.cur].sha256
            self.verified |= match << self.cur
            self.file_done, self.cur_valid, self.code = match, False, 0 if match else fr.ERR_HASH
        self.accepted = False

    def status(self):
        loaded = self.verified == (1 << len(self.files)) - 1
        return {"code": self.code, "flags": loaded | self.file_done << 1 | self.cur_valid << 2, "current": self.cur,
                "verified": self.verified, "next": self.pos if self.cur_valid else 0}


class LoadPath(Elaboratable):
    def __init__(self, files, wload):
        self.frames = LoadFrames()
        self.loader = WeightLoader(files, wload, byte_cycles=BYTE_CYCLES)

    def elaborate(self, platform):
        m = Module()
        m.submodules.frames, m.submodules.loader = self.frames, self.loader
        wiring.connect(m, self.frames.chunk, self.loader.link.chunk)
        return m


def make_files(rng):
    width, n = rng.choice([4, 8]), rng.randint(1, 3)
    files, blobs = [], []
    for i in range(n):
        depth = rng.choice([2, 3, 5, 24 if width == 4 else 3])  # 24 lines of "x\n": a file over one SHA-256 block
        digits = -(-width // 4)
        text = "".join(f"{rng.getrandbits(width):0{digits}x}\n" for _ in range(depth)).encode()
        files.append(WritableImage(index=i, layer=0, pe=i, width=width, depth=depth, file=f"l0_w_pe{i}.hex",
                                   sha256=hashlib.sha256(text).hexdigest(), nbytes=len(text)))
        blobs.append(text)
    return files, blobs


def session(rng, files, blobs):
    """LOAD frames: (is_load, payload, sent, good, timed_out)."""
    out = []
    for _ in range(rng.randint(2, 6)):
        f = rng.randrange(len(files) + (rng.random() < 0.1))
        blob = blobs[f] if f < len(files) else b"0\n"
        size = rng.choice([3, 7, len(blob)])
        for off in range(0, len(blob), size):
            data, o = bytearray(blob[off : off + size]), off
            trouble = rng.random()
            if trouble < 0.06:
                o += 1
            elif trouble < 0.16:
                data[rng.randrange(len(data))] ^= 1
            elif trouble < 0.2:
                data += b"0\n"
            payload = bytes([f]) + o.to_bytes(4, "little") + bytes(data)
            fate = rng.random()
            if fate < 0.06:  # cut short (maybe inside the header): the line went quiet
                out.append((True, payload, rng.randrange(len(payload)), False, True))
                break
            if fate < 0.1:
                out.append((True, payload, len(payload), False, False))  # bad CRC
                break
            out.append((True, payload, len(payload), True, False))
        if rng.random() < 0.15:
            out.append((False, bytes(rng.getrandbits(8) for _ in range(7)), 7, True, False))  # another command
    return out


def run(files, blobs, frames, seed):
    rng = random.Random(seed)
    wl = Signal(write_layout(len(files), max(1, (max(f.depth for f in files) - 1).bit_length()), max(f.width for f in files)))
    dut = LoadPath(files, wl)
    seen, writes = [], []

    async def tb(ctx):
        fs, c, s, ld = dut.frames.frame, dut.frames.chunk, dut.loader.link.status, dut.loader

        async def tick(n=1):
            for _ in range(n):
                w = ld.wload
                if ctx.get(w.en):
                    writes.append((ctx.get(w.row), ctx.get(w.addr), ctx.get(w.data)))
                if ctx.get(c.header):
                    seen[-1]["header"] = (ctx.get(c.file), ctx.get(c.offset), ctx.get(c.length))
                if ctx.get(c.data.valid):
                    seen[-1]["data"] += bytes([ctx.get(c.data.payload)])
                await ctx.tick()

        for is_load, payload, sent, good, timed_out in frames:
            seen.append({"header": None, "data": b""})
            ctx.set(fs.start, 1)
            await tick()
            ctx.set(fs.start, 0)
            ctx.set(fs.is_load, is_load)
            ctx.set(fs.length, len(payload))
            ctx.set(fs.header.valid, 1)
            ctx.set(fs.header.payload, len(payload))
            await tick()
            ctx.set(fs.header.valid, 0)
            for b in payload[:sent]:
                await tick(rng.randint(BYTE_CYCLES, BYTE_CYCLES + 3))
                ctx.set(fs.payload.valid, 1)
                ctx.set(fs.payload.payload, b)
                await tick()
                ctx.set(fs.payload.valid, 0)
            await tick(8)
            ctx.set(fs.end, 1)
            ctx.set(fs.crc_ok, good)
            ctx.set(fs.timed_out, timed_out)
            await tick()
            ctx.set(fs.end, 0)
            await tick()
            for _ in range(20000):
                if not ctx.get(s.busy):
                    break
                await tick()
            seen[-1]["status"] = {k: ctx.get(getattr(s, k)) for k in ("code", "flags", "current", "verified", "next")}

    simulate(dut, tb)
    return seen, writes


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32))
def test_chunks_verdicts_and_written_words_match_the_model(seed):
    rng = random.Random(seed)
    files, blobs = make_files(rng)
    frames = session(rng, files, blobs)
    seen, writes = run(files, blobs, frames, seed)
    model = LoaderModel(files, blobs, max(f.width for f in files))
    for (is_load, payload, sent, good, timed_out), got in zip(frames, seen):
        loading = is_load and len(payload) > fr.LOAD_HEADER_LEN
        header = (payload[0], int.from_bytes(payload[1:5], "little"), len(payload) - 5)
        assert got["header"] == (header if loading and sent >= 5 else None)
        assert got["data"] == (payload[5:sent] if loading else b"")
        if loading:
            if sent >= 5:
                model.header(*header)
            for b in payload[5:sent]:
                model.byte(b)
            model.end(good and not timed_out)
        assert got["status"] == model.status()
    assert writes == model.writes


def test_a_changed_byte_is_a_hash_error_then_the_whole_file_in_two_chunks_is_verified_and_written():
    rng = random.Random(7)
    files, blobs = make_files(rng)
    blob = blobs[0]
    bad = bytearray(blob)
    bad[0] = ord("0") if bad[0] != ord("0") else ord("1")
    half = len(blob) // 2
    frames = [(True, bytes([0]) + o.to_bytes(4, "little") + data[o:e], 5 + e - o, True, False)
              for data in (bytes(bad), blob) for o, e in ((0, half), (half, len(blob)))]
    seen, writes = run(files, blobs, frames, 1)
    assert seen[1]["status"]["code"] == fr.ERR_HASH and seen[1]["status"]["verified"] == 0
    assert seen[2]["status"]["next"] == half and seen[2]["status"]["flags"] == fr.LOAD_IN_PROGRESS
    assert seen[3]["status"]["code"] == 0 and seen[3]["status"]["verified"] == 1
    assert seen[3]["status"]["flags"] & fr.LOAD_FILE_DONE
    words = [int(line, 16) for line in blob.decode().split()]
    assert writes[len(words):] == [(0, a, w) for a, w in enumerate(words)]
