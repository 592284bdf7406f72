"""Signed (two's complement) first-layer inputs: the fast matrix reference equals, by equality, the hardware's literal
walk of the packed words (the MSB plane negated) and the plain sum Σ (±1)·x, for dense and conv layers; the range is
[−K·2^(B−1), K·2^(B−1)], both ends reached; an inverted row mirrors the accumulator; the beats carry B-bit two's
complement; the manifest's input map is validated and applied."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedxnor.contract.beats import BeatGeometry
from fedxnor.contract.conv import Conv
from fedxnor.contract.dense import Dense
from fedxnor.contract.matrix import input_range
from fedxnor.errors import FedxnorError

EXAMPLES = 40


@st.composite
def signed_layers(draw):
    bits = draw(st.integers(2, 9))
    if draw(st.booleans()):
        spec = Dense(draw(st.integers(1, 60)), draw(st.integers(1, 8)), bits, "signed")
    else:
        k = draw(st.integers(1, 3))
        pad = draw(st.integers(0, k - 1))
        h, w = draw(st.integers(max(1, k - 2 * pad), 6)), draw(st.integers(max(1, k - 2 * pad), 6))
        spec = Conv(h, w, draw(st.integers(1, 4)), draw(st.integers(1, 5)), k, draw(st.integers(1, 2)), pad, bits, "signed")
    fold = draw(st.sampled_from(spec.candidate_foldings()))
    return spec, fold, np.random.default_rng(draw(st.integers(0, 2**16)))


def plain_sum(spec, w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Σ_i (2w_i − 1)·x_i per row of the im2col windows (dense: the inputs themselves), in Python integers."""
    rows = [x] if spec.kind == "dense" else [spec.window(x, oy, ox) for oy in range(spec.out_h) for ox in range(spec.out_w)]
    return np.array([sum((2 * int(b) - 1) * int(v) for b, v in zip(wr, r)) for r in rows for wr in w], np.int64)


@settings(max_examples=EXAMPLES, deadline=None)
@given(signed_layers())
def test_fast_equals_literal_walk_and_plain_sum(case):
    spec, fold, rng = case
    lo_x, hi_x = input_range(spec.input_bits, spec.encoding)
    w = rng.integers(0, 2, (spec.fan_out, spec.fan_in), dtype=np.uint8)
    x = rng.integers(lo_x, hi_x + 1, (3, spec.in_size))
    x[1] = lo_x  # the most negative value everywhere: its MSB plane is the only one set
    fast = spec.accumulate(w, x)
    words = spec.pack_weights(w, fold)
    for i in range(len(x)):
        assert np.array_equal(spec.literal_accumulate(words, fold, x[i]), fast[i])
        assert np.array_equal(plain_sum(spec, w, x[i]), fast[i])
    lo, hi = spec.acc_range
    assert fast.min() >= lo and fast.max() <= hi
    assert np.array_equal(spec.accumulate(1 - w, x), lo + hi - fast)  # an inverted row mirrors the accumulator


def test_range_ends_are_reached_and_planes_count():
    spec = Dense(5, 2, 8, "signed")
    assert spec.acc_range == (-5 * 128, 5 * 128) and spec.planes == 8
    w = np.array([[1] * 5, [0] * 5], np.uint8)
    acc = spec.accumulate(w, np.full((1, 5), -128))
    assert acc.tolist() == [[-640, 640]]
    assert Conv(3, 3, 1, 2, 3, 1, 0, 4, "signed").acc_range == (-72, 72)


@pytest.mark.parametrize("bits,enc,match", [(1, "signed", "2..16-bit"), (8, "twos", "unknown input encoding")])
def test_bad_signed_specs_are_one_line_errors(bits, enc, match):
    with pytest.raises(FedxnorError, match=match):
        Dense(4, 2, bits, enc)


def test_beats_carry_twos_complement():
    g = BeatGeometry(3, 8, 16, 2)
    word = g.pack_images(np.array([[-1, -128, 127]]))[0]
    assert word == 0xFF | (0x80 << 8) | (0x7F << 16)


def test_input_map_in_the_manifest(tmp_path):
    import json

    from fedxnor.contract.network import IntLayer, IntNetwork
    from fedxnor.export.manifest import load_export, write_export
    from fedxnor.export.reference import Reference

    rng = np.random.default_rng(0)
    net = IntNetwork((IntLayer(rng.integers(0, 2, (4, 6)), np.zeros(4, np.int64), spec=Dense(6, 4, 8, "signed")),
                      IntLayer(rng.integers(0, 2, (3, 4)), None)))
    lut = [max(-128, min(127, round((2 * p / 255 - 1) * 128))) for p in range(256)]
    d = write_export(net, tmp_path / "e", input_spec={"shape": [6], "encoding": "pixels-mapped", "map": lut})
    ref = Reference(load_export(d))
    pix = rng.integers(0, 256, (5, 6))
    assert np.array_equal(ref.prepare(pix), np.array(lut)[pix])
    m = json.loads((d / "manifest.json").read_text())
    m["input"]["map"][7] = 128  # outside -128..127
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(FedxnorError, match="outside layer 0's input range -128..127"):
        load_export(d)
    m["input"]["map"] = m["input"]["map"][:255]
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(FedxnorError, match="must have 256 entries"):
        load_export(d)
