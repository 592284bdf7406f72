"""The host link's controller: one request at a time, from the frame's end to the reply's last byte.

It waits for a frame to end (`listen` stays low from then until the reply is out: stop and wait),
decides the reply (registered first, then acted on: the logic stays shallow), lets the core finish
an image that the frame started (even a bad frame's: its result is taken and dropped), waits for
the weight loader's verdict on a LOAD chunk, and hands the reply to the sender (`reply`). It counts
the images classified and the error replies sent (STATS), and pulses `error` per error reply.
"""

from __future__ import annotations

from amaranth import Module, Mux, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from fedxnor.boards import frames as fr
from fedxnor.boards.link_load import LoadStatusSignature
from fedxnor.boards.link_rx import FrameSignature
from fedxnor.boards.link_tx import KIND_CLASSIFY, KIND_ERROR, KIND_IDENT, KIND_LOAD, KIND_STATS, ReplySignature


class RequestControl(wiring.Component):
    """Frame verdict, command run and reply launch.

    class_width: bits of the core's class index; load: LOAD frames are served (the `status` port of the loader).
    """

    def __init__(self, class_width: int, *, load: bool = False):
        self.class_width = int(class_width)
        self.load = bool(load)
        members = {
            "frame": In(FrameSignature()),
            "listen": Out(1, init=1),  # waiting for a frame (a register: no FSM decode in front of the receiver)
            "ready": In(1),  # the model is loaded
            "store": In(1), "pad": Out(1), "all_sent": In(1),  # the image feed
            "loading": In(1),  # the LOAD handling: this frame carries a chunk
            "result": In(stream.Signature(unsigned(self.class_width))),
            "reply": Out(ReplySignature(self.class_width)),
            "error": Out(1),  # one-cycle pulse per error reply
            "active": Out(1),  # inside a request (receiving, running or replying)
        }
        if self.load:
            members["status"] = In(LoadStatusSignature())
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        f = self.frame
        r = self.reply
        kind, ecode = r.kind, r.ecode
        m.d.comb += r.cmd.eq(f.cmd)
        m.d.sync += [r.launch.eq(0), self.error.eq(0)]

        with m.FSM(name="ctl_fsm") as ctl:
            with m.State("LISTEN"):
                with m.If(f.end):
                    m.d.sync += self.listen.eq(0)
                    m.next = "DECIDE"
            with m.State("DECIDE"):  # registered verdict first; ROUTE acts on it (keeps the logic shallow)
                m.next = "ROUTE"
                m.d.sync += kind.eq(KIND_ERROR)
                with m.If(f.timed_out):
                    m.d.sync += ecode.eq(fr.ERR_TIMEOUT)
                with m.Elif(~f.crc_ok):
                    m.d.sync += ecode.eq(fr.ERR_CRC)
                with m.Elif(f.is_ident | f.is_stats):
                    with m.If(~f.length_zero):
                        m.d.sync += ecode.eq(fr.ERR_LENGTH)
                    with m.Else():
                        m.d.sync += kind.eq(Mux(f.is_ident, KIND_IDENT, KIND_STATS))
                with m.Elif(f.is_classify):
                    with m.If(~self.store & ~self.ready):
                        m.d.sync += ecode.eq(fr.ERR_NOT_READY)
                    with m.Elif(~self.store):
                        m.d.sync += ecode.eq(fr.ERR_LENGTH)
                    with m.Else():
                        m.d.sync += kind.eq(KIND_CLASSIFY)
                with m.Elif(f.is_load):  # (is_load only with weight files)
                    with m.If(~f.length_zero & ~self.loading):
                        m.d.sync += ecode.eq(fr.ERR_LENGTH)
                    with m.Else():  # a status query (LEN 0) or a chunk: the loader's verdict may still change it
                        m.d.sync += kind.eq(KIND_LOAD)
                with m.Else():
                    m.d.sync += ecode.eq(fr.ERR_COMMAND)
            with m.State("ROUTE"):
                m.next = "LAUNCH"
                with m.If(self.store):  # the core has (part of) an image: let it finish, even if the frame was bad
                    m.next = "DRAIN"
                if self.load:
                    with m.Elif(self.loading):
                        m.next = "LOADWAIT"
            with m.State("LOADWAIT"):  # the loader took the frame's end (chunk.end); wait for its verdict
                if self.load:
                    with m.If(~self.status.busy):
                        with m.If((kind == KIND_LOAD) & (self.status.code != 0)):
                            m.d.sync += [kind.eq(KIND_ERROR), ecode.eq(self.status.code)]
                        m.next = "LAUNCH"
                else:
                    m.next = "LAUNCH"
            with m.State("DRAIN"):  # every beat delivered (filler beats make up a truncated image)
                m.d.comb += self.pad.eq(f.timed_out)
                with m.If(self.all_sent):
                    m.next = "RESULT"
            with m.State("RESULT"):  # a bad frame's result is taken and dropped: the reply is its error
                m.d.comb += self.result.ready.eq(1)
                with m.If(self.result.valid):
                    m.d.sync += r.cls.eq(self.result.payload)
                    m.next = "COUNT"
            with m.State("COUNT"):  # one cycle later, so a cycle counter updated with the result is final
                with m.If(kind == KIND_CLASSIFY):
                    m.d.sync += r.images.eq(r.images + 1)
                m.next = "LAUNCH"
            with m.State("LAUNCH"):
                m.d.sync += r.launch.eq(1)
                m.next = "WAIT_TX"
            with m.State("WAIT_TX"):
                with m.If(~r.launch & ~r.busy):
                    with m.If(kind == KIND_ERROR):
                        m.d.sync += [r.errors.eq(r.errors + 1), self.error.eq(1)]
                    m.d.sync += self.listen.eq(1)
                    m.next = "LISTEN"
        m.d.comb += self.active.eq(~ctl.ongoing("LISTEN") | f.receiving)
        return m
