"""The host link's frame receiver: UART bytes in, one request frame's fields and events out.

It follows a request frame (docs/hostlink.md) byte by byte: the sync byte 0xA5 (only while the
controller `listen`s: one request at a time), CMD (decoded as it arrives), LEN (little-endian),
LEN payload bytes, and the two CRC bytes. The CRC runs over CMD, LEN, the payload and the CRC
itself, so a good frame leaves 0. A frame ends with a one-cycle `end` pulse: after its last CRC
byte (`crc_ok` tells whether it checked), or after `timeout` cycles of silence inside it
(`timed_out`). The receiver knows nothing of what a command does: the image feed, the LOAD
handling and the controller act on its `frame` interface (FrameSignature).
"""

from __future__ import annotations

from amaranth import Module, Signal
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


class EventSignature(wiring.Signature):
    """A value with a one-cycle `valid`: a stream without `ready`, so any number of listeners may take it."""

    def __init__(self, width: int):
        super().__init__({"valid": Out(1), "payload": Out(width)})


class FrameSignature(wiring.Signature):
    """One request frame as it arrives (from the receiver's side; consumers take it flipped).

    start: pulse, a sync byte opened a frame; cmd and its registered decodes (is_ident, is_stats,
    is_classify, is_load: valid from the byte after CMD on); header: an event carrying LEN (the cycle
    its high byte arrives), then `length` (registered) and `length_zero`; payload: an event per payload
    byte; end: pulse, the frame is over, with `crc_ok` and `timed_out`; receiving: the
    receiver is inside a frame.
    """

    def __init__(self):
        super().__init__({
            "start": Out(1), "cmd": Out(8),
            "is_ident": Out(1), "is_stats": Out(1), "is_classify": Out(1), "is_load": Out(1),
            "header": Out(EventSignature(16)), "length": Out(16), "length_zero": Out(1),
            "payload": Out(EventSignature(8)),
            "end": Out(1), "crc_ok": Out(1), "timed_out": Out(1), "receiving": Out(1),
        })


class FrameReceiver(wiring.Component):
    """Request frames out of a byte stream: sync, CMD, LEN, payload, CRC check, silence timeout.

    timeout: clock cycles of silence inside a frame before it ends with `timed_out`;
    load: whether CMD_LOAD is a command (`is_load`); without weight files it is an unknown one.
    """

    def __init__(self, timeout: int, *, load: bool = False):
        self.timeout = int(timeout)
        self.load = bool(load)
        super().__init__({
            "rx": In(stream.Signature(8, always_ready=True)),
            "listen": In(1, init=1),  # the controller waits for a frame (a register: no FSM decode in front of rx)
            "frame": Out(FrameSignature()),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        f = self.frame
        byte = self.rx.payload
        crc = Signal(16)
        left = Signal(16)  # payload bytes still to come
        last = Signal()  # the next payload byte is the last one
        idle_timer = Signal(range(self.timeout + 1))
        expired = Signal()
        full = Signal(16)  # LEN as its high byte arrives
        m.d.comb += [f.header.payload.eq(full), f.payload.payload.eq(byte)]
        m.d.sync += f.end.eq(0)

        with m.FSM(name="rx_fsm"):
            with m.State("IDLE"):
                with m.If(self.rx.valid & (byte == fr.REQ_SYNC) & self.listen):
                    m.d.comb += f.start.eq(1)
                    m.d.sync += [crc.eq(0xFFFF), f.timed_out.eq(0)]
                    m.next = "CMD"

            def on_byte(target, *actions, crc_next=True):
                m.d.comb += f.receiving.eq(1)
                with m.If(self.rx.valid):
                    m.d.sync += list(actions)
                    if crc_next:
                        m.d.sync += crc.eq(crc16_byte(crc, byte))
                    if target:
                        m.next = target
                with m.Elif(expired):
                    m.d.sync += [f.timed_out.eq(1), f.end.eq(1)]
                    m.next = "IDLE"

            with m.State("CMD"):
                on_byte("LEN0", f.cmd.eq(byte), f.is_ident.eq(byte == fr.CMD_IDENT), f.is_stats.eq(byte == fr.CMD_STATS),
                        f.is_classify.eq(byte == fr.CMD_CLASSIFY), f.is_load.eq(self.load & (byte == fr.CMD_LOAD)))
            with m.State("LEN0"):
                on_byte("LEN1", f.length[:8].eq(byte))
            with m.State("LEN1"):
                m.d.comb += full.eq(f.length[:8] | (byte << 8))
                on_byte(None, f.length[8:].eq(byte), left.eq(full), last.eq(full == 1), f.length_zero.eq(full == 0))
                with m.If(self.rx.valid):
                    m.d.comb += f.header.valid.eq(1)
                    with m.If(full == 0):
                        m.next = "CRC0"
                    with m.Else():
                        m.next = "BODY"
            with m.State("BODY"):
                on_byte(None, left.eq(left - 1), last.eq(left == 2))
                with m.If(self.rx.valid):
                    m.d.comb += f.payload.valid.eq(1)
                    with m.If(last):
                        m.next = "CRC0"
            with m.State("CRC0"):
                on_byte("CRC1")
            with m.State("CRC1"):
                on_byte("IDLE", f.crc_ok.eq(crc16_byte(crc, byte) == 0), f.end.eq(1), crc_next=False)

        # silence timer; `expired` is registered so that no wide compare sits in front of the FSM
        with m.If(f.receiving & ~self.rx.valid):
            m.d.sync += [idle_timer.eq(idle_timer + 1), expired.eq(idle_timer == self.timeout - 1)]
        with m.Else():
            m.d.sync += [idle_timer.eq(0), expired.eq(0)]
        return m
