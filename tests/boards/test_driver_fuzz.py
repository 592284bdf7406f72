"""The host driver against a board that answers garbage: every reply of IDENT, STATS, CLASSIFY and LOAD damaged
by Hypothesis (junk, truncated, bit flips, wrong payloads and lengths, wrong codes, oversized LEN, doubled, silence,
a port that fails). Whatever arrives, the driver returns a well-formed value or raises one BoardError line (exit 4),
and gives up within its timeouts (on a fake clock: no real waiting)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from board_helpers import small_export
from cli_helpers import assert_refused, run_cli
from fake_board import FakeBoard, FakeClock
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fedxnor.boards import frames as fr
from fedxnor.boards.driver import BoardError, BoardLink, classify_images, command_name, load_weights
from fedxnor.contract.beats import BeatGeometry
from fedxnor.errors import FedxnorError
from fedxnor.export.reference import Reference

TIMEOUT = 0.5  # seconds per reply, on the fake clock
RETRIES = 2  # BoardLink.request's default
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

MUTATION = st.one_of(
    st.just(("keep",)),
    st.just(("drop",)),  # no reply at all
    st.tuples(st.just("junk"), st.binary(max_size=120)),  # random bytes instead of the frame
    st.tuples(st.just("truncate"), st.integers(0, 80)),
    st.tuples(st.just("flip"), st.integers(0, 1 << 16)),  # one bit of the frame (the CRC catches it)
    st.tuples(st.just("payload"), st.binary(max_size=90)),  # a valid frame, same code, any payload
    st.tuples(st.just("resize"), st.integers(-12, 12)),  # the right payload cut short or padded, valid CRC
    st.tuples(st.just("code"), st.integers(0, 255)),  # another reply code
    st.tuples(st.just("oversize"), st.integers(100, 0xFFFF)),  # LEN promises bytes that never come
    st.tuples(st.just("prefix"), st.binary(min_size=1, max_size=24)),  # junk, then the frame
    st.just(("twice",)),
)
SCRIPT = st.tuples(st.lists(MUTATION, max_size=8), st.booleans())  # (mutation of reply i, repeat the last forever)


def damage(m: tuple, frame: bytes) -> bytes:
    kind, *arg = m
    payload = frame[4:-2]
    if kind == "keep":
        return frame
    if kind == "drop":
        return b""
    if kind == "junk":
        return arg[0]
    if kind == "truncate":
        return frame[: arg[0] % len(frame)]
    if kind == "flip":
        out = bytearray(frame)
        i = arg[0] % (8 * len(out))
        out[i // 8] ^= 1 << (i % 8)
        return bytes(out)
    if kind == "payload":
        return fr.encode(frame[1], arg[0], fr.REPLY_SYNC)
    if kind == "resize":
        k = arg[0]
        return fr.encode(frame[1], payload[: max(0, len(payload) + k)] if k < 0 else payload + bytes(range(k)), fr.REPLY_SYNC)
    if kind == "code":
        return fr.encode(arg[0], payload, fr.REPLY_SYNC)
    if kind == "oversize":
        return frame[:2] + struct.pack("<H", arg[0]) + frame[4:]
    if kind == "prefix":
        return arg[0] + frame
    return frame + frame  # twice


def mutator(script: tuple[list, bool]):
    ms, repeat = script

    def mutate(i: int, frame: bytes) -> bytes:
        if i < len(ms):
            return damage(ms[i], frame)
        return damage(ms[-1], frame) if repeat and ms else frame

    return mutate


def honest(script: tuple[list, bool]) -> bool:
    return all(m == ("keep",) for m in script[0])


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return small_export(tmp_path_factory.mktemp("fuzz"), 5, [50, 16, 10], [(2, 16), (2, 8)], 8)


def open_link(clock: FakeClock, board: FakeBoard) -> BoardLink:
    return BoardLink("fake", timeout=TIMEOUT, serial_obj=board)


def check_clean(e: FedxnorError) -> None:
    msg = str(e)
    assert msg and "\n" not in msg and "Traceback" not in msg


COMMANDS = {
    "IDENT": (fr.CMD_IDENT, lambda link, g: link.ident()),
    "STATS": (fr.CMD_STATS, lambda link, g: link.stats()),
    "CLASSIFY": (fr.CMD_CLASSIFY, lambda link, g: link.classify(g, np.arange(g.fan_in) % 256)),
    "LOAD": (fr.CMD_LOAD, lambda link, g: link.load_status()),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", list(COMMANDS))
@FUZZ
@given(script=SCRIPT, chunk=st.integers(1, 80))
def test_one_command_against_damaged_replies(name, script, chunk):
    cmd, call = COMMANDS[name]
    clock = FakeClock()
    g = BeatGeometry(50, 8, 64, 10)
    blobs = {(0, 0): b"0a\n", (0, 1): b"1b\n"} if name == "LOAD" else None
    board = FakeBoard(clock, geometry=g, load_blobs=blobs, mutate=mutator(script), chunk=chunk)
    t0 = clock.t
    with mock.patch("fedxnor.boards.driver.monotonic", clock), open_link(clock, board) as link:
        try:
            value = call(link, g)
        except BoardError as e:
            event("refused")
            check_clean(e)
            assert not honest(script), f"an honest board was refused: {e}"
            assert command_name(cmd) in str(e)  # it names the command and what came back
        else:
            event("answered")
            if name == "IDENT":
                value.check()
            elif name == "CLASSIFY":
                assert 0 <= value[0] < g.num_classes
            elif name == "STATS":
                assert set(value) == {"cycles", "images", "errors"}
            if honest(script) and name == "IDENT":
                assert value.geometry == g and value.sha256 == board.sha256
    assert board.requests_seen <= RETRIES + 1
    # each try waits at most one timeout for its reply and one more to resynchronise
    assert clock.t - t0 <= (RETRIES + 1) * 2 * TIMEOUT + 0.5


@pytest.mark.timeout(120)
@FUZZ
@given(script=SCRIPT, chunk=st.integers(1, 80))
def test_classify_images_against_damaged_replies(export, script, chunk):
    ref = Reference(export.directory)
    first = export.layers[0]
    g = BeatGeometry(first.fan_in, first.input_bits, 64, export.num_classes)
    clock = FakeClock()
    board = FakeBoard(clock, sha256=export.sha256, geometry=g, mutate=mutator(script), chunk=chunk)
    images = np.random.default_rng(0).integers(0, 256, (4, first.fan_in))
    with mock.patch("fedxnor.boards.driver.monotonic", clock), open_link(clock, board) as link:
        try:
            res = classify_images(link, ref, images)
        except BoardError as e:
            event("refused")
            check_clean(e)
            assert not honest(script), str(e)
        except FedxnorError as e:  # the board claimed another model or no weights: the user's to fix, exit 2
            event("refused as bad input")
            check_clean(e)
            assert "runs model" in str(e) or "not loaded" in str(e), str(e)
        else:
            event("answered")
            assert res["images"] == 4 and all(0 <= c < g.num_classes for c in res["classes"])
    assert board.requests_seen <= 6 * (RETRIES + 1)


@pytest.mark.timeout(120)
@FUZZ
@given(script=SCRIPT, chunk=st.integers(1, 80), load_chunk=st.integers(1, 40))
def test_load_weights_against_damaged_replies(export, script, chunk, load_chunk):
    blobs = {(0, p): export.layers[0].weight_files[p].read_bytes() for p in range(export.layers[0].pe)}
    first = export.layers[0]
    g = BeatGeometry(first.fan_in, first.input_bits, 64, export.num_classes)
    clock = FakeClock()
    board = FakeBoard(clock, sha256=export.sha256, geometry=g, ready=False, load_blobs=blobs, mutate=mutator(script),
                      chunk=chunk)
    with mock.patch("fedxnor.boards.driver.monotonic", clock), open_link(clock, board) as link:
        try:
            res = load_weights(link, export, chunk=load_chunk)
        except BoardError as e:
            event("refused")
            check_clean(e)
            assert not honest(script), str(e)
        except FedxnorError as e:  # what a damaged reply can make the board say: another model, a bad hash, no files
            check_clean(e)
            event("refused as bad input")
            assert any(s in str(e) for s in ("runs model", "differs from the manifest", "nothing to load")), str(e)
        else:
            event("answered")
            assert res["files"] == len(blobs) and res["bytes"] == sum(len(b) for b in blobs.values())
    assert board.requests_seen < 2000


@pytest.mark.timeout(60)
@settings(max_examples=40, deadline=None)
@given(fail_after=st.integers(0, 30), chunk=st.integers(1, 80))
def test_a_port_that_fails_mid_session_is_one_board_error(fail_after, chunk):
    clock = FakeClock()
    board = FakeBoard(clock, chunk=chunk, fail_after_reads=fail_after)
    with mock.patch("fedxnor.boards.driver.monotonic", clock), open_link(clock, board) as link:
        with pytest.raises(BoardError) as e:
            for _ in range(50):
                link.ident()
                link.stats()
    check_clean(e.value)
    assert "serial link fake failed" in str(e.value)


def fake_port(board: FakeBoard):
    return mock.patch("serial.serial_for_url", lambda *a, **k: board)


@pytest.mark.timeout(120)
@settings(max_examples=60, deadline=None)
@given(script=SCRIPT)
def test_cli_board_ident_is_a_result_or_one_line(script):
    clock = FakeClock()
    board = FakeBoard(clock, mutate=mutator(script))
    with mock.patch("fedxnor.boards.driver.monotonic", clock), fake_port(board):
        run = run_cli(["board", "ident", "--port", "fake", "--timeout", TIMEOUT, "--json"])
    event(f"exit {run.code}")
    if run.code == 0:
        assert set(json.loads(run.out)) >= {"sha256", "fan_in", "cycles", "images"}
    else:
        assert_refused(run, code=4)
        assert not honest(script)


@pytest.mark.timeout(120)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=SCRIPT)
def test_cli_board_load_is_a_result_or_one_line(export, script):
    blobs = {(0, p): export.layers[0].weight_files[p].read_bytes() for p in range(export.layers[0].pe)}
    first = export.layers[0]
    g = BeatGeometry(first.fan_in, first.input_bits, 64, export.num_classes)
    clock = FakeClock()
    board = FakeBoard(clock, sha256=export.sha256, geometry=g, ready=False, load_blobs=blobs, mutate=mutator(script))
    with mock.patch("fedxnor.boards.driver.monotonic", clock), fake_port(board):
        run = run_cli(["board", "load", export.directory, "--port", "fake", "--timeout", TIMEOUT, "--json"])
    event(f"exit {run.code}")
    if run.code == 0:
        assert json.loads(run.out)["files"] == len(blobs)
    else:
        assert_refused(run, code=run.code)
        assert run.code == 4 or any(s in run.err for s in ("runs model", "differs from the manifest", "nothing to load"))
        assert not honest(script)


def test_cli_board_commands_refuse_bad_link_arguments(export, tmp_path):
    for argv in (["board", "ident", "--port", "/dev/null", "--baud", "0"],
                 ["board", "ident", "--port", "/dev/null", "--baud", "-9600"],
                 ["board", "ident", "--port", "/dev/null", "--timeout", "nan"],
                 ["board", "ident", "--port", "/dev/null", "--timeout", "0"],
                 ["board", "load", export.directory, "--port", "/dev/null", "--baud", "0"],
                 ["board", "classify", "--port", "/dev/null", "--baud", "0", "--export", export.directory],
                 ["board", "classify", "--port", "/dev/null", "--timeout", "-1", "--export", export.directory]):
        run = run_cli(argv)
        assert_refused(run, code=2)
        assert "--baud" in run.err or "--timeout" in run.err
    missing = tmp_path / "no-such-tty"
    for argv in (["board", "ident", "--port", missing], ["board", "load", export.directory, "--port", missing]):
        run = run_cli(argv)
        assert_refused(run, code=2)
        assert f"cannot open serial port {missing}" in run.err
    assert not Path(missing).exists()
