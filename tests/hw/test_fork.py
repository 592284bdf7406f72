"""StreamFork (hw/fork.py): both consumers get every beat once, in order, whatever either one's stalls."""

from __future__ import annotations

import random

from gateware import simulate, stream_collector, stream_feeder
from hypothesis import given, settings
from hypothesis import strategies as st

from fedxnor.hw.fork import StreamFork


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**16), st.floats(0.0, 0.6), st.floats(0.2, 1.0), st.floats(0.2, 1.0))
def test_both_branches_see_every_beat_in_order(seed, stall, ready_a, ready_b):
    rng = random.Random(seed)
    beats = [rng.randrange(256) for _ in range(40)]
    dut = StreamFork(8)
    got_a, got_b = [], []
    simulate(dut, stream_feeder(dut.i, beats, rng, stall), *stream_collector(dut.a, len(beats), rng, got_a, ready_a),
             *stream_collector(dut.b, len(beats), rng, got_b, ready_b))
    assert got_a == beats and got_b == beats
