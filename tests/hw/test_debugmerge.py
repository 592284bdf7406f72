"""DebugMerge (hw/debugmerge.py) against its behavioural model: every input's beats come out once, in their
order, each with its input's tag above the data (or its own tag), under random stalls on every stream."""

from __future__ import annotations

import random

from gateware import simulate, stream_collector, stream_feeder
from hypothesis import given, settings
from hypothesis import strategies as st

from fedxnor.hw.debugmerge import DebugMerge


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 4), st.integers(0, 2**16))
def test_every_beat_once_in_order_with_its_tag(n, seed):
    rng = random.Random(seed)
    widths = [rng.randint(1, 6) for _ in range(n)]
    data, tag_w = max(widths), 3
    tags = [j + 2 for j in range(n)]  # not the input index, to see the tag is the one given
    if n > 1:  # the last input brings its own tag (the dense layers' stream)
        tags[-1], widths[-1] = None, data + tag_w
    streams = []
    for j, w in enumerate(widths):
        count = rng.randint(0, 12)
        own = [(rng.randrange(1 << data) | (rng.randrange(n + 1, 8) << data)) if tags[j] is None else rng.randrange(1 << w)
               for _ in range(count)]
        streams.append(own)
    dut = DebugMerge(widths, tags, data, tag_w)
    total = sum(map(len, streams))
    got = []
    feeders = [stream_feeder(port, beats, rng, 0.5) for port, beats in zip(dut.inputs(), streams)]
    simulate(dut, *feeders, *stream_collector(dut.out, total, rng, got, 0.5))
    for j, beats in enumerate(streams):  # the behavioural model: a tagged copy of each stream, interleaved
        want = [b if tags[j] is None else b | tags[j] << data for b in beats]
        mine = [b for b in got if (b >> data) == tags[j]] if tags[j] is not None else \
            [b for b in got if (b >> data) not in [t for t in tags if t is not None]]
        assert mine == want
    assert len(got) == total
