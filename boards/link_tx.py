"""The host link's reply sender: one reply frame per `launch`, byte by byte onto the UART stream.

    reply:  0x5A  CODE  LEN_lo LEN_hi  PAYLOAD[LEN]  CRC_hi CRC_lo      (docs/hostlink.md)

The reply's kind (error, IDENT, STATS, CLASSIFY, LOAD) gives its CODE, its length and where each
payload byte comes from; every byte sent is registered in `txbyte` first. Payload bytes are read
live by index (no snapshot register): while a reply goes out the core is idle, so its busy-cycle
counter stands still, and the other counters change only after the reply.
"""

from __future__ import annotations

import struct

from amaranth import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from fedxnor.boards import frames as fr
from fedxnor.boards.link_load import LoadStatusSignature
from fedxnor.boards.link_rx import crc16_byte

KIND_ERROR, KIND_IDENT, KIND_STATS, KIND_CLASSIFY, KIND_LOAD = range(5)


class ReplySignature(wiring.Signature):
    """What a reply carries, from the controller's side: `launch` pulses to send one of `kind`; its fields are the
    error code and the request's CMD (error payload), the class (CLASSIFY) and the image and error counters
    (STATS). `busy`, back from the sender, is high while the reply goes out."""

    def __init__(self, class_width: int):
        super().__init__({"launch": Out(1), "kind": Out(3), "ecode": Out(8), "cmd": Out(8), "cls": Out(class_width),
                          "images": Out(32), "errors": Out(16), "busy": In(1)})


def byte_array(value, n):
    """Bytes 0..n-1 of `value`, indexable by a signal (padded to a power of two with zeros)."""
    return Array([value[8 * i : 8 * i + 8] for i in range(n)] + [Const(0, 8)] * ((1 << (n - 1).bit_length()) - n))


class ReplySender(wiring.Component):
    """Reply frames out of `reply` requests.

    ident: the IDENT reply payload (frames.Ident.build), its flags byte replaced by `ready`;
    files: the run-time weight files, ((layer, pe), ...) per file number (the LOAD reply's table); none: no LOAD.
    """

    def __init__(self, ident: bytes, class_width: int, files: tuple = ()):
        self.ident = bytes(ident)
        self.class_width = int(class_width)
        self.files = tuple((int(layer), int(pe)) for layer, pe in files)
        members = {
            "reply": In(ReplySignature(self.class_width)),
            "core_cycles": In(32),
            "ready": In(1),
            "tx": Out(stream.Signature(8)),
        }
        if self.files:
            members["status"] = In(LoadStatusSignature())
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        r = self.reply
        kind = r.kind
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

        err_bytes = byte_array(r.ecode | (r.cmd << 8), 2)
        stats_bytes = byte_array(self.core_cycles | (r.images << 32) | (r.errors << 64), 12)
        cls_bytes = byte_array(r.cls | (self.core_cycles << 8), 5)
        ident_byte = Mux(ti == 1, self.ready, ident_rom[ti])
        choices = [err_bytes[ti[:1]], ident_byte, stats_bytes[ti[:4]], cls_bytes[ti[:3]]]
        if self.files:  # files, flags, file in progress, verified mask, next offset, then (layer, pe) per file
            s = self.status
            table = Const(int.from_bytes(bytes(b for f in self.files for b in f), "little"), 16 * len(self.files))
            status = Cat(Const(len(self.files), 8), s.flags, s.current, s.verified, s.next, table)
            choices.append(byte_array(status, load_len)[ti[: max(1, (load_len - 1).bit_length())]])
        # two steps per payload byte: each reply kind's byte at ti into a register of its own, then the kind's
        # (index decode, live status and kind select in one cycle were the UP5K SPRAM build's critical path)
        picked = [Signal(8, name=f"picked{i}") for i in range(len(choices))]
        payload_byte = Array(picked)[kind]

        with m.FSM(name="tx_fsm"):
            with m.State("IDLE"):
                with m.If(r.launch):
                    m.d.sync += [reply_len.eq(lens[kind]), tleft.eq(lens[kind]), tdone.eq(0), ti.eq(0), txcrc.eq(0xFFFF),
                                 txbyte.eq(fr.REPLY_SYNC)]
                    m.next = "SYNC"

            def send(nxt_state, nxt_byte, crc_it=True):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(txbyte), r.busy.eq(1)]
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
                m.d.comb += r.busy.eq(1)
                m.d.sync += [p.eq(c) for p, c in zip(picked, choices)]
                m.next = "PICKED"
            with m.State("PICKED"):  # the kind's byte, or the CRC's high byte after the last one
                m.d.comb += r.busy.eq(1)
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
        return m
