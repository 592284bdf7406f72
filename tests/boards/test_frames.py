"""The host-link protocol in Python: CRC, framing, image layout, replies."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedxnor.boards import frames as fr
from fedxnor.contract.beats import BeatGeometry


def test_crc16_ccitt_false_check_value():
    assert fr.crc16(b"123456789") == 0x29B1  # the catalogued check value of CRC-16/CCITT-FALSE
    assert fr.crc16(b"") == 0xFFFF


@given(st.integers(0, 255), st.binary(max_size=300))
@settings(max_examples=50, deadline=None)
def test_frame_round_trip_and_zero_residue(code, payload):
    frame = fr.encode(code, payload, fr.REPLY_SYNC)
    assert fr.crc16(frame[1:]) == 0  # what the hardware checks
    (reply,) = fr.decode_all(b"\x00\x13" + frame)  # junk before the sync byte is skipped
    assert reply == fr.Reply(code, payload)


def test_parser_is_incremental_and_rejects_bad_crc():
    frame = fr.encode(0x82, b"\x03\x01\x02\x03\x04", fr.REPLY_SYNC)
    p = fr.ReplyParser()
    got = [r for b in frame for r in p.feed(bytes([b]))]
    assert got == [fr.Reply(0x82, b"\x03\x01\x02\x03\x04")]
    bad = bytearray(frame)
    bad[5] ^= 0x40
    with pytest.raises(fr.FrameError):
        fr.decode_all(bytes(bad))


@pytest.mark.parametrize("fan_in,bits,in_width", [(784, 8, 256), (50, 8, 128), (61, 1, 13), (10, 8, 80), (7, 3, 9)])
def test_image_layout_is_the_accelerator_beat_layout(fan_in, bits, in_width):
    """docs/accelerator.md: inputs LSB first, B bits each, cut into in_width-bit beats; each beat is sent
    little-endian in ceil(in_width / 8) bytes."""
    g = BeatGeometry(fan_in, bits, in_width, 10)
    rng = np.random.default_rng(fan_in)
    x = rng.integers(0, 1 << bits, fan_in)
    whole = sum(int(v) << (i * bits) for i, v in enumerate(x))
    payload = g.link_bytes(x)
    assert len(payload) == g.image_bytes == g.in_beats * g.beat_bytes
    for j in range(g.in_beats):
        beat = int.from_bytes(payload[j * g.beat_bytes : (j + 1) * g.beat_bytes], "little")
        assert beat == (whole >> (j * in_width)) & ((1 << in_width) - 1)


def test_ident_round_trip():
    g = BeatGeometry(784, 8, 256, 10)
    ident = fr.Ident.parse(fr.Ident.build(g, "ab" * 32, 36_000_000))
    assert ident.geometry == g and ident.sha256 == "ab" * 32 and ident.clock_hz == 36_000_000 and ident.ready
