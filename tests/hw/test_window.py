"""Both sliding-window generators, SlidingWindow (hw/window.py, serial taps) and ColumnWindow (hw/colwindow.py, a
window register fed a column a cycle), against the contract's window (fedxnor.contract.conv.Conv.window): random
map sizes, channel counts, kernels, strides and padding; several images back to back; random stalls on the pixel
stream and a consumer that reads each window's words in a random order, sometimes twice, before releasing it."""

from __future__ import annotations

import random

import numpy as np
import pytest
from gateware import read_vectors, simulate, stream_feeder
from hypothesis import given, settings
from hypothesis import strategies as st

from fedxnor.contract.conv import Conv
from fedxnor.hw.colwindow import ColumnWindow
from fedxnor.hw.window import SlidingWindow


def expected_words(conv: Conv, image: np.ndarray, lanes: int) -> list[list[int]]:
    """Per output pixel (row-major), the window's L-bit words, padded with 0 past K."""
    out = []
    for oy in range(conv.out_h):
        for ox in range(conv.out_w):
            bits = conv.window(image, oy, ox)
            bits += [0] * (-len(bits) % lanes)
            out.append([sum(b << j for j, b in enumerate(bits[i:i + lanes])) for i in range(0, len(bits), lanes)])
    return out


def run_window(dut: SlidingWindow, images: list[np.ndarray], seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    pixels = [sum(int(v) << ch for ch, v in enumerate(img.reshape(-1, dut.C)[i]))
              for img in images for i in range(dut.H * dut.W)]
    n_windows = len(images) * dut.OH * dut.OW
    got: list[list[int]] = []

    async def consume(ctx):
        await read_vectors(ctx, dut.rd, n_windows, dut.words, rng, got)

    simulate(dut, stream_feeder(dut.pixels, pixels, rng), consume)
    return got


@st.composite
def shapes(draw):
    k = draw(st.integers(1, 3))
    pad = draw(st.integers(0, k - 1))
    stride = draw(st.integers(1, 2))
    h = draw(st.integers(max(1, k - 2 * pad), 6))
    w = draw(st.integers(max(1, k - 2 * pad), 6))
    c = draw(st.sampled_from([1, 2, 3, 5, 8]))
    conv = Conv(h, w, c, 2, k, stride, pad)
    lanes = draw(st.integers(1, conv.fan_in))
    return conv, lanes, draw(st.integers(0, 2**16)), draw(st.sampled_from([SlidingWindow, ColumnWindow]))


@settings(max_examples=30, deadline=None)
@given(shapes())
def test_windows_equal_the_contracts(case):
    conv, lanes, seed, unit = case
    dut = unit(in_h=conv.in_h, in_w=conv.in_w, in_c=conv.in_c, k=conv.k, stride=conv.stride, pad=conv.pad, lanes=lanes)
    assert (dut.OH, dut.OW, dut.K) == (conv.out_h, conv.out_w, conv.fan_in)
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 2, conv.in_size) for _ in range(2)]
    want = [w for img in images for w in expected_words(conv, img, lanes)]
    assert run_window(dut, images, seed) == want


@pytest.mark.parametrize("unit", [SlidingWindow, ColumnWindow])
def test_a_5x5_map_3x3_window_pad_1_stride_2(unit):
    conv = Conv(5, 5, 3, 4, 3, 2, 1)
    dut = unit(in_h=5, in_w=5, in_c=3, k=3, stride=2, pad=1, lanes=8)
    img = np.random.default_rng(3).integers(0, 2, conv.in_size)
    assert run_window(dut, [img], 3) == expected_words(conv, img, 8)


def test_column_window_timing_equals_the_model():
    """Stride 1, no padding, the consumer reading each window in one cycle the moment it is ready and the pixels always
    valid: the pixels are taken, and the windows offered, at contract/colcycles.py's cycles (a window is ready
    WINDOW_LAG + 1 cycles after its last pixel; with two hold banks the walker then takes two windows every three
    cycles), and every window equals the contract's."""
    from gateware import simulate

    from fedxnor.contract.colcycles import ColumnConvUnit
    from fedxnor.contract.densecycles import Sink, Source, Stream, run_units
    from fedxnor.contract.folding import Folding
    from fedxnor.contract.structure import WINDOW_LAG

    conv = Conv(5, 6, 2, 4, 3)
    dut = ColumnWindow(in_h=5, in_w=6, in_c=2, k=3, lanes=conv.fan_in)
    img = np.random.default_rng(1).integers(0, 2, conv.in_size)
    pixels = [sum(int(v) << ch for ch, v in enumerate(px)) for px in img.reshape(-1, 2)]
    took, ready_at, got = [], [], []

    async def bench(ctx):
        cyc, bank = 0, 0
        while len(got) < conv.out_h * conv.out_w:
            n = len(took)
            ctx.set(dut.pixels.valid, n < len(pixels))
            ctx.set(dut.pixels.payload, pixels[n] if n < len(pixels) else 0)
            ctx.set(dut.rd.bank, bank)
            rel = bool(ctx.get(dut.rd.ready) >> bank & 1)
            ctx.set(dut.rd.release, rel)
            if n < len(pixels) and ctx.get(dut.pixels.ready):
                took.append(cyc)
            await ctx.tick()
            if rel:
                ready_at.append(cyc)
                got.append(ctx.get(dut.rd.data))
                bank ^= 1
            cyc += 1

    simulate(dut, bench)
    assert got == [w[0] for w in expected_words(conv, img, conv.fan_in)]
    # window (oy, ox) ends as pixel (oy + 2, ox + 2) is taken, readable WINDOW_LAG + 1 cycles later
    assert ready_at == [took[(oy + 2) * 6 + ox + 2] + 1 + WINDOW_LAG for oy in range(conv.out_h) for ox in range(conv.out_w)]
    inp, out = Stream(), Stream()  # a one-token window (P = M, L = K), the output always taken: start = the read
    unit = ColumnConvUnit(conv, Folding(4, conv.fan_in), inp, out, 1)
    run_units([Source(inp, len(pixels)), unit, Sink(out)])
    assert (took, ready_at) == (inp.hand, unit.start)
    assert took[:6] == list(range(6))  # the first rows go in a pixel a cycle


@pytest.mark.parametrize("h, w, k, pad", [(3, 2, 2, 0), (3, 3, 2, 0), (2, 1, 2, 1), (4, 3, 3, 0)])
def test_narrow_maps_keep_their_column_words(h, w, k, pad):
    """The column memory's write lands a cycle late from 3 padded words up (hw/colwindow.py), at once on 2: the
    narrowest maps, where a late write and the next read of its word are closest, over three images with stalls."""
    conv = Conv(h, w, 3, 2, k, 1, pad)
    dut = ColumnWindow(in_h=h, in_w=w, in_c=3, k=k, pad=pad, lanes=4)
    for seed in range(3):
        rng = np.random.default_rng(seed)
        images = [rng.integers(0, 2, conv.in_size) for _ in range(3)]
        assert run_window(dut, images, seed) == [v for img in images for v in expected_words(conv, img, 4)]
