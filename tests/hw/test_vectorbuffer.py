"""VectorBuffer (hw/vectorbuffer.py) as the feature-map buffer before a fully connected layer: pixels in raster
order, read back as the NHWC-flattened vector's L-bit words (the flatten of contract.network), three vectors
through two banks, random stalls on the pieces and a reader that reads words in random order, some twice."""

from __future__ import annotations

import random

import numpy as np
from gateware import read_vectors, simulate, stream_feeder
from hypothesis import given, settings
from hypothesis import strategies as st

from fedxnor.hw.vectorbuffer import VectorBuffer


@settings(max_examples=25, deadline=None)
@given(pieces=st.integers(1, 30), width=st.integers(1, 9), lanes_frac=st.floats(0, 1), seed=st.integers(0, 2**16))
def test_vectors_read_back_as_their_words(pieces, width, lanes_frac, seed):
    n = pieces * width
    lanes = 1 + int(lanes_frac * (n - 1))
    dut = VectorBuffer(pieces=pieces, width=width, lanes=lanes)
    rng = random.Random(seed)
    vectors = [np.random.default_rng(seed + v).integers(0, 2, n) for v in range(3)]
    want = []
    for vec in vectors:
        bits = list(vec) + [0] * (-n % lanes)
        want.append([sum(int(b) << j for j, b in enumerate(bits[i:i + lanes])) for i in range(0, len(bits), lanes)])
    got = []

    payloads = [sum(int(b) << j for j, b in enumerate(vec[i * width:(i + 1) * width])) for vec in vectors
                for i in range(pieces)]

    async def read(ctx):
        await read_vectors(ctx, dut.rd, len(vectors), dut.words, rng, got)

    simulate(dut, stream_feeder(dut.pieces, payloads, rng), read)
    assert got == want
