"""FrameReceiver (boards/link_rx.py) against a behavioural model of docs/hostlink.md's request framing: random
frames of any command, damaged (bit flips, truncation, junk before the sync byte), with random gaps between
bytes; a silence longer than the timeout inside a frame ends it. Every frame's events (start, CMD and its
decodes, LEN, each payload byte, end with crc_ok / timed_out) are compared with the model's."""

from __future__ import annotations

import random

from gateware import simulate
from hypothesis import given, settings
from hypothesis import strategies as st

from fedxnor.boards import frames as fr
from fedxnor.boards.link_rx import FrameReceiver

TIMEOUT = 24


def model_frames(events):
    """events: ("byte", b) or ("gap", cycles of silence). The frames the receiver must report, in order:
    dicts with cmd, length, payload, crc_ok, timed_out (a frame cut by a silence of more than TIMEOUT cycles)."""
    out, cur, silence = [], None, 0
    for kind, v in events:
        if kind == "gap":  # back-to-back gaps are one silence: the receiver sees idle cycles, not events
            silence += v
            if cur is not None and silence > TIMEOUT:
                out.append({**cur, "crc_ok": None, "timed_out": True})
                cur = None
            continue
        silence = 0
        if cur is None:
            if v == fr.REQ_SYNC:
                cur = {"cmd": None, "length": None, "payload": b"", "raw": b""}
            continue
        cur["raw"] += bytes([v])
        raw = cur["raw"]
        if len(raw) == 1:
            cur["cmd"] = v
        elif len(raw) == 3:
            cur["length"] = raw[1] | raw[2] << 8
        elif len(raw) < 3:
            pass  # LEN's low byte
        elif len(cur["payload"]) < cur["length"]:
            cur["payload"] += bytes([v])
        elif len(raw) == 3 + cur["length"] + 2:
            out.append({**cur, "crc_ok": fr.crc16(raw) == 0, "timed_out": False})
            cur = None
    return [{k: v for k, v in f.items() if k != "raw"} for f in out]


def run_receiver(events):
    """Drive the events into the receiver (listen held high); collect what its `frame` interface reports."""
    dut = FrameReceiver(TIMEOUT, load=True)
    seen = []

    async def tb(ctx):
        f = dut.frame
        cur = None
        for kind, v in [*events, ("gap", TIMEOUT + 4)]:
            steps = [(1, v)] if kind == "byte" else [(0, 0)] * v
            for valid, byte in steps:
                ctx.set(dut.rx.valid, valid)
                ctx.set(dut.rx.payload, byte)
                if ctx.get(f.start):
                    assert cur is None
                    cur = {"cmd": None, "length": None, "payload": b""}
                if ctx.get(f.header.valid):
                    cur["length"] = ctx.get(f.header.payload)
                if ctx.get(f.payload.valid):
                    cur["payload"] += bytes([ctx.get(f.payload.payload)])
                await ctx.tick()
                if ctx.get(f.end):
                    timed_out = bool(ctx.get(f.timed_out))
                    cmd = ctx.get(f.cmd)
                    if cur["length"] is not None:  # LEN is in: the registered copies agree with the header event
                        assert ctx.get(f.length) == cur["length"] and ctx.get(f.length_zero) == (cur["length"] == 0)
                        assert [ctx.get(f.is_ident), ctx.get(f.is_stats), ctx.get(f.is_classify), ctx.get(f.is_load)] == \
                            [cmd == c for c in (fr.CMD_IDENT, fr.CMD_STATS, fr.CMD_CLASSIFY, fr.CMD_LOAD)]
                    seen.append({**cur, "cmd": cmd, "crc_ok": None if timed_out else bool(ctx.get(f.crc_ok)),
                                 "timed_out": timed_out})
                    cur = None

    simulate(dut, tb)
    return seen


@st.composite
def byte_events(draw):
    """A session: frames of every command (good, bit-flipped, truncated, junk first), random gaps between bytes."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    events = []
    for _ in range(draw(st.integers(1, 5))):
        cmd = rng.choice([fr.CMD_IDENT, fr.CMD_STATS, fr.CMD_CLASSIFY, fr.CMD_LOAD, rng.getrandbits(8)])
        frame = bytearray(fr.request(cmd, bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 1, 2, 7, 20])))))
        damage = rng.choice(["none", "none", "flip", "truncate", "junk"])
        if damage == "flip":
            frame[rng.randrange(1, len(frame))] ^= 1 << rng.randrange(8)
        elif damage == "truncate":
            frame = frame[: rng.randrange(1, len(frame))]
        elif damage == "junk":
            frame = bytearray(rng.choice([0x00, 0x5A, 0x17]) for _ in range(rng.randint(1, 3))) + frame
        for b in frame:
            events.append(("byte", b))
            events.append(("gap", rng.choice([0, 0, 1, 3, TIMEOUT])))
        events.append(("gap", TIMEOUT + rng.randint(1, 6) if damage == "truncate" else rng.randint(0, 4)))
    return events


@settings(max_examples=40, deadline=None)
@given(byte_events())
def test_frames_and_their_events_match_the_model(events):
    want = model_frames([*events, ('gap', TIMEOUT + 4)])  # the silence run_receiver ends every session with
    got = run_receiver(events)
    # a frame cut short before its CMD byte has no command; the model says so with cmd None
    for g, w in zip(got, want):
        if w["cmd"] is None:
            g["cmd"] = None
    assert got == want


def test_a_silence_of_exactly_timeout_cycles_is_tolerated_one_more_ends_the_frame():
    frame = fr.request(fr.CMD_CLASSIFY, b"\x01\x02\x03")
    head, tail = list(frame[:5]), list(frame[5:])
    ok = [("byte", b) for b in head] + [("gap", TIMEOUT)] + [("byte", b) for b in tail]
    assert run_receiver(ok) == model_frames(ok) == [
        {"cmd": fr.CMD_CLASSIFY, "length": 3, "payload": b"\x01\x02\x03", "crc_ok": True, "timed_out": False}]
    cut = [("byte", b) for b in head] + [("gap", TIMEOUT + 1)] + [("byte", b) for b in tail]
    got = run_receiver(cut)
    assert got[0]["timed_out"] and got[0]["payload"] == b"\x01"
    assert len(got) == 1  # the rest of the frame holds no sync byte: nothing more


def test_sync_bytes_are_ignored_while_the_controller_does_not_listen():
    dut = FrameReceiver(TIMEOUT)
    starts = []

    async def tb(ctx):
        ctx.set(dut.listen, 0)
        for b in fr.request(fr.CMD_IDENT):
            ctx.set(dut.rx.valid, 1)
            ctx.set(dut.rx.payload, b)
            starts.append(ctx.get(dut.frame.start))
            await ctx.tick()
        ctx.set(dut.listen, 1)
        ctx.set(dut.rx.payload, fr.REQ_SYNC)
        starts.append(ctx.get(dut.frame.start))
        await ctx.tick()
        assert ctx.get(dut.frame.receiving)

    simulate(dut, tb)
    assert starts == [0] * len(fr.request(fr.CMD_IDENT)) + [1]
