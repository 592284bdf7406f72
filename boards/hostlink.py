"""The host-link protocol engine in hardware: UART bytes in, accelerator streams, UART bytes out.

One request at a time (stop and wait): the engine receives a whole frame, checks
its CRC, length and command, runs it, sends the reply, and only then listens
again (bytes that arrive meanwhile are dropped; the host waits for each reply).
A CLASSIFY payload of the right length streams into the accelerator beat by beat
as it arrives (no block RAM spent on a frame buffer: the accelerator has its own
image buffer). The CRC is known only at the end, so a corrupted frame's image is
classified anyway and its result dropped; a frame cut short is completed with
filler beats so that the core never holds half an image. docs/hostlink.md is the
protocol's description; frames.py is the same protocol in Python.

HostLink only joins its parts, each a component in a file of its own:

    rx --> FrameReceiver (link_rx.py) --frame--+--> ImageFeed (link_feed.py) ------------> image
                                               +--> LoadFrames (link_load.py) -----------> load.chunk
                                               +--> RequestControl (link_control.py) <--- result, load.status
                                                        | reply
                                                        v
                                                    ReplySender (link_tx.py) ------------> tx

With weight files (a run-time weight store, hw/weightstore.py), LOAD frames are
served too: LoadFrames parses the 5-byte header (file, offset) and hands the
chunk's bytes one by one to the weight loader (boards/core.py WeightLoader); the
reply waits for the loader's verdict (a file's last chunk waits for its SHA-256).
"""

from __future__ import annotations

from amaranth import Module, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from fedxnor.boards import frames as fr
from fedxnor.boards.link_control import RequestControl
from fedxnor.boards.link_feed import ImageFeed
from fedxnor.boards.link_load import LoadFrames, LoadSignature
from fedxnor.boards.link_rx import FrameReceiver, crc16_byte
from fedxnor.boards.link_tx import ReplySender

__all__ = ["HostLink", "crc16_byte"]


class HostLink(wiring.Component):
    """Frame receiver, image feed, LOAD handling, controller and reply sender, joined.

    geometry: how images are laid out in CLASSIFY payloads (frames.BeatGeometry);
    ident: the IDENT reply payload (frames.Ident.build), its flags byte replaced by `ready`;
    timeout: clock cycles of silence inside a frame before it is abandoned (ERR_TIMEOUT);
    files: the run-time weight files, ((layer, pe), ...) per file number; none: LOAD is an unknown command
    (and there is no `load` port);
    registered_feed: ImageFeed's registered image-byte write (the ECP5 builds).
    """

    def __init__(self, geometry: fr.BeatGeometry, ident: bytes, timeout: int, files: tuple = (), *,
                 registered_feed: bool = False):
        self.geometry = geometry
        self.registered_feed = bool(registered_feed)
        self.ident = bytes(ident)
        self.timeout = int(timeout)
        self.class_width = max(1, (geometry.num_classes - 1).bit_length())
        self.files = tuple((int(layer), int(pe)) for layer, pe in files)
        members = {
            "rx": In(stream.Signature(8, always_ready=True)),
            "tx": Out(stream.Signature(8)),
            "image": Out(stream.Signature(unsigned(geometry.in_width))),
            "result": In(stream.Signature(unsigned(self.class_width))),
            "core_cycles": In(32),
            "ready": In(1),  # the model is loaded; CLASSIFY is refused until it is
            "error": Out(1),  # one-cycle pulse per error reply
            "active": Out(1),  # inside a request (receiving, running or replying)
        }
        if self.files:  # chunks out to the weight loader, its verdict and status back
            members["load"] = Out(LoadSignature())
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        has_load = bool(self.files)
        m.submodules.receiver = rx = FrameReceiver(self.timeout, load=has_load)
        m.submodules.feed = feed = ImageFeed(self.geometry, registered_feed=self.registered_feed)
        m.submodules.control = ctl = RequestControl(self.class_width, load=has_load)
        m.submodules.sender = tx = ReplySender(self.ident, self.class_width, self.files)

        wiring.connect(m, wiring.flipped(self.rx), rx.rx)
        wiring.connect(m, wiring.flipped(self.image), feed.image)
        wiring.connect(m, wiring.flipped(self.result), ctl.result)
        wiring.connect(m, ctl.reply, tx.reply)
        wiring.connect(m, tx.tx, wiring.flipped(self.tx))
        m.d.comb += [rx.listen.eq(ctl.listen), ctl.store.eq(feed.store), ctl.all_sent.eq(feed.all_sent),
                     feed.pad.eq(ctl.pad), feed.ready.eq(self.ready), ctl.ready.eq(self.ready), tx.ready.eq(self.ready),
                     tx.core_cycles.eq(self.core_cycles), self.error.eq(ctl.error), self.active.eq(ctl.active)]
        if has_load:
            m.submodules.load_frames = ld = LoadFrames()
            wiring.connect(m, rx.frame, feed.frame, ld.frame, ctl.frame)
            wiring.connect(m, ld.chunk, wiring.flipped(self.load.chunk))
            wiring.connect(m, wiring.flipped(self.load.status), ctl.status, tx.status)
            m.d.comb += ctl.loading.eq(ld.loading)
        else:
            wiring.connect(m, rx.frame, feed.frame, ctl.frame)
        return m
