"""RequestControl (boards/link_control.py) against a behavioural model of docs/hostlink.md's error table: random
frame ends (every command, bad CRC, timeouts, wrong lengths, model not ready, LOAD chunks whose loader verdict
is an error), with random delays from the core, the loader and the UART sender. Per request: the reply launched
(kind, error code, class, counters), one result taken for an image the frame started (filler beats only for a
frame that timed out), the error pulse, and no listening until the reply is out."""

from __future__ import annotations

import random

from gateware import simulate
from hypothesis import given, settings
from hypothesis import strategies as st

from fedxnor.boards import frames as fr
from fedxnor.boards.link_control import RequestControl
from fedxnor.boards.link_tx import KIND_CLASSIFY, KIND_ERROR, KIND_IDENT, KIND_LOAD, KIND_STATS

CLASS_WIDTH = 4
COMMANDS = ("ident", "stats", "classify", "load", "other")


def model_reply(r: dict) -> tuple[int, int | None]:
    """(kind, error code) of the reply to one frame; the code only for an error reply."""
    if r["timed_out"]:
        return KIND_ERROR, fr.ERR_TIMEOUT
    if not r["crc_ok"]:
        return KIND_ERROR, fr.ERR_CRC
    cmd = r["cmd"]
    if cmd in ("ident", "stats"):
        return (KIND_ERROR, fr.ERR_LENGTH) if not r["length_zero"] else (KIND_IDENT if cmd == "ident" else KIND_STATS, None)
    if cmd == "classify":
        if not r["store"]:
            return KIND_ERROR, fr.ERR_LENGTH if r["ready"] else fr.ERR_NOT_READY
        return KIND_CLASSIFY, None
    if cmd == "load":
        if not r["length_zero"] and not r["loading"]:
            return KIND_ERROR, fr.ERR_LENGTH
        if r["loading"] and r["load_code"]:
            return KIND_ERROR, r["load_code"]
        return KIND_LOAD, None
    return KIND_ERROR, fr.ERR_COMMAND


requests = st.fixed_dictionaries({
    "cmd": st.sampled_from(COMMANDS), "timed_out": st.sampled_from([False, False, False, True]),
    "crc_ok": st.sampled_from([True, True, True, False]), "length_zero": st.booleans(),
    "ready": st.booleans(), "store": st.booleans(), "loading": st.booleans(), "load_code": st.sampled_from([0, 0, 2, 6, 7]),
    "cls": st.integers(0, (1 << CLASS_WIDTH) - 1), "delay": st.integers(0, 12),
})


def run_control(reqs, seed):
    rng = random.Random(seed)
    dut = RequestControl(CLASS_WIDTH, load=True)
    seen = []

    async def tb(ctx):
        f, r = dut.frame, dut.reply
        for q in reqs:
            store = q["store"] and q["cmd"] == "classify"  # the feed stores only CLASSIFY frames ...
            loading = q["loading"] and q["cmd"] == "load" and not q["length_zero"]  # ... and LOAD chunks carry data
            for name, cmd in zip(("is_ident", "is_stats", "is_classify", "is_load"), COMMANDS):
                ctx.set(getattr(f, name), q["cmd"] == cmd)
            for name in ("timed_out", "crc_ok", "length_zero"):
                ctx.set(getattr(f, name), q[name])
            ctx.set(dut.ready, q["ready"])
            ctx.set(dut.store, store)
            ctx.set(dut.loading, loading)
            ctx.set(dut.all_sent, 0)
            ctx.set(dut.status.busy, loading)
            ctx.set(f.end, 1)
            await ctx.tick()
            ctx.set(f.end, 0)
            got = {"results": 0, "pads": 0, "errors": 0, "launch": None}
            for cycle in range(400):
                assert not ctx.get(dut.listen), "listening inside a request"
                if store and cycle == q["delay"]:
                    ctx.set(dut.all_sent, 1)
                if loading and cycle == q["delay"]:
                    ctx.set(dut.status.busy, 0)
                    ctx.set(dut.status.code, q["load_code"])
                ctx.set(dut.result.valid, store and rng.random() < 0.3)
                ctx.set(dut.result.payload, q["cls"])
                got["results"] += ctx.get(dut.result.valid) and ctx.get(dut.result.ready)
                got["pads"] += ctx.get(dut.pad)
                if ctx.get(r.launch):
                    assert got["launch"] is None
                    got["launch"] = {k: ctx.get(getattr(r, k)) for k in ("kind", "ecode", "cls", "images", "errors")}
                    ctx.set(r.busy, 1)
                    busy_left = rng.randint(0, 20)
                elif got["launch"] is not None:
                    if busy_left == 0:
                        ctx.set(r.busy, 0)
                    busy_left -= 1
                await ctx.tick()
                got["errors"] += ctx.get(dut.error)
                if ctx.get(dut.listen):
                    break
            got["after"] = {"images": ctx.get(r.images), "errors": ctx.get(r.errors)}
            seen.append(got)

    simulate(dut, tb)
    return seen


@settings(max_examples=40, deadline=None)
@given(st.lists(requests, min_size=1, max_size=8), st.integers(0, 2**16))
def test_replies_counters_and_results_match_the_model(reqs, seed):
    got = run_control(reqs, seed)
    images = errors = 0
    for q, g in zip(reqs, got):
        store = q["store"] and q["cmd"] == "classify"
        q = {**q, "store": store, "loading": q["loading"] and q["cmd"] == "load" and not q["length_zero"]}
        kind, code = model_reply(q)
        images += kind == KIND_CLASSIFY
        launch = g["launch"]
        assert launch is not None and launch["kind"] == kind
        if code is not None:
            assert launch["ecode"] == code
        if store:
            assert launch["cls"] == q["cls"]  # a bad frame's result is taken too (and dropped)
        assert launch["images"] == images and launch["errors"] == errors
        assert g["results"] == store and (g["pads"] > 0) == (store and q["timed_out"])
        errors += kind == KIND_ERROR
        assert g["errors"] == (kind == KIND_ERROR)
        assert g["after"] == {"images": images, "errors": errors}


def test_a_load_chunk_waits_for_the_loaders_verdict_whose_error_replaces_the_load_reply():
    base = {"cmd": "load", "timed_out": False, "crc_ok": True, "length_zero": False, "ready": True, "store": False,
            "loading": True, "cls": 0, "delay": 9}
    reqs = [{**base, "load_code": c} for c in (0, fr.ERR_LOAD_ORDER, fr.ERR_HASH, 0)]
    got = run_control(reqs, 3)
    assert [(g["launch"]["kind"], g["launch"]["ecode"] if g["launch"]["kind"] == KIND_ERROR else None) for g in got] == \
        [(KIND_LOAD, None), (KIND_ERROR, fr.ERR_LOAD_ORDER), (KIND_ERROR, fr.ERR_HASH), (KIND_LOAD, None)]
    assert [model_reply(q) for q in reqs] == [(KIND_LOAD, None), (KIND_ERROR, 6), (KIND_ERROR, 7), (KIND_LOAD, None)]
    assert got[-1]["after"] == {"images": 0, "errors": 2}
