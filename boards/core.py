"""The board-independent part of a board top: UART pins <-> host link <-> accelerator.

LinkedCore is what the cocotb tests drive through its pins (clk, rst, uart_rx,
uart_tx, leds); the board tops (boards/top.py) put a PLL, reset and the
platform's pins around it.

An accelerator with a run-time weight store (NetworkTop(..., weight_store={0: "spram"})
has `weight_images` and a `wload` port) gets a WeightLoader: LOAD frames write its
weight words and hash each file with the SHA-256 core (boards/sha256.py); the board
serves CLASSIFY only once every file's digest equals the manifest's sha256 that the
bitstream carries (docs/hostlink.md, "Loading weights").
"""

from __future__ import annotations

from typing import Any

from amaranth import Array, Cat, Const, Module, Mux, ResetInserter, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from fedxnor.boards import frames as fr
from fedxnor.boards.hostlink import HostLink
from fedxnor.boards.link_load import LoadSignature
from fedxnor.boards.sha256 import CYCLES_PER_BLOCK, Sha256
from fedxnor.boards.uart import UARTRx, UARTTx

LED_COUNT = 4  # 0 heartbeat, 1 core busy, 2 error (stretched), 3 host-link activity


class LinkedCore(wiring.Component):
    """UART + host link + an accelerator component: pins `uart_rx`, `uart_tx`, `leds`, and `ready`.

    accel: a wiring component with `image` (stream in, in_width bits), `result` (stream out,
    class index), `busy` and `cycles` (32 bits), i.e. fedxnor.hw.top.NetworkTop.
    geometry: the image layout of that accelerator; sha256: the manifest's hash (IDENT);
    clock_hz: the clock it runs at (IDENT, LED timing); divisor: clock cycles per UART bit;
    timeout_cycles: silence inside a frame before it is abandoned;
    registered_feed: HostLink's registered image-byte write (the ECP5 builds, with read_regs).
    """

    def __init__(self, accel: Any, geometry: fr.BeatGeometry, sha256: str, *, clock_hz: int, divisor: int,
                 timeout_cycles: int | None = None, heartbeat_bits: int | None = None,
                 registered_feed: bool = False):
        self.accel = accel
        self.geometry = geometry
        self.clock_hz = int(clock_hz)
        self.divisor = int(divisor)
        # default: 100 byte times of silence, at least 50 ms (USB-serial adapters deliver in bursts)
        self.timeout_cycles = int(timeout_cycles or max(100 * 10 * divisor, clock_hz // 20))
        self.heartbeat_bits = heartbeat_bits or max(4, (self.clock_hz // 2).bit_length())
        self.ident = fr.Ident.build(geometry, sha256, self.clock_hz)
        self.files = tuple(getattr(accel, "weight_images", ()) or ())
        self.loader = WeightLoader(self.files, accel.wload, byte_cycles=10 * self.divisor) if self.files else None
        self.loaded = Signal()  # every run-time weight file checked (always 1 without a weight store)
        self.registered_feed = bool(registered_feed)
        super().__init__({
            "uart_rx": In(1, init=1), "uart_tx": Out(1, init=1), "leds": Out(LED_COUNT),
            "ready": In(1, init=1),  # an external enable for serving; ANDed with the loader's verdict if any
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.rxu = rxu = UARTRx(self.divisor)
        m.submodules.txu = txu = UARTTx(self.divisor)
        m.submodules.link = link = HostLink(self.geometry, self.ident, self.timeout_cycles,
                                            files=tuple((f.layer, f.pe) for f in self.files),
                                            registered_feed=self.registered_feed)
        m.submodules.accel = accel = self.accel
        serving = Signal()
        m.d.comb += [rxu.rx.eq(self.uart_rx), self.uart_tx.eq(txu.tx), serving.eq(self.ready & self.loaded),
                     link.ready.eq(serving)]
        if self.loader is None:
            m.d.comb += self.loaded.eq(1)
        else:
            m.submodules.loader = ld = self.loader
            wiring.connect(m, link.load, ld.link)
            m.d.comb += [accel.wload.eq(ld.wload), self.loaded.eq(ld.loaded)]
        wiring.connect(m, rxu.data, link.rx)
        wiring.connect(m, link.tx, txu.data)
        wiring.connect(m, link.image, accel.image)
        wiring.connect(m, accel.result, link.result)
        m.d.comb += link.core_cycles.eq(accel.cycles)

        heartbeat = Signal(self.heartbeat_bits)
        err_hold = Signal(self.heartbeat_bits - 2)  # the error LED stays on ~1/8 s after an error reply
        m.d.sync += heartbeat.eq(heartbeat + 1)
        with m.If(link.error):
            m.d.sync += err_hold.eq(~0)
        with m.Elif(err_hold != 0):
            m.d.sync += err_hold.eq(err_hold - 1)
        m.d.comb += self.leds.eq(heartbeat[-1] & serving | (accel.busy << 1) | ((err_hold != 0) << 2) | (link.active << 3))
        return m


HEX_NEWLINE = 0x0A


class WeightLoader(wiring.Component):
    """LOAD chunks -> weight words on the accelerator's `wload` port, and each file's SHA-256 against the manifest.

    files: hw.weightstore.WritableImage per file number (its row select, size and the manifest's sha256);
    wload: the accelerator's write port (a Signal of hw.weightstore.write_layout).

    `link` is the host link's LOAD port (boards/link_load.py LoadSignature): `chunk.header` pulses once a LOAD
    header (`file`, `offset`, `length` data bytes) is in; `chunk.data` carries the data bytes; `chunk.end` pulses
    at the frame's end, `chunk.good` when its CRC checked. Back on `status`: `busy` until the frame's verdict
    `code` (0, or the error to answer) is settled, and the status the LOAD reply carries (`flags`, `current`,
    `verified`, `next`). `loaded`: every file verified.

    The text is parsed as it arrives: a hex digit shifts a nibble in, a newline writes the word and steps
    the address (the exporter's $readmemh files, docs/datapath.md). The parse needs no checks of its own:
    the file counts only if its bytes hash to the manifest's sha256, i.e. are the exported file exactly.
    A chunk at offset 0 (re)starts its file: the file stops counting, the SHA-256 core and its byte FIFO
    are reset. Any other chunk must continue the file in progress at the next offset.
    """

    def __init__(self, files, wload: Signal, *, byte_cycles: int):
        self.files = tuple(files)
        self.byte_cycles = int(byte_cycles)  # clock cycles per UART byte: sizes the FIFO in front of the hash core
        n = len(self.files)
        if not 1 <= n <= 16:
            raise ValueError(f"the loader takes 1..16 weight files, got {n}")
        self.wload_shape = wload.shape()
        self.pw = max(f.nbytes for f in self.files).bit_length() + 1
        super().__init__({"link": In(LoadSignature()), "wload": Out(self.wload_shape), "loaded": Out(1)})

    def fifo_depth(self) -> int:
        stall = CYCLES_PER_BLOCK + 64
        return 1 << max(2, (-(-stall // self.byte_cycles) + 2 - 1).bit_length())

    def elaborate(self, platform) -> Module:
        m = Module()
        c, s = self.link.chunk, self.link.status
        n = len(self.files)
        restart = Signal()  # a file starts over: the hash core and its FIFO forget everything
        sha_core = Sha256()
        m.submodules.sha = ResetInserter(restart)(sha_core)
        # the hash core stops taking bytes for CYCLES_PER_BLOCK after every 64th while bytes keep coming,
        # one per UART byte time: the FIFO holds what arrives meanwhile (2 at 115200 baud and 30 MHz)
        fifo_core = SyncFIFO(width=9, depth=self.fifo_depth())
        m.submodules.fifo = ResetInserter(restart)(fifo_core)

        cur = Signal(range(n))
        cur_valid = Signal()  # a file is in progress
        pos = Signal(self.pw)  # bytes of it received so far
        last_pos = Signal(self.pw)  # its size - 1
        verified = Signal(n)
        accepted = Signal()  # this frame's chunk continues the file in progress
        file_done = Signal()
        overflow = Signal()
        in_range = Signal()
        fsize = Signal(self.pw)
        fbits = max(1, (n - 1).bit_length())
        off = Signal(self.pw)  # the chunk's offset: no file is longer than pw bits
        big = Signal()  # the offset has bits above those
        end_at = Signal(max(self.pw, 16) + 1)
        shift = Signal(4 * max(f.digits for f in self.files))
        waddr = Signal(len(self.wload.addr))
        sizes = Array(Const(f.nbytes, self.pw) for f in self.files)
        digests = Array(Const(int(f.sha256, 16), 256) for f in self.files)
        m.d.comb += [self.loaded.eq(verified == (1 << n) - 1), s.verified.eq(verified), s.current.eq(cur),
                     s.flags.eq(self.loaded | (file_done << 1) | (cur_valid << 2)),
                     s.next.eq(Mux(cur_valid, pos, 0))]

        # data bytes: hex text -> words on wload, and {byte, last} into the FIFO in front of the hash core
        take = Signal()
        m.d.comb += take.eq(c.data.valid & accepted)
        nibble = Signal(4)
        m.d.comb += nibble.eq(c.data.payload[:4] + Mux(c.data.payload[6], 9, 0))  # '0'-'9' and 'a'-'f'
        m.d.sync += [restart.eq(0), self.wload.en.eq(0)]
        with m.If(take):
            m.d.sync += pos.eq(pos + 1)
            with m.If(c.data.payload == HEX_NEWLINE):
                m.d.sync += [self.wload.en.eq(1), self.wload.row.eq(cur), self.wload.addr.eq(waddr),
                             self.wload.data.eq(shift), waddr.eq(waddr + 1), shift.eq(0)]
            with m.Else():
                m.d.sync += shift.eq(Cat(nibble, shift))
            with m.If(~fifo_core.w_rdy):
                m.d.sync += overflow.eq(1)
        m.d.comb += [fifo_core.w_data.eq(Cat(c.data.payload, pos == last_pos)), fifo_core.w_en.eq(take),
                     sha_core.data.valid.eq(fifo_core.r_rdy), sha_core.data.payload.byte.eq(fifo_core.r_data[:8]),
                     sha_core.data.payload.last.eq(fifo_core.r_data[8]), fifo_core.r_en.eq(sha_core.data.ready)]

        def frame_end():
            """The frame ended (after its header, or cut short before it): settle this frame's verdict."""
            with m.If(c.end):
                m.d.sync += [s.busy.eq(1), accepted.eq(0)]
                with m.If(~c.good):  # a damaged chunk: the file in progress is lost
                    m.d.sync += cur_valid.eq(0)
                    m.next = "SETTLE"
                with m.Elif(accepted & (pos == fsize)):
                    m.next = "HASH"
                with m.Else():
                    m.next = "SETTLE"

        with m.FSM(name="load_fsm"):
            with m.State("IDLE"):
                frame_end()
                with m.If(c.header):
                    m.d.sync += [in_range.eq(c.file < n), fsize.eq(sizes[c.file[:fbits]]), off.eq(c.offset),
                                 big.eq(c.offset[self.pw :] != 0), end_at.eq(c.offset[: self.pw] + c.length),
                                 accepted.eq(0), file_done.eq(0)]
                    m.next = "MEASURE"
            # the chunk's verdict, long before its first data byte arrives, in two steps: the compares are
            # registered first (compares, then the verdict's clock enables, were the UP5K's critical path)
            too_long, at_start, continues = Signal(), Signal(), Signal()
            with m.State("MEASURE"):
                m.d.sync += [too_long.eq(big | (end_at > fsize)), at_start.eq(off == 0),
                             continues.eq(cur_valid & (c.file == cur) & (off == pos))]
                m.next = "CHECK"
            with m.State("CHECK"):
                m.next = "RECEIVE"
                with m.If(~in_range):
                    m.d.sync += s.code.eq(fr.ERR_LOAD_ORDER)
                with m.Elif(too_long):
                    m.d.sync += s.code.eq(fr.ERR_LENGTH)
                with m.Elif(at_start):
                    m.d.sync += [s.code.eq(0), accepted.eq(1), cur.eq(c.file), cur_valid.eq(1), pos.eq(0),
                                 last_pos.eq(fsize - 1), waddr.eq(0), shift.eq(0), overflow.eq(0), restart.eq(1),
                                 verified.bit_select(c.file[:fbits], 1).eq(0)]
                with m.Elif(continues):
                    m.d.sync += [s.code.eq(0), accepted.eq(1)]
                with m.Else():
                    m.d.sync += s.code.eq(fr.ERR_LOAD_ORDER)
            with m.State("RECEIVE"):
                frame_end()
            with m.State("HASH"):  # the file's last byte is in: wait for the digest (an overflow lost bytes)
                with m.If((sha_core.done & ~fifo_core.r_rdy) | overflow):
                    m.next = "COMPARE"
            # the 256-bit compare against the file's digest is registered before the verdict uses it: compare,
            # digest select and verdict in one cycle were the UP5K's critical path (8 LUT levels, 31-37 ns)
            match = Signal()
            with m.State("COMPARE"):
                m.d.sync += match.eq((sha_core.digest == digests[cur]) & ~overflow)
                m.next = "VERDICT"
            with m.State("VERDICT"):
                m.d.sync += [verified.bit_select(cur, 1).eq(match), file_done.eq(match), cur_valid.eq(0),
                             s.code.eq(Mux(match, 0, fr.ERR_HASH)), s.busy.eq(0)]
                m.next = "IDLE"
            with m.State("SETTLE"):
                m.d.sync += s.busy.eq(0)
                m.next = "IDLE"
        return m
