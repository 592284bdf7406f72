"""The host link's image feed: a CLASSIFY frame's payload bytes straight into the accelerator's beats.

A CLASSIFY frame whose LEN is the image's size, while the model is ready, `store`s: its payload
byte k of a beat is written straight into lane k of `beat` (flip-flops with an enable, no shifter:
the beat is as wide as the core's input), and a full beat goes out on `image`. The core takes it
within a few cycles, long before the next byte can arrive (a byte takes >= 40 cycles on the wire),
so the board spends no block RAM on a frame buffer. `pad` (the controller, for a frame that timed
out mid-image) pushes the beat as it is until every beat of the image is out (`all_sent`): the core
never holds half an image.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from fedxnor.boards import frames as fr
from fedxnor.boards.link_rx import FrameSignature


class ImageFeed(wiring.Component):
    """Payload bytes of a storing frame -> `image` beats of `geometry.in_width` bits.

    registered_feed: write each image byte into its lane a cycle after it arrives, from registers (the byte, a
    write strobe and a one-hot lane select), so that each lane's clock enable is one LUT of two flip-flops, not
    the receiver's state decode fanned out to every lane (ECP5: that decode was the critical path at ~100 MHz;
    on iCE40 the ~100 extra flip-flops cost more than they gain).
    """

    def __init__(self, geometry: fr.BeatGeometry, *, registered_feed: bool = False):
        self.geometry = geometry
        self.registered_feed = bool(registered_feed)
        super().__init__({
            "frame": In(FrameSignature()),
            "ready": In(1),  # the model is loaded: only then does a CLASSIFY store
            "image": Out(stream.Signature(unsigned(geometry.in_width))),
            "store": Out(1),  # this frame's payload streams into the core
            "pad": In(1),  # push filler beats until all_sent
            "all_sent": Out(1),  # every beat of this frame's image went out (registered)
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        g = self.geometry
        f = self.frame
        byte = f.payload.payload
        beat = Signal(g.in_width, reset_less=True)  # lane enables only: plain SB_DFFE, no logic per bit
        out_valid = Signal()
        beats_sent = Signal(range(g.in_beats + 1))

        m.d.comb += [self.image.valid.eq(out_valid), self.image.payload.eq(beat)]
        with m.If(self.image.valid & self.image.ready):
            m.d.sync += [out_valid.eq(0), beats_sent.eq(beats_sent + 1), self.all_sent.eq(beats_sent == g.in_beats - 1)]
        with m.If(self.pad & ~out_valid & ~self.all_sent):
            m.d.sync += out_valid.eq(1)  # filler: the beat as it is (the result of such an image is dropped)
        if self.registered_feed:  # the write happens here, a cycle after the byte (the payload beat only registers it)
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
        else:  # the payload beat writes the lane itself
            in_beat = Signal(range(g.beat_bytes))
            beat_last = Signal()  # the next payload byte completes a beat
            feed_restart = [in_beat.eq(0), beat_last.eq(g.beat_bytes == 1)]

        with m.If(f.start):  # `store` belongs to the new frame from here on (a frame cut short before LEN has none)
            m.d.sync += self.store.eq(0)
        with m.If(f.header.valid):
            m.d.sync += [self.store.eq(f.is_classify & (f.header.payload == g.image_bytes) & self.ready), *feed_restart,
                         beats_sent.eq(0), self.all_sent.eq(0)]
        with m.If(f.payload.valid & self.store):
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
        return m
