"""A board behind a fake serial port, on a fake clock, whose replies a test can damage one by one.

FakeBoard answers requests as docs/hostlink.md says (IDENT, STATS, CLASSIFY, LOAD with the
files of a weight store), then passes each reply frame through `mutate(i, frame)`, so a
Hypothesis test decides what the host really receives. Time is the fake clock's: an empty
read costs the port's read timeout, every byte its 10 bit times, so the driver's timeouts
run in no real time and a hang shows up as a test that never ends (pytest-timeout stops it).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from fedxnor.boards import frames as fr
from fedxnor.contract.beats import BeatGeometry

READ_TIMEOUT = 0.05  # the driver opens real ports with this read timeout
MAX_READS = 200_000  # a driver that keeps reading past this is looping


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class FakeBoard:
    """read/write/flush/close/in_waiting, like pyserial's Serial."""

    def __init__(self, clock: FakeClock, *, sha256: str = "ab" * 32, geometry: fr.BeatGeometry | None = None,
                 ready: bool = True, load_blobs: dict[tuple[int, int], bytes] | None = None,
                 mutate: Callable[[int, bytes], bytes] = lambda i, frame: frame, chunk: int = 64, baud: int = 115200,
                 fail_after_reads: int | None = None):
        self.clock = clock
        self.geometry = geometry or BeatGeometry(50, 8, 64, 10)
        self.sha256 = sha256
        self.blobs = load_blobs or {}
        self.files = list(self.blobs)
        self.verified = 0 if self.files else 1
        self.ready = ready and not self.files
        self.current, self.next = None, 0
        self.got = bytearray()
        self.mutate = mutate
        self.chunk = max(1, chunk)
        self.byte_time = 10 / baud
        self.fail_after_reads = fail_after_reads
        self.requests_seen = 0
        self.reads = 0
        self.cycles = self.images = 0
        self.rx = bytearray()
        self.parser = fr.ReplyParser(sync=fr.REQ_SYNC)  # requests have the reply's layout, another sync byte

    # -- pyserial's interface

    @property
    def in_waiting(self) -> int:
        return len(self.rx)

    def write(self, data: bytes) -> int:
        self.clock.t += len(data) * self.byte_time
        try:
            requests = self.parser.feed(bytes(data))
        except fr.FrameError:
            self.parser = fr.ReplyParser(sync=fr.REQ_SYNC)
            requests = [fr.Reply(-1, b"")]
        for req in requests:
            frame = self.answer(req.code, req.payload)
            self.rx += self.mutate(self.requests_seen, frame)
            self.requests_seen += 1
        return len(data)

    def read(self, n: int = 1) -> bytes:
        self.reads += 1
        assert self.reads < MAX_READS, "the driver keeps reading: a loop without a bound"
        if self.fail_after_reads is not None and self.reads > self.fail_after_reads:
            raise OSError(5, "Input/output error")  # what an unplugged USB UART gives
        if not self.rx:
            self.clock.t += READ_TIMEOUT
            return b""
        out = bytes(self.rx[: min(n, self.chunk)])
        del self.rx[: len(out)]
        self.clock.t += len(out) * self.byte_time
        return out

    def flush(self) -> None:
        pass

    def reset_input_buffer(self) -> None:
        self.rx.clear()

    def close(self) -> None:
        pass

    # -- the board

    def reply(self, cmd: int, payload: bytes) -> bytes:
        return fr.encode(cmd | fr.REPLY_OK, payload, fr.REPLY_SYNC)

    def error(self, code: int, cmd: int) -> bytes:
        return fr.encode(fr.REPLY_ERR, bytes([code, cmd & 0xFF]), fr.REPLY_SYNC)

    def status(self, flags: int = 0) -> bytes:
        flags |= (fr.LOAD_READY if self.ready else 0) | (fr.LOAD_IN_PROGRESS if self.current is not None else 0)
        head = struct.pack(fr.LOAD_REPLY_FORMAT, len(self.files), flags, self.current or 0, self.verified & 0xFFFF, self.next)
        return self.reply(fr.CMD_LOAD, head + b"".join(bytes(f) for f in self.files))

    def answer(self, cmd: int, payload: bytes) -> bytes:
        g = self.geometry
        if cmd == fr.CMD_IDENT and not payload:
            return self.reply(cmd, fr.Ident.build(g, self.sha256, 36_000_000, flags=int(self.ready)))
        if cmd == fr.CMD_STATS and not payload:
            return self.reply(cmd, struct.pack(fr.STATS_FORMAT, self.cycles, self.images, 0, 0))
        if cmd == fr.CMD_CLASSIFY:
            if len(payload) != g.image_bytes:
                return self.error(fr.ERR_LENGTH, cmd)
            if not self.ready:
                return self.error(fr.ERR_NOT_READY, cmd)
            self.cycles, self.images = (self.cycles + 97) % (1 << 32), self.images + 1
            return self.reply(cmd, struct.pack(fr.CLASSIFY_REPLY_FORMAT, sum(payload) % g.num_classes, self.cycles))
        if cmd == fr.CMD_LOAD:
            return self.load(payload)
        return self.error(fr.ERR_COMMAND if cmd not in (fr.CMD_IDENT, fr.CMD_STATS) else fr.ERR_LENGTH, cmd)

    def load(self, payload: bytes) -> bytes:
        if not payload:
            return self.status()
        if len(payload) <= fr.LOAD_HEADER_LEN or not self.files:
            return self.error(fr.ERR_LENGTH if self.files else fr.ERR_COMMAND, fr.CMD_LOAD)
        f, off = struct.unpack(fr.LOAD_HEADER_FORMAT, payload[: fr.LOAD_HEADER_LEN])
        data = payload[fr.LOAD_HEADER_LEN :]
        if f >= len(self.files) or not (off == 0 or (f == self.current and off == self.next)):
            self.current = None
            return self.error(fr.ERR_LOAD_ORDER, fr.CMD_LOAD)
        blob = self.blobs[self.files[f]]
        if off == 0:
            self.verified &= ~(1 << f)
            self.ready, self.current, self.got = False, f, bytearray()
        if off + len(data) > len(blob):
            return self.error(fr.ERR_LENGTH, fr.CMD_LOAD)
        self.got += data
        self.next = off + len(data)
        if self.next < len(blob):
            return self.status()
        self.current, self.next = None, 0
        if bytes(self.got) != blob:
            return self.error(fr.ERR_HASH, fr.CMD_LOAD)
        self.verified |= 1 << f
        self.ready = self.verified == (1 << len(self.files)) - 1
        return self.status(fr.LOAD_FILE_DONE)
