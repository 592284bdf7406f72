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

With weight files (a run-time weight store, hw/weightstore.py), LOAD frames are
served too: the engine parses the 5-byte header (file, offset) and hands the
chunk's bytes one by one to the weight loader (boards/core.py WeightLoader), then
answers with the loader's verdict once it has one (a file's last chunk waits for
its SHA-256).
"""

from __future__ import annotations

import struct

from amaranth import Array, Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from fedxnor.boards import frames as fr


def crc16_byte(crc, byte):
    """Next CRC-16/CCITT-FALSE after one byte: the bitwise recurrence unrolled (pure XOR logic)."""
    bits = [crc[i] for i in range(16)]
    for k in range(7, -1, -1):
        fb = bits[15] ^ byte[k]
        nxt = [fb] + bits[:15]  # shift left by one; bit 0 takes the feedback
        nxt[5] = nxt[5] ^ fb  # poly 0x1021: taps at bits 12, 5, 0
        nxt[12] = nxt[12] ^ fb
        bits = nxt
    out = bits[0]
    for i in range(1, 16):
        out = out | (bits[i] << i)
    return out


class HostLink(wiring.Component):
    """Frame parser, command dispatcher and reply generator.

    geometry: how images are laid out in CLASSIFY payloads (frames.LinkGeometry);
    ident: the IDENT reply payload (frames.Ident.build), its flags byte replaced by `ready`;
    timeout: clock cycles of silence inside a frame before it is abandoned (ERR_TIMEOUT);
    files: the run-time weight files, ((layer, pe), ...) per file number; none: LOAD is an unknown command;
    registered_feed: write each image byte into its lane a cycle after it arrives, from registers (the byte, a
    write strobe and a one-hot lane select), so that each lane's clock enable is one LUT of two flip-flops, not
    the receiver's state decode fanned out to every lane (ECP5: that decode was the critical path at ~100 MHz;
    on iCE40 the ~100 extra flip-flops cost more than they gain).
    """

    def __init__(self, geometry: fr.LinkGeometry, ident: bytes, timeout: int, files: tuple = (), *,
                 registered_feed: bool = False):
        self.geometry = geometry
        self.registered_feed = bool(registered_feed)
        self.ident = bytes(ident)
        self.timeout = int(timeout)
        self.class_width = max(1, (geometry.num_classes - 1).bit_length())
        self.files = tuple((int(layer), int(pe)) for layer, pe in files)
        load = {}
        if self.files:  # the LOAD side: header and bytes out to the loader, its verdict and status back
            load = {"ld_header": Out(1), "ld_file": Out(8), "ld_offset": Out(32), "ld_len": Out(16),
                    "ld_byte": Out(8), "ld_strobe": Out(1), "ld_end": Out(1), "ld_good": Out(1),
                    "ld_busy": In(1), "ld_code": In(8), "ld_flags": In(8), "ld_current": In(8),
                    "ld_verified": In(16), "ld_next": In(32)}
        super().__init__({**load, 
            "rx": In(stream.Signature(8, always_ready=True)),
            "tx": Out(stream.Signature(8)),
            "image": Out(stream.Signature(unsigned(geometry.in_width))),
            "result": In(stream.Signature(unsigned(self.class_width))),
            "core_cycles": In(32),
            "ready": In(1),  # the model is loaded; CLASSIFY is refused until it is
            "error": Out(1),  # one-cycle pulse per error reply
            "active": Out(1),  # inside a request (receiving, running or replying)
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        g = self.geometry
        nbytes = g.image_bytes
        byte = self.rx.payload
        # ---- receiver: frames in; on the last CRC byte (or a timeout) it raises `done` for one cycle
        crc = Signal(16)
        cmd = Signal(8)
        is_ident, is_stats, is_classify = Signal(), Signal(), Signal()  # cmd decoded as it arrives
        has_load = bool(self.files)
        is_load = Signal()
        loading = Signal()  # a LOAD frame with data: its payload goes to the loader
        hdr = Signal(range(fr.LOAD_HEADER_LEN + 1))  # LOAD header bytes received
        length = Signal(16)
        left = Signal(16)  # payload bytes still to come
        store = Signal()  # this frame's payload streams into the core (a CLASSIFY of the right length, model ready)
        length_zero = Signal()
        idle_timer = Signal(range(self.timeout + 1))
        expired = Signal()
        last = Signal()  # the next payload byte is the last one
        crc_ok = Signal()
        timed_out = Signal()
        done = Signal()  # a frame ended (complete or timed out); the controller takes it
        listen = Signal(init=1)  # the controller is waiting for a frame (a register: no FSM decode in front of rx)
        receiving = Signal()
        # image feed: payload byte k of a beat is written straight into its lane of `beat` (flip-flops with an
        # enable, no shifter: the beat is as wide as the core's input); the core takes the full beat within a
        # few cycles, long before the next byte can arrive (a byte takes >= 40 cycles on the wire)
        beat = Signal(g.in_width, reset_less=True)  # lane enables only: plain SB_DFFE, no logic per bit
        out_valid = Signal()
        beats_sent = Signal(range(g.beats + 1))
        all_sent = Signal()  # beats_sent == beats, registered
        pad = Signal()  # the controller pushes filler beats (a frame that timed out mid-image)

        m.d.comb += [self.image.valid.eq(out_valid), self.image.payload.eq(beat)]
        with m.If(self.image.valid & self.image.ready):
            m.d.sync += [out_valid.eq(0), beats_sent.eq(beats_sent + 1), all_sent.eq(beats_sent == g.beats - 1)]
        with m.If(pad & ~out_valid & ~all_sent):
            m.d.sync += out_valid.eq(1)  # filler: the beat as it is (the result of such an image is dropped)
        if self.registered_feed:  # the write happens here, a cycle after the byte (BODY below only registers it)
            # lane_hot moves and restarts only on registered strobes (write_q, restart_q): its ~100 flip-flops'
            # enable is one LUT of two flip-flops, not the receiver's state decode (an 8.4 ns path on the ULX3S)
            lane_hot = Signal(g.beat_bytes, init=1)  # one-hot: the lane the next payload byte goes to
            byte_q = Signal(8, reset_less=True)
            write_q = Signal()
            restart_q = Signal()
            feed_restart = [restart_q.eq(1)]  # a new frame's first byte goes to lane 0 (>= 40 cycles later)
            m.d.sync += [write_q.eq(0), restart_q.eq(0)]
            with m.If(restart_q):
                m.d.sync += lane_hot.eq(1)
            with m.If(write_q):
                for k in range(g.beat_bytes):
                    with m.If(lane_hot[k]):
                        lane = beat[k * 8 : min(k * 8 + 8, g.in_width)]
                        m.d.sync += lane.eq(byte_q[: len(lane)])
                with m.If(lane_hot[-1]):  # the beat's last lane
                    m.d.sync += out_valid.eq(1)
                m.d.sync += lane_hot.eq(lane_hot.rotate_left(1))
        else:  # BODY writes the lane itself
            in_beat = Signal(range(g.beat_bytes))
            beat_last = Signal()  # the next payload byte completes a beat
            feed_restart = [in_beat.eq(0), beat_last.eq(g.beat_bytes == 1)]
        m.d.sync += [done.eq(0), self.error.eq(0)]
        if has_load:
            m.d.sync += [self.ld_header.eq(0), self.ld_strobe.eq(0)]
            m.d.comb += [self.ld_len.eq(length - fr.LOAD_HEADER_LEN), self.ld_end.eq(done & loading),
                         self.ld_good.eq(crc_ok & ~timed_out)]

        with m.FSM(name="rx_fsm"):
            with m.State("IDLE"):
                with m.If(self.rx.valid & (byte == fr.REQ_SYNC) & listen):
                    # store/loading belong to the new frame from here on (a frame cut short before LEN1 has neither)
                    m.d.sync += [crc.eq(0xFFFF), timed_out.eq(0), store.eq(0), loading.eq(0)]
                    m.next = "CMD"

            def on_byte(target, *actions, crc_next=True):
                m.d.comb += receiving.eq(1)
                with m.If(self.rx.valid):
                    m.d.sync += list(actions)
                    if crc_next:
                        m.d.sync += crc.eq(crc16_byte(crc, byte))
                    if target:
                        m.next = target
                with m.Elif(expired):
                    m.d.sync += [timed_out.eq(1), done.eq(1)]
                    m.next = "IDLE"

            with m.State("CMD"):
                on_byte("LEN0", cmd.eq(byte), is_ident.eq(byte == fr.CMD_IDENT), is_stats.eq(byte == fr.CMD_STATS),
                        is_classify.eq(byte == fr.CMD_CLASSIFY), is_load.eq(has_load & (byte == fr.CMD_LOAD)))
            with m.State("LEN0"):
                on_byte("LEN1", length[:8].eq(byte))
            with m.State("LEN1"):
                full = Signal(16)
                m.d.comb += full.eq(length[:8] | (byte << 8))
                on_byte(None, length[8:].eq(byte), left.eq(full), last.eq(full == 1), length_zero.eq(full == 0),
                        store.eq(is_classify & (full == nbytes) & self.ready), *feed_restart,
                        beats_sent.eq(0), all_sent.eq(0),
                        loading.eq(is_load & (full > fr.LOAD_HEADER_LEN)), hdr.eq(0))
                with m.If(self.rx.valid):
                    with m.If(full == 0):
                        m.next = "CRC0"
                    with m.Else():
                        m.next = "BODY"
            with m.State("BODY"):
                on_byte(None, left.eq(left - 1), last.eq(left == 2))
                with m.If(self.rx.valid):
                    with m.If(store):
                        if self.registered_feed:
                            m.d.sync += [write_q.eq(1), byte_q.eq(byte)]
                        else:
                            with m.Switch(in_beat):
                                for k in range(g.beat_bytes):
                                    with m.Case(k):
                                        lane = beat[k * 8 : min(k * 8 + 8, g.in_width)]
                                        m.d.sync += lane.eq(byte[: len(lane)])
                            m.d.sync += [in_beat.eq(Mux(beat_last, 0, in_beat + 1)),
                                         beat_last.eq(Mux(beat_last, g.beat_bytes == 1, in_beat == g.beat_bytes - 2))]
                            with m.If(beat_last):
                                m.d.sync += out_valid.eq(1)
                    if has_load:
                        with m.If(loading & (hdr != fr.LOAD_HEADER_LEN)):  # header: file, offset (LE)
                            with m.Switch(hdr):
                                with m.Case(0):
                                    m.d.sync += self.ld_file.eq(byte)
                                for k in range(1, fr.LOAD_HEADER_LEN):
                                    with m.Case(k):
                                        m.d.sync += self.ld_offset[8 * (k - 1) : 8 * k].eq(byte)
                            m.d.sync += [hdr.eq(hdr + 1), self.ld_header.eq(hdr == fr.LOAD_HEADER_LEN - 1)]
                        with m.Elif(loading):
                            m.d.sync += [self.ld_byte.eq(byte), self.ld_strobe.eq(1)]
                    with m.If(last):
                        m.next = "CRC0"
            with m.State("CRC0"):
                on_byte("CRC1")
            with m.State("CRC1"):
                on_byte("IDLE", crc_ok.eq(crc16_byte(crc, byte) == 0), done.eq(1), crc_next=False)

        # silence timer; `expired` is registered so that no wide compare sits in front of the FSM
        with m.If(receiving & ~self.rx.valid):
            m.d.sync += [idle_timer.eq(idle_timer + 1), expired.eq(idle_timer == self.timeout - 1)]
        with m.Else():
            m.d.sync += [idle_timer.eq(0), expired.eq(0)]

        # ---- controller: checks the frame, runs the command, hands the reply to the transmitter
        ecode = Signal(8)
        kind = Signal(3)  # what the reply carries: 0 error, 1 ident, 2 stats, 3 classify, 4 load
        launch = Signal()  # start the transmitter
        tx_busy = Signal()
        images = Signal(32)
        errors = Signal(16)
        cls = Signal(self.class_width)
        m.d.sync += launch.eq(0)

        with m.FSM(name="ctl_fsm") as ctl:
            with m.State("LISTEN"):
                with m.If(done):
                    m.d.sync += listen.eq(0)
                    m.next = "DECIDE"
            with m.State("DECIDE"):  # registered verdict first; ROUTE acts on it (keeps the logic shallow)
                m.next = "ROUTE"
                m.d.sync += kind.eq(0)
                with m.If(timed_out):
                    m.d.sync += ecode.eq(fr.ERR_TIMEOUT)
                with m.Elif(~crc_ok):
                    m.d.sync += ecode.eq(fr.ERR_CRC)
                with m.Elif(is_ident | is_stats):
                    with m.If(~length_zero):
                        m.d.sync += ecode.eq(fr.ERR_LENGTH)
                    with m.Else():
                        m.d.sync += kind.eq(Mux(is_ident, 1, 2))
                with m.Elif(is_classify):
                    with m.If(~store & ~self.ready):
                        m.d.sync += ecode.eq(fr.ERR_NOT_READY)
                    with m.Elif(~store):
                        m.d.sync += ecode.eq(fr.ERR_LENGTH)
                    with m.Else():
                        m.d.sync += kind.eq(3)
                with m.Elif(is_load):  # (is_load only with weight files)
                    with m.If(~length_zero & ~loading):
                        m.d.sync += ecode.eq(fr.ERR_LENGTH)
                    with m.Else():  # a status query (LEN 0) or a chunk: the loader's verdict may still change it
                        m.d.sync += kind.eq(4)
                with m.Else():
                    m.d.sync += ecode.eq(fr.ERR_COMMAND)
            with m.State("ROUTE"):
                m.next = "LAUNCH"
                with m.If(store):  # the core has (part of) an image: let it finish, even if the frame was bad
                    m.next = "DRAIN"
                if has_load:
                    with m.Elif(loading):
                        m.next = "LOADWAIT"
            with m.State("LOADWAIT"):  # the loader took the frame's end (ld_end); wait for its verdict
                if has_load:
                    with m.If(~self.ld_busy):
                        with m.If((kind == 4) & (self.ld_code != 0)):
                            m.d.sync += [kind.eq(0), ecode.eq(self.ld_code)]
                        m.next = "LAUNCH"
                else:
                    m.next = "LAUNCH"
            with m.State("DRAIN"):  # every beat delivered (filler beats make up a truncated image)
                m.d.comb += pad.eq(timed_out)
                with m.If(all_sent):
                    m.next = "RESULT"
            with m.State("RESULT"):  # a bad frame's result is taken and dropped: the reply is its error
                m.d.comb += self.result.ready.eq(1)
                with m.If(self.result.valid):
                    m.d.sync += cls.eq(self.result.payload)
                    m.next = "COUNT"
            with m.State("COUNT"):  # one cycle later, so a cycle counter updated with the result is final
                with m.If(kind == 3):
                    m.d.sync += images.eq(images + 1)
                m.next = "LAUNCH"
            with m.State("LAUNCH"):
                m.d.sync += launch.eq(1)
                m.next = "WAIT_TX"
            with m.State("WAIT_TX"):
                with m.If(~launch & ~tx_busy):
                    with m.If(kind == 0):
                        m.d.sync += [errors.eq(errors + 1), self.error.eq(1)]
                    m.d.sync += listen.eq(1)
                    m.next = "LISTEN"

        # ---- transmitter: sync, code, length, payload, CRC; every byte registered in txbyte first
        reply_len = Signal(8)
        ti = Signal(8)  # index of the next payload byte
        tleft = Signal(8)  # payload bytes still to send
        tdone = Signal()  # tleft == 0, registered
        txbyte = Signal(8)
        txcrc = Signal(16)
        ident_rom = Array(Const(b, 8) for b in self.ident)
        load_len = struct.calcsize(fr.LOAD_REPLY_FORMAT) + 2 * len(self.files)
        codes = Array(Const(c, 8) for c in (fr.REPLY_ERR, fr.CMD_IDENT | fr.REPLY_OK, fr.CMD_STATS | fr.REPLY_OK,
                                            fr.CMD_CLASSIFY | fr.REPLY_OK, fr.CMD_LOAD | fr.REPLY_OK))
        lens = Array(Const(n, 8) for n in (2, len(self.ident), 12, 5, load_len))

        # payload bytes are read live by index (no snapshot register): while a reply goes out the core is idle,
        # so its busy-cycle counter stands still, and the other counters change only after the reply
        def byte_array(value, n):
            return Array([value[8 * i : 8 * i + 8] for i in range(n)] + [Const(0, 8)] * ((1 << (n - 1).bit_length()) - n))

        err_bytes = byte_array(ecode | (cmd << 8), 2)
        stats_bytes = byte_array(self.core_cycles | (images << 32) | (errors << 64), 12)
        cls_bytes = byte_array(cls | (self.core_cycles << 8), 5)
        ident_byte = Mux(ti == 1, self.ready, ident_rom[ti])
        choices = [err_bytes[ti[:1]], ident_byte, stats_bytes[ti[:4]], cls_bytes[ti[:3]]]
        if has_load:  # files, flags, file in progress, verified mask, next offset, then (layer, pe) per file
            table = Const(int.from_bytes(bytes(b for f in self.files for b in f), "little"), 16 * len(self.files))
            status = Cat(Const(len(self.files), 8), self.ld_flags, self.ld_current, self.ld_verified, self.ld_next, table)
            choices.append(byte_array(status, load_len)[ti[: max(1, (load_len - 1).bit_length())]])
        # two steps per payload byte: each reply kind's byte at ti into a register of its own, then the kind's
        # (index decode, live status and kind select in one cycle were the UP5K SPRAM build's critical path)
        picked = [Signal(8, name=f"picked{i}") for i in range(len(choices))]
        payload_byte = Array(picked)[kind]

        with m.FSM(name="tx_fsm"):
            with m.State("IDLE"):
                with m.If(launch):
                    m.d.sync += [reply_len.eq(lens[kind]), tleft.eq(lens[kind]), tdone.eq(0), ti.eq(0), txcrc.eq(0xFFFF),
                                 txbyte.eq(fr.REPLY_SYNC)]
                    m.next = "SYNC"

            def send(nxt_state, nxt_byte, crc_it=True):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(txbyte), tx_busy.eq(1)]
                with m.If(self.tx.ready):
                    m.d.sync += txbyte.eq(nxt_byte)
                    if crc_it:
                        m.d.sync += txcrc.eq(crc16_byte(txcrc, txbyte))
                    m.next = nxt_state

            with m.State("SYNC"):
                send("CODE", codes[kind], crc_it=False)
            with m.State("CODE"):
                send("LEN0", reply_len)
            with m.State("LEN0"):
                send("LEN1", 0)
            with m.State("LEN1"):
                send("LOAD", 0)
            with m.State("LOAD"):  # pick the next payload byte of every kind
                m.d.comb += tx_busy.eq(1)
                m.d.sync += [p.eq(c) for p, c in zip(picked, choices)]
                m.next = "PICKED"
            with m.State("PICKED"):  # the kind's byte, or the CRC's high byte after the last one
                m.d.comb += tx_busy.eq(1)
                with m.If(tdone):
                    m.d.sync += txbyte.eq(txcrc[8:])
                    m.next = "CRC0"
                with m.Else():
                    m.d.sync += [txbyte.eq(payload_byte), ti.eq(ti + 1), tleft.eq(tleft - 1), tdone.eq(tleft == 1)]
                    m.next = "PAY"
            with m.State("PAY"):
                send("LOAD", txbyte)
            with m.State("CRC0"):
                send("CRC1", txcrc[:8], crc_it=False)
            with m.State("CRC1"):
                send("IDLE", 0, crc_it=False)
        m.d.comb += self.active.eq(~ctl.ongoing("LISTEN") | receiving)
        return m
