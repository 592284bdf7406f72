"""One beat geometry: the image stream words, the host link's bytes and the debug fields agree."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedxnor.contract.beats import BeatGeometry


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 50), bits=st.integers(1, 8), lanes_frac=st.floats(0, 1), seed=st.integers(0, 99))
def test_beats_carry_input_i_in_bits_i_times_b(n, bits, lanes_frac, seed):
    lanes = 1 + int(lanes_frac * (n - 1))
    g = BeatGeometry(n, bits, lanes * bits, 10)
    x = np.random.default_rng(seed).integers(0, 1 << bits, (2, n))
    for row, image in zip(x, g.pack_images(x)):
        assert image == sum(int(v) << (i * bits) for i, v in enumerate(row))
        beats = g.beats_of(image)
        assert len(beats) == g.in_beats == -(-n // lanes) and beats == g.image_beats(row)
        assert all(b < 1 << g.in_width for b in beats)
        link = g.link_bytes(row)
        assert len(link) == g.image_bytes
        assert [int.from_bytes(link[j * g.beat_bytes:(j + 1) * g.beat_bytes], "little") for j in range(g.in_beats)] == beats


def test_debug_fields_one_beat_per_hidden_layer():
    g = BeatGeometry(8, 1, 4, 3, hidden_sizes=(5, 3), debug=True)  # 4-bit beats
    assert g.dbg_width == 5 and g.dbg_beats == 2 and g.class_width == 2
    acts = g.decode_debug([0b10110, 0b011])
    assert acts[0].tolist() == [0, 1, 1, 0, 1] and acts[1].tolist() == [1, 1, 0]
    assert BeatGeometry(8, 1, 4, 3, hidden_sizes=(5, 3)).dbg_beats == 0
    assert BeatGeometry(8, 1, 4, 3, debug=True).dbg_beats == 0  # no hidden layer: no debug beats


def test_tagged_debug_beats_split_by_layer_whatever_their_order():
    """A conv network's debug beats: one per pixel of a map layer, tag above the data; layers interleave."""
    g = BeatGeometry(8, 1, 4, 3, hidden_sizes=(8, 3), debug=True, hidden_pieces=(4, 1))
    assert g.tagged and g.dbg_data_width == 3 and g.dbg_tag_width == 1 and g.dbg_width == 4 and g.dbg_beats == 5
    # two images; layer 0's pixels (2 bits each), layer 1's beat (tag 1) interleaved anywhere
    beats = [0b01, 0b10, 1 << 3 | 0b101, 0b11, 0b00, 0b11, 1 << 3 | 0b010, 0b11, 0b01, 0b10]
    maps, dense = g.split_debug(beats, 2)
    assert maps.tolist() == [[1, 0, 0, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0, 0, 1]]
    assert dense.tolist() == [[1, 0, 1], [0, 1, 0]]
    with pytest.raises(ValueError, match="hidden layer 0: 7 debug beats for 2 images"):
        g.split_debug(beats[1:], 2)
