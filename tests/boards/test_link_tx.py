"""ReplySender (boards/link_tx.py) against a behavioural model: every reply kind, random field values, random
UART back-pressure; the bytes on `tx` are exactly frames.encode() of the model's payload, and `busy` covers the
whole frame."""

from __future__ import annotations

import struct

from gateware import simulate
from hypothesis import given, settings
from hypothesis import strategies as st

from fedxnor.boards import frames as fr
from fedxnor.boards.link_tx import KIND_CLASSIFY, KIND_ERROR, KIND_IDENT, KIND_LOAD, KIND_STATS, ReplySender

CLASS_WIDTH = 4
FILES = ((0, 0), (0, 1), (2, 3))


def model_reply(kind: int, f: dict, ident: bytes) -> bytes:
    """The reply frame the sender must put on the wire (docs/hostlink.md)."""
    if kind == KIND_ERROR:
        return fr.encode(fr.REPLY_ERR, bytes([f["ecode"], f["cmd"]]), fr.REPLY_SYNC)
    if kind == KIND_IDENT:
        return fr.encode(fr.CMD_IDENT | fr.REPLY_OK, ident[:1] + bytes([f["ready"]]) + ident[2:], fr.REPLY_SYNC)
    if kind == KIND_STATS:
        return fr.encode(fr.CMD_STATS | fr.REPLY_OK, struct.pack(fr.STATS_FORMAT, f["core_cycles"], f["images"], f["errors"], 0),
                         fr.REPLY_SYNC)
    if kind == KIND_CLASSIFY:
        return fr.encode(fr.CMD_CLASSIFY | fr.REPLY_OK, struct.pack(fr.CLASSIFY_REPLY_FORMAT, f["cls"], f["core_cycles"]),
                         fr.REPLY_SYNC)
    status = struct.pack(fr.LOAD_REPLY_FORMAT, len(FILES), f["flags"], f["current"], f["verified"], f["next"])
    return fr.encode(fr.CMD_LOAD | fr.REPLY_OK, status + bytes(b for lp in FILES for b in lp), fr.REPLY_SYNC)


fields = st.fixed_dictionaries({
    "ecode": st.integers(0, 255), "cmd": st.integers(0, 255), "cls": st.integers(0, (1 << CLASS_WIDTH) - 1),
    "images": st.integers(0, 2**32 - 1), "errors": st.integers(0, 2**16 - 1), "core_cycles": st.integers(0, 2**32 - 1),
    "ready": st.integers(0, 1), "flags": st.integers(0, 7), "current": st.integers(0, 2), "verified": st.integers(0, 7),
    "next": st.integers(0, 2**32 - 1),
})


def send_replies(requests, ident: bytes, files=FILES, seed: int = 0):
    """Launch each (kind, fields) in turn; return the bytes and the busy trace of each reply."""
    import random

    rng = random.Random(seed)
    dut = ReplySender(ident, CLASS_WIDTH, files)
    out = []

    async def tb(ctx):
        r = dut.reply
        for kind, f, ready_p in requests:
            for name in ("ecode", "cmd", "cls", "images", "errors"):
                ctx.set(getattr(r, name), f[name])
            ctx.set(dut.core_cycles, f["core_cycles"])
            ctx.set(dut.ready, f["ready"])
            if files:
                for name in ("flags", "current", "verified", "next"):
                    ctx.set(getattr(dut.status, name), f[name])
            ctx.set(r.kind, kind)
            ctx.set(r.launch, 1)
            await ctx.tick()
            ctx.set(r.launch, 0)
            got, busy_gaps, cycles = bytearray(), 0, 0
            while True:
                ready = rng.random() < ready_p
                ctx.set(dut.tx.ready, ready)
                busy, valid, byte = ctx.get(r.busy), ctx.get(dut.tx.valid), ctx.get(dut.tx.payload)
                await ctx.tick()
                cycles += 1
                if valid and ready:
                    got.append(byte)
                if not busy:
                    busy_gaps += 1
                    if busy_gaps > 3:  # idle for good: the frame is over
                        break
                elif got:
                    assert busy_gaps == 0, "busy dropped inside a reply"
                assert cycles < 5000
            out.append(bytes(got))

    simulate(dut, tb)
    return out


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([KIND_ERROR, KIND_IDENT, KIND_STATS, KIND_CLASSIFY, KIND_LOAD]), fields,
                          st.sampled_from([1.0, 0.5, 0.1])), min_size=1, max_size=4),
       st.binary(min_size=fr.IDENT_LEN, max_size=fr.IDENT_LEN), st.integers(0, 2**16))
def test_every_reply_is_the_models_frame_under_back_pressure(requests, ident, seed):
    got = send_replies(requests, ident, seed=seed)
    for (kind, f, _), frame in zip(requests, got):
        assert frame == model_reply(kind, f, ident)


def test_without_weight_files_the_four_other_replies_are_unchanged():
    ident = bytes(range(fr.IDENT_LEN))
    f = {"ecode": 3, "cmd": 0x42, "cls": 5, "images": 7, "errors": 2, "core_cycles": 1234, "ready": 1, "flags": 0,
         "current": 0, "verified": 0, "next": 0}
    kinds = [KIND_ERROR, KIND_IDENT, KIND_STATS, KIND_CLASSIFY]
    got = send_replies([(k, f, 0.7) for k in kinds], ident, files=())
    assert got == [model_reply(k, f, ident) for k in kinds]
    assert fr.decode_all(got[0])[0].error == 3
