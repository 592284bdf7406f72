"""The host-link protocol in Python: frame encode/decode and CRC, shared by the host driver and the tests.

The wire format (docs/hostlink.md) is

    request:  0xA5  CMD  LEN_lo LEN_hi  PAYLOAD[LEN]  CRC_hi CRC_lo
    reply:    0x5A  CODE LEN_lo LEN_hi  PAYLOAD[LEN]  CRC_hi CRC_lo

CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor) over
CMD/CODE, LEN and PAYLOAD, sent high byte first; run over the CRC bytes too, it
leaves 0, which is the check the hardware makes. A reply's CODE is CMD | 0x80
on success and ERR (0xFF) on error, with payload (error code, offending CMD).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from fedxnor.contract.beats import BeatGeometry

REQ_SYNC = 0xA5
REPLY_SYNC = 0x5A
PROTOCOL_VERSION = 1
BAUD_RANGE = (300, 12_000_000)  # what pyserial sets on Linux and the boards' FTDI bridges (FT2232H: 12 Mbaud) run

CMD_IDENT = 0x01
CMD_CLASSIFY = 0x02
CMD_STATS = 0x03
CMD_LOAD = 0x04  # weight image bytes for a run-time weight store (docs/hostlink.md, "Loading weights")
REPLY_OK = 0x80
REPLY_ERR = 0xFF

ERR_CRC = 1  # the frame's CRC does not check
ERR_LENGTH = 2  # LEN is not what the command takes
ERR_COMMAND = 3  # unknown command
ERR_TIMEOUT = 4  # the line went quiet inside a frame (a truncated frame)
ERR_NOT_READY = 5  # the model's weights are not loaded yet
ERR_LOAD_ORDER = 6  # LOAD: no such file, or the chunk does not continue the file in progress
ERR_HASH = 7  # LOAD: the file's sha256 is not the manifest's (the file is not loaded)

ERROR_NAMES = {ERR_CRC: "bad CRC", ERR_LENGTH: "bad length", ERR_COMMAND: "unknown command",
               ERR_TIMEOUT: "timeout inside a frame", ERR_NOT_READY: "weights not loaded",
               ERR_LOAD_ORDER: "load out of order", ERR_HASH: "weight file hash differs from the manifest"}

IDENT_FORMAT = "<BBBBHHHHI32s"  # version, flags, classes, input bits, fan-in, beat bytes, beats, in_width, clock Hz, sha256
IDENT_LEN = struct.calcsize(IDENT_FORMAT)
CLASSIFY_REPLY_FORMAT = "<BI"  # class, core cycles of that inference
STATS_FORMAT = "<IIHH"  # cycle counter of the core, images classified, error replies sent, reserved
LOAD_HEADER_FORMAT = "<BI"  # LOAD request: file number, byte offset of the chunk in the file; then the bytes
LOAD_HEADER_LEN = struct.calcsize(LOAD_HEADER_FORMAT)
LOAD_REPLY_FORMAT = "<BBBHI"  # files, flags, file in progress, verified-files mask, next offset; then (layer, pe) per file
LOAD_READY, LOAD_FILE_DONE, LOAD_IN_PROGRESS = 1, 2, 4  # LOAD reply flags


def crc16(data: bytes | bytearray, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE, bitwise (the same recurrence the hardware unrolls per byte)."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def encode(code: int, payload: bytes = b"", sync: int = REQ_SYNC) -> bytes:
    """One frame: sync, code, little-endian length, payload, CRC high byte first."""
    if len(payload) > 0xFFFF:
        raise ValueError("payload longer than 65535 bytes")
    body = bytes([code]) + struct.pack("<H", len(payload)) + bytes(payload)
    return bytes([sync]) + body + struct.pack(">H", crc16(body))


def request(cmd: int, payload: bytes = b"") -> bytes:
    return encode(cmd, payload, REQ_SYNC)


@dataclass(frozen=True)
class Reply:
    code: int
    payload: bytes

    @property
    def ok(self) -> bool:
        return self.code != REPLY_ERR

    @property
    def error(self) -> int | None:
        return self.payload[0] if self.code == REPLY_ERR and self.payload else None

    def describe(self) -> str:
        if self.ok:
            return f"reply 0x{self.code:02x} ({len(self.payload)} bytes)"
        err = self.error
        cmd = self.payload[1] if len(self.payload) > 1 else -1
        return f"error {err} ({ERROR_NAMES.get(err, 'unknown')}) for command 0x{cmd:02x}"


class FrameError(ValueError):
    """Bytes that do not form a valid reply."""


def preview(data: bytes, limit: int = 24) -> str:
    """Bytes as hex for a one-line message: the first `limit` bytes, then how many more."""
    data = bytes(data)
    more = f"... (+{len(data) - limit} bytes)" if len(data) > limit else ""
    return (data[:limit].hex() or "nothing") + more


class ReplyParser:
    """Incremental reply decoder: feed() bytes as they arrive, collect complete Replies.

    Bytes before a sync byte are skipped (counted in `skipped`); a reply whose CRC
    fails raises FrameError, since replies come from the board and should be clean.
    """

    def __init__(self, sync: int = REPLY_SYNC):
        self.sync = sync
        self.buf = bytearray()
        self.skipped = 0

    def feed(self, data: bytes) -> list[Reply]:
        self.buf.extend(data)
        out = []
        while True:
            start = self.buf.find(bytes([self.sync]))
            if start < 0:
                self.skipped += len(self.buf)
                self.buf.clear()
                return out
            if start:
                self.skipped += start
                del self.buf[:start]
            if len(self.buf) < 4:
                return out
            n = self.buf[2] | (self.buf[3] << 8)
            total = 4 + n + 2
            if len(self.buf) < total:
                return out
            frame = bytes(self.buf[:total])
            del self.buf[:total]
            if crc16(frame[1:]) != 0:
                raise FrameError(f"reply with a bad CRC: {preview(frame)}")
            out.append(Reply(frame[1], frame[4 : 4 + n]))


def decode_all(data: bytes, sync: int = REPLY_SYNC) -> list[Reply]:
    return ReplyParser(sync).feed(data)


def load_request(file: int, offset: int, chunk: bytes) -> bytes:
    """A LOAD frame: `chunk` are the bytes [offset, offset + len) of weight file `file`."""
    return request(CMD_LOAD, struct.pack(LOAD_HEADER_FORMAT, file, offset) + bytes(chunk))


@dataclass(frozen=True)
class LoadStatus:
    """A LOAD reply: the board's weight files and how far each is loaded."""

    files: tuple[tuple[int, int], ...]  # (layer, pe) of each file number
    flags: int
    current: int  # the file in progress (meaningful with LOAD_IN_PROGRESS)
    verified: int  # bit f: file f loaded and its sha256 checked
    next_offset: int  # the offset the board expects next for the file in progress

    @property
    def ready(self) -> bool:
        return bool(self.flags & LOAD_READY)

    @property
    def file_done(self) -> bool:
        return bool(self.flags & LOAD_FILE_DONE)

    @classmethod
    def parse(cls, payload: bytes) -> LoadStatus:
        head = struct.calcsize(LOAD_REPLY_FORMAT)
        if len(payload) < head:
            raise FrameError(f"LOAD reply has {len(payload)} bytes, expected at least {head}")
        n, flags, cur, verified, nxt = struct.unpack(LOAD_REPLY_FORMAT, payload[:head])
        if len(payload) != head + 2 * n:
            raise FrameError(f"LOAD reply has {len(payload)} bytes, expected {head + 2 * n} for {n} files")
        files = tuple((payload[head + 2 * i], payload[head + 2 * i + 1]) for i in range(n))
        return cls(files, flags, cur, verified, nxt)


