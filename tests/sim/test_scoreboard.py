"""Scoreboard and payload packing: pure Python, no simulator."""

from __future__ import annotations

import numpy as np

from fedxnor.contract.beats import BeatGeometry
from fedxnor.sim.ports import SimPorts
from fedxnor.sim.scoreboard import Scoreboard


def board():
    rng = np.random.default_rng(0)
    acts = [rng.integers(0, 2, (10, 6), dtype=np.uint8), rng.integers(0, 2, (10, 4), dtype=np.uint8)]
    classes = rng.integers(0, 3, 10)
    return Scoreboard(classes, acts, ["fc0", "fc1", "out"]), classes, acts


def test_equal_outputs_pass():
    sb, classes, acts = board()
    r = sb.check(classes, [a.copy() for a in acts])
    assert r.mismatches == 0 and r.first is None and r.per_layer == [0, 0]


def test_first_mismatch_is_lowest_image_then_earliest_layer_then_lowest_neuron():
    sb, classes, acts = board()
    got = [a.copy() for a in acts]
    got[1][3, 2] ^= 1  # image 3, layer 1
    got[0][5, 4] ^= 1  # image 5, layer 0
    got[0][3, 5] ^= 1  # image 3, layer 0 neuron 5: the earliest layer of the lowest image
    got[0][3, 1] ^= 1  # ... and neuron 1 before it
    c = classes.copy()
    c[3] = (c[3] + 1) % 3
    c[8] = (c[8] + 1) % 3
    r = sb.check(c, got)
    assert (r.first.image, r.first.layer, r.first.neuron, r.first.layer_name) == (3, 0, 1, "fc0")
    assert r.first.expected == acts[0][3, 1] and r.first.got == 1 - acts[0][3, 1]
    assert r.mismatches == 3 and r.class_mismatches == 2 and r.activation_mismatches == 2
    assert r.per_layer == [2, 1]
    assert "image 3: layer 0 (fc0) neuron 1: expected bit" in r.first.describe()


def test_class_only_mismatch_names_the_output_layer():
    sb, classes, acts = board()
    c = classes.copy()
    c[7] = (c[7] + 1) % 3
    r = sb.check(c, None)
    assert not r.activations_checked
    assert (r.first.image, r.first.layer, r.first.kind, r.first.layer_name) == (7, 2, "class", "out")
    assert r.first.expected == classes[7] and r.first.got == c[7]
    assert r.mismatches == 1


def ports(width, bits, fan_in, beats):
    geometry = BeatGeometry(fan_in, bits, width, 10, hidden_sizes=(5, 3), debug=True)
    assert (geometry.in_width, geometry.in_beats) == (width, beats)
    return SimPorts(dut_module="m", clk="clk", rst="rst", rst_active_high=True, in_valid="v", in_ready="r",
                    in_payload="p", out_valid="ov", out_ready="or", out_payload="op", beats=geometry,
                    dbg_valid="dv", dbg_ready="dr", dbg_payload="dp")


def test_image_packing_is_little_endian_inputs_of_b_bits_zero_padded():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (4, 13))
    p = ports(24, 8, 13, 5)  # 3 inputs per beat, 15 slots
    for row, word in zip(x, p.pack_images(x)):
        assert word == sum(int(v) << (8 * i) for i, v in enumerate(row))
        beats = p.beats_of(word)
        assert len(beats) == 5 and beats[4] == int(row[12])
        assert beats[0] == int(row[0]) | int(row[1]) << 8 | int(row[2]) << 16


def test_debug_decoding_by_fields():
    p = ports(8, 1, 8, 1)
    a0 = np.array([1, 0, 1, 1, 0], np.uint8)
    a1 = np.array([0, 1, 1], np.uint8)
    b0 = sum(int(v) << k for k, v in enumerate(a0))
    b1 = sum(int(v) << k for k, v in enumerate(a1))
    assert p.dbg_width == 5 and p.dbg_fields == (((0, 0, 5, 0),), ((1, 0, 3, 0),))  # one beat per hidden layer
    got = p.decode_debug_word(b0 | b1 << 5)
    assert (got[0] == a0).all() and (got[1] == a1).all()
    assert SimPorts.from_dict(p.to_dict()) == p
