"""MaxPoolUnit (hw/pool.py) against contract.pool.MaxPool: random maps, channels, kernels and strides
(overlapping windows too), two images back to back, random stalls on both streams."""

from __future__ import annotations

import random

import numpy as np
from gateware import simulate, stream_collector, stream_feeder
from hypothesis import given, settings
from hypothesis import strategies as st

from fedxnor.contract.pool import MaxPool
from fedxnor.hw.pool import MaxPoolUnit


def run_pool(dut: MaxPoolUnit, images: list[np.ndarray], seed: int) -> list[int]:
    rng = random.Random(seed)
    pixels = [int(sum(int(v) << c for c, v in enumerate(px))) for img in images for px in img.reshape(-1, dut.C)]
    n_out = len(images) * dut.OH * dut.OW
    got: list[int] = []

    simulate(dut, stream_feeder(dut.pixels, pixels, rng), *stream_collector(dut.pooled, n_out, rng, got, 0.7))
    return got


@st.composite
def pools(draw):
    k = draw(st.integers(1, 3))
    stride = draw(st.integers(1, 3))
    h, w = draw(st.integers(k, 7)), draw(st.integers(k, 7))
    return MaxPool(h, w, draw(st.sampled_from([1, 3, 4, 8])), k, stride), draw(st.integers(0, 2**16))


@settings(max_examples=25, deadline=None)
@given(pools())
def test_pooled_pixels_equal_the_contracts(case):
    pool, seed = case
    dut = MaxPoolUnit(in_h=pool.in_h, in_w=pool.in_w, channels=pool.c, k=pool.k, stride=pool.stride)
    assert (dut.OH, dut.OW) == (pool.out_h, pool.out_w)
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 2, pool.in_size) for _ in range(2)]
    want = pool.forward(None, None, np.stack(images)).reshape(-1, pool.c)
    assert run_pool(dut, images, seed) == [int(sum(int(v) << c for c, v in enumerate(px))) for px in want]