@dataclass(frozen=True)
class Ident:
    version: int
    flags: int
    num_classes: int
    input_bits: int
    fan_in: int
    beat_bytes: int
    beats: int
    in_width: int
    clock_hz: int
    sha256: str

    @property
    def ready(self) -> bool:
        return bool(self.flags & 1)

    @classmethod
    def parse(cls, payload: bytes) -> Ident:
        """Decode and check an IDENT payload; FrameError names the first field that cannot be a board's."""
        if len(payload) != IDENT_LEN:
            raise FrameError(f"IDENT reply has {len(payload)} bytes, expected {IDENT_LEN}")
        v, flags, classes, bits, fan_in, bb, beats, in_width, clk, digest = struct.unpack(IDENT_FORMAT, payload)
        ident = cls(v, flags, classes, bits, fan_in, bb, beats, in_width, clk, digest.hex())
        ident.check()
        return ident

    def check(self) -> None:
        """The geometry a bitstream serves is self-consistent (docs/hostlink.md, "The image payload")."""
        if self.version != PROTOCOL_VERSION:
            raise FrameError(f"IDENT says protocol version {self.version}, this host speaks version {PROTOCOL_VERSION}")
        for name, value, low in (("classes", self.num_classes, 2), ("input bits", self.input_bits, 1),
                                 ("fan-in", self.fan_in, 1), ("beat width", self.in_width, 1), ("clock", self.clock_hz, 1)):
            if value < low:
                raise FrameError(f"IDENT says {name} {value}, which no bitstream has")
        g = self.geometry
        if (self.beat_bytes, self.beats) != (g.beat_bytes, g.in_beats) or g.image_bytes > 0xFFFF:
            raise FrameError(f"IDENT's image layout ({self.beats} beats of {self.beat_bytes} bytes) does not follow from "
                             f"fan-in {self.fan_in}, {self.input_bits} input bits and {self.in_width}-bit beats")

    @property
    def geometry(self) -> BeatGeometry:
        return BeatGeometry(self.fan_in, self.input_bits, self.in_width, self.num_classes)

    @staticmethod
    def build(geom: BeatGeometry, sha256_hex: str, clock_hz: int, flags: int = 1) -> bytes:
        return struct.pack(IDENT_FORMAT, PROTOCOL_VERSION, flags, geom.num_classes, geom.input_bits, geom.fan_in,
                           geom.beat_bytes, geom.in_beats, geom.in_width, clock_hz, bytes.fromhex(sha256_hex))
