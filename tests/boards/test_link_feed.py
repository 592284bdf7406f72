"""ImageFeed (boards/link_feed.py) against a behavioural model, both feed modes: random geometries, frames that
store (a CLASSIFY of the image's size while ready) or not (wrong command or length, model not ready), frames cut
short and completed by `pad`, and random back-pressure from the core. The beats are the model's lane register
after each beat's last byte (filler beats: the register as it is), in order, and `all_sent` follows the last."""

from __future__ import annotations

import random

from gateware import simulate
from hypothesis import given, settings
from hypothesis import strategies as st

from fedxnor.boards import frames as fr
from fedxnor.boards.link_feed import ImageFeed
from fedxnor.contract.beats import BeatGeometry


class FeedModel:
    """The lanes of the beat register: payload byte k of a beat goes to lane k; a full beat is sent."""

    def __init__(self, geom: fr.BeatGeometry):
        self.g = geom
        self.lanes = [0] * geom.beat_bytes
        self.k = 0

    def frame(self, payload: bytes, cut: bool) -> list[int]:
        self.k, beats = 0, []
        for b in payload:
            self.lanes[self.k] = b
            self.k = (self.k + 1) % self.g.beat_bytes
            if self.k == 0:
                beats.append(self.word())
        if cut:  # filler beats: the register as it is, until the image is complete
            beats += [self.word()] * (self.g.in_beats - len(beats))
        return beats

    def word(self) -> int:
        return int.from_bytes(bytes(self.lanes), "little") & ((1 << self.g.in_width) - 1)


def run_feed(geom, frames, registered, seed):
    """frames: (is_classify, length, payload bytes sent, ready, cut). Returns per frame (store, beats)."""
    rng = random.Random(seed)
    dut = ImageFeed(geom, registered_feed=registered)
    out = []

    async def tb(ctx):
        f = dut.frame
        beats = []

        async def tick():
            ready = rng.random() < 0.5
            ctx.set(dut.image.ready, ready)
            if ctx.get(dut.image.valid) and ready:
                beats.append(ctx.get(dut.image.payload))
            await ctx.tick()

        for is_classify, length, payload, ready, cut in frames:
            beats = []
            ctx.set(f.start, 1)
            await tick()
            ctx.set(f.start, 0)
            ctx.set(f.is_classify, is_classify)
            ctx.set(dut.ready, ready)
            for _ in range(rng.randint(0, 3)):
                await tick()
            ctx.set(f.header.valid, 1)
            ctx.set(f.header.payload, length)
            await tick()
            ctx.set(f.header.valid, 0)
            store = ctx.get(dut.store)
            for b in payload:
                # the core takes a beat long before the next byte arrives (a byte is >= 40 cycles on the wire)
                for _ in range(rng.randint(2, 4)):
                    await tick()
                while ctx.get(dut.image.valid):
                    await tick()
                ctx.set(f.payload.valid, 1)
                ctx.set(f.payload.payload, b)
                await tick()
                ctx.set(f.payload.valid, 0)
            for _ in range(4):
                await tick()
            if store and cut:
                ctx.set(dut.pad, 1)
                for _ in range(200):
                    if ctx.get(dut.all_sent):
                        break
                    await tick()
                ctx.set(dut.pad, 0)
            while ctx.get(dut.image.valid):
                await tick()
            assert ctx.get(dut.all_sent) == (store and (cut or len(payload) == geom.image_bytes))
            out.append((store, list(beats)))

    simulate(dut, tb)
    return out


@st.composite
def sessions(draw):
    rng = random.Random(draw(st.integers(0, 2**32)))
    in_width = draw(st.sampled_from([8, 13, 16, 24, 40]))
    geom = BeatGeometry(fan_in=draw(st.integers(1, 20)), input_bits=draw(st.sampled_from([1, 8])), in_width=in_width,
                           num_classes=10)
    frames = []
    for _ in range(draw(st.integers(1, 4))):
        n = geom.image_bytes
        kind = rng.choice(["good", "good", "cut", "short", "long", "other", "not_ready"])
        length = {"short": max(0, n - 1), "long": n + 1}.get(kind, n)
        cut = kind == "cut"
        sent = rng.randrange(0, n) if cut else min(length, n + 1)
        payload = bytes(rng.getrandbits(8) for _ in range(sent))
        frames.append((kind != "other", length, payload, kind != "not_ready", cut))
    return geom, frames


@settings(max_examples=30, deadline=None)
@given(sessions(), st.booleans(), st.integers(0, 2**16))
def test_beats_match_the_lane_model_under_back_pressure(session, registered, seed):
    geom, frames = session
    got = run_feed(geom, frames, registered, seed)
    model = FeedModel(geom)
    for (is_classify, length, payload, ready, cut), (store, beats) in zip(frames, got):
        want_store = bool(is_classify and ready and length == geom.image_bytes)
        assert store == want_store
        assert beats == (model.frame(payload, cut) if want_store else [])
