"""Host driver: talk to a board over a serial port (pyserial), classify images, compare with the reference.

BoardLink is one serial connection speaking docs/hostlink.md. classify_images()
sends prepared images one request at a time (the board serves one at a time),
retries a request whose reply is an error or does not come, and checks every
answer against fedxnor.export.reference.Reference. load_weights() sends the
weight files of a board's run-time weight store (SPRAM on the UP5K) in LOAD
chunks; the board hashes them and serves once they match the manifest.

Whatever the board sends, the driver either returns a checked value or raises
one error: FedxnorError (exit 2) for a bad argument or an export that is not the
board's, BoardError (exit 4) for a board or link that answers garbage, answers
nothing in time, or goes away (docs/hostlink.md, "Errors on the host").
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from time import monotonic  # (a module name of our own: the fuzz tests drive the driver on a fake clock)
from typing import Any

import numpy as np

from fedxnor.boards import frames as fr
from fedxnor.errors import FedxnorError

EXIT_BOARD = 4
BAUD_RANGE = fr.BAUD_RANGE
TIMEOUT_RANGE = (0.001, 3600.0)  # seconds per reply
COMMAND_NAMES = {fr.CMD_IDENT: "IDENT", fr.CMD_CLASSIFY: "CLASSIFY", fr.CMD_STATS: "STATS", fr.CMD_LOAD: "LOAD"}


class BoardError(FedxnorError):
    """The board or the serial link misbehaved: no reply in time, a reply that does not parse, a port that went away.

    Exit 4: the command line was fine, the board was not (a bitstream that is not fedxnor's, a wrong baud rate,
    a cable unplugged)."""

    exit_code = EXIT_BOARD


class LinkError(Exception):
    """One try got no valid reply (timeout or a frame that does not parse): request() tries again."""


def check_link_args(baud: Any, timeout: Any) -> None:
    """--baud and --timeout in range (exit 2): 0 is not 'the default', NaN is not a number of seconds."""
    if isinstance(baud, bool) or not isinstance(baud, int) or not BAUD_RANGE[0] <= baud <= BAUD_RANGE[1]:
        raise FedxnorError(f"--baud {baud}: choose a baud rate in {BAUD_RANGE[0]}..{BAUD_RANGE[1]}, "
                           "the one the bitstream was built with (default 115200)")
    if not isinstance(timeout, int | float) or not math.isfinite(timeout) or not TIMEOUT_RANGE[0] <= timeout <= TIMEOUT_RANGE[1]:
        raise FedxnorError(f"--timeout {timeout}: choose {TIMEOUT_RANGE[0]}..{TIMEOUT_RANGE[1]:.0f} seconds per reply "
                           "(default 2)")


def command_name(cmd: int) -> str:
    return f"{COMMAND_NAMES.get(cmd, 'command')} (0x{cmd:02x})"


class BoardLink:
    """A serial connection to a board. `port` is a device path or any pyserial URL (e.g. socket://host:port).

    serial_obj: anything with read(n), write(b), flush() and close() instead of opening `port`.
    quiet: seconds of silence that end a resynchronisation after an error (at most `timeout`)."""

    def __init__(self, port: str, baud: int = 115200, timeout: float = 2.0, serial_obj: Any = None, quiet: float = 0.1):
        check_link_args(baud, timeout)
        self.port, self.baud = port, baud
        if serial_obj is None:
            import serial

            try:
                serial_obj = serial.serial_for_url(port, baudrate=baud, timeout=0.05)
            except (OSError, ValueError) as e:  # (serial.SerialException is an OSError)
                raise FedxnorError(f"cannot open serial port {port} ({e}); check the port name (e.g. /dev/ttyUSB1), "
                                   "that the board is plugged in, and your permissions (group dialout)") from None
        self.ser = serial_obj
        self.timeout = timeout
        self.quiet = min(quiet, timeout)
        self.parser = fr.ReplyParser()

    def close(self) -> None:
        try:
            self.ser.close()
        except OSError:
            pass  # a port that already went away: nothing left to close

    def __enter__(self) -> BoardLink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _io(self, op: Callable[[], Any]) -> Any:
        try:
            return op()
        except OSError as e:  # unplugged, or the device node went away mid-session
            raise BoardError(f"the serial link {self.port} failed ({e}); check the cable and that the board is powered") \
                from None

    def _read(self) -> bytes:
        waiting = self._io(lambda: getattr(self.ser, "in_waiting", 0)) or 1
        return bytes(self._io(lambda: self.ser.read(max(1, min(int(waiting), 4096)))) or b"")

    def resync(self) -> None:
        """Drop whatever arrives until the line has been quiet for `quiet` seconds (at most `timeout` in all)."""
        self.parser = fr.ReplyParser()
        end = monotonic() + self.timeout
        last = monotonic()
        while monotonic() < end:
            if self._read():
                last = monotonic()
            elif monotonic() - last >= self.quiet:
                return

    def transact(self, cmd: int, payload: bytes = b"", raw: bytes | None = None) -> fr.Reply:
        """Send one request (or `raw` bytes) and wait for one reply frame; LinkError when none parses in time."""
        data = raw if raw is not None else fr.request(cmd, payload)
        # start clean: a late or doubled reply to an earlier request must not pass for this one's
        self.parser = fr.ReplyParser()
        if hasattr(self.ser, "reset_input_buffer"):
            self._io(self.ser.reset_input_buffer)
        self._io(lambda: (self.ser.write(data), self.ser.flush()))
        end = monotonic() + self.timeout
        while monotonic() < end:
            data = self._read()
            if not data:
                continue
            try:
                replies = self.parser.feed(data)
            except fr.FrameError as e:
                self.parser = fr.ReplyParser()
                raise LinkError(str(e)) from None
            if replies:
                return replies[0]
        raise LinkError(f"no complete reply within {self.timeout} s")

    def request(self, cmd: int, payload: bytes = b"", retries: int = 2) -> fr.Reply:
        """transact() with retries: after an error reply or a timeout, resynchronise and send again."""
        last = None
        for _ in range(retries + 1):
            try:
                reply = self.transact(cmd, payload)
            except LinkError as e:
                last = str(e)
                self.resync()
                continue
            if reply.ok and reply.code == (cmd | fr.REPLY_OK):
                return reply
            last = reply.describe()
            self.resync()
        raise BoardError(f"the board did not answer {command_name(cmd)} after {retries + 1} tries (last: {last}); "
                         f"check the port, the baud rate ({self.baud}) and that the board runs a fedxnor bitstream")

    def _parse(self, cmd: int, parse: Callable[[bytes], Any], payload: bytes = b"") -> Any:
        """request() and decode its reply; a reply that does not decode is the board's fault, named with its bytes."""
        got = self.request(cmd, payload).payload
        try:
            return parse(got)
        except (fr.FrameError, struct.error) as e:
            raise BoardError(f"the board's {command_name(cmd)} reply does not parse ({e}; it sent {fr.preview(got)}); "
                             "check that the board runs a bitstream of this export and fedxnor version, or rebuild it") \
                from None

    def ident(self) -> fr.Ident:
        return self._parse(fr.CMD_IDENT, fr.Ident.parse)

    def stats(self) -> dict[str, int]:
        def parse(payload: bytes) -> dict[str, int]:
            cycles, images, errors, _ = struct.unpack(fr.STATS_FORMAT, payload)
            return {"cycles": cycles, "images": images, "errors": errors}

        return self._parse(fr.CMD_STATS, parse)

    def load_status(self) -> fr.LoadStatus:
        """The board's weight files ((layer, pe) per file number) and how far each is loaded."""
        return self._parse(fr.CMD_LOAD, fr.LoadStatus.parse)

    def classify(self, geometry: fr.BeatGeometry, x: np.ndarray) -> tuple[int, int]:
        """(class, the core's busy-cycle counter after this image)."""

        def parse(payload: bytes) -> tuple[int, int]:
            cls, cycles = struct.unpack(fr.CLASSIFY_REPLY_FORMAT, payload)
            if cls >= geometry.num_classes:
                raise fr.FrameError(f"class {cls} of a {geometry.num_classes}-class model")
            return cls, cycles

        return self._parse(fr.CMD_CLASSIFY, parse, geometry.link_bytes(x))


def classify_images(link: BoardLink, reference, images: np.ndarray, labels: np.ndarray | None = None,
                    progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Check the board's model identity, classify `images` on it, compare with the reference.

    Returns images, mismatches, agreement, accuracy (with labels), first mismatching indices,
    cycles per image (from the board's busy-cycle counter), link images/s, retried requests.
    """
    export = reference.export
    ident = link.ident()
    if ident.sha256 != export.sha256:
        raise FedxnorError(f"the board runs model {ident.sha256[:16]}..., the export is {export.sha256[:16]}...; "
                           "load the bitstream built from this export, or pass its --export")
    if not ident.ready:
        raise FedxnorError("the board's weights are not loaded; run 'fedxnor board load --port PORT "
                           f"{export.directory}' first")
    geom = ident.geometry
    first = export.layers[0]
    if (geom.fan_in, geom.input_bits, geom.num_classes) != (first.fan_in, first.input_bits, export.num_classes):
        # the model hash matched: a bitstream of this export cannot disagree with it
        raise BoardError(f"the board says its model {export.sha256[:16]}... takes {geom.fan_in} inputs of "
                         f"{geom.input_bits} bits into {geom.num_classes} classes, the export says {first.fan_in}, "
                         f"{first.input_bits}, {export.num_classes}; rebuild the bitstream from this export")
    x = reference.prepare(images)
    ref = reference.run(x).classes
    got = np.zeros(len(x), np.int64)
    counters = []
    t0 = monotonic()
    for i, v in enumerate(x):
        got[i], c = link.classify(geom, v)
        counters.append(c)
        if progress:
            progress(i + 1)
    wall = monotonic() - t0
    stats = link.stats()
    mism = np.flatnonzero(got != ref)
    deltas = np.diff(np.asarray(counters, np.int64) % (1 << 32)) % (1 << 32) if len(counters) > 1 else np.array([])
    out = {"images": len(x), "mismatches": int(len(mism)), "agreement": float((got == ref).mean()) if len(x) else 1.0,
           "first_mismatches": [int(i) for i in mism[:10]], "classes": got.tolist(),
           "cycles_per_image": float(np.median(deltas)) if len(deltas) else None,
           "link_images_per_s": round(len(x) / wall, 2) if wall > 0 else None, "board_errors": stats["errors"],
           "board_clock_hz": ident.clock_hz, "model_sha256": ident.sha256}
    if labels is not None:
        out["accuracy"] = float((got == np.asarray(labels)[: len(x)]).mean()) if len(x) else 0.0
    return out


LOAD_CHUNK = 1024  # bytes of a weight file per LOAD frame (1 % framing overhead; a lost frame costs little)


def load_weights(link: BoardLink, export, *, chunk: int = LOAD_CHUNK, attempts: int = 3,
                 progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Send the export's weight files that the board keeps in its run-time store, then check it is ready.

    Each file goes in chunks of `chunk` bytes, exactly as the exporter wrote it; a chunk answered with an
    error (or not at all) restarts its file, up to `attempts` times. progress(bytes_sent, bytes_total).
    Returns files, bytes, seconds, bytes_per_s, restarts.
    """
    if not 1 <= chunk <= 0xFFFF - fr.LOAD_HEADER_LEN:
        raise FedxnorError(f"LOAD chunk of {chunk} bytes: choose 1..{0xFFFF - fr.LOAD_HEADER_LEN}")
    ident = link.ident()
    if ident.sha256 != export.sha256:
        raise FedxnorError(f"the board runs model {ident.sha256[:16]}..., the export is {export.sha256[:16]}...; "
                           "load the weights of the export the bitstream was built from")
    status = link.load_status()
    if not status.files:
        raise FedxnorError("the board keeps every weight in its bitstream: there is nothing to load")
    blobs, seen = [], set()
    for layer, pe in status.files:
        if layer >= len(export.layers) or pe >= export.layers[layer].pe or (layer, pe) in seen:
            # the model hash matched, so the board's own table is wrong
            raise BoardError(f"the board asks for layer {layer} PE {pe}, which its model does not have (or twice); "
                             "rebuild the bitstream from this export")
        seen.add((layer, pe))
        blobs.append(export.layers[layer].weight_files[pe].read_bytes())
    total, sent, restarts = sum(len(b) for b in blobs), 0, 0
    t0 = monotonic()
    for f, blob in enumerate(blobs):
        for _ in range(attempts):
            done = _send_file(link, f, blob, chunk, lambda n, base=sent: progress(base + n, total) if progress else None)
            if done:
                break
            restarts += 1
            link.resync()
        else:
            layer, pe = status.files[f]
            raise BoardError(f"the board did not take weight file {f} ({export.layers[layer].weight_files[pe].name}) "
                             f"after {attempts} tries; check the port and the baud rate")
        sent += len(blob)
    wall = monotonic() - t0
    final = link.load_status()
    if not final.ready:
        raise BoardError(f"every weight file was sent but the board is not ready (verified mask {final.verified:#x}); "
                         "run the load again")
    return {"files": len(blobs), "bytes": total, "seconds": round(wall, 3),
            "bytes_per_s": round(total / wall, 1) if wall > 0 else None, "restarts": restarts}


def _send_file(link: BoardLink, f: int, blob: bytes, chunk: int, progress: Callable[[int], None]) -> bool:
    """One try at file `f`: True once the board has hashed it and found the manifest's digest."""
    for off in range(0, len(blob), chunk):
        part = blob[off : off + chunk]
        try:
            reply = link.transact(fr.CMD_LOAD, struct.pack(fr.LOAD_HEADER_FORMAT, f, off) + part)
        except LinkError:
            return False
        if reply.error == fr.ERR_HASH:
            raise FedxnorError(f"the board's SHA-256 of weight file {f} differs from the manifest's: the file was "
                               "changed after export, or the bitstream was built from another export")
        if not reply.ok or reply.code != (fr.CMD_LOAD | fr.REPLY_OK):
            return False
        progress(off + len(part))
        if off + len(part) == len(blob):
            try:
                return fr.LoadStatus.parse(reply.payload).file_done
            except fr.FrameError:
                return False  # a garbled status: send the file again (load_weights gives up after `attempts`)
    return False
