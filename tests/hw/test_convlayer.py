"""ConvLayer (hw/convlayer.py): a hidden conv layer's output pixels equal the contract's (the reference's
feature map, every bit) for random shapes, foldings, thresholds (lo and hi + 1 included) and inverted rows,
on binary maps and on a first layer's 3- or 8-bit pixels (bit planes, padding pixel 0), two images back to
back, random stalls on both pixel streams; built with either window generator and collector (the serial one with
its two banks, the column one with its pixel ring), whichever the folding's rule would pick."""

from __future__ import annotations

import random

import numpy as np
import pytest
from fxconvnets import random_conv_network
from gateware import simulate, stream_collector, stream_feeder
from hypothesis import given, settings
from hypothesis import strategies as st

from fedxnor.contract.conv import Conv
from fedxnor.contract.dense import Dense
from fedxnor.export.manifest import load_export, write_export
from fedxnor.hw.convlayer import ConvLayer


def pixel_words(values: np.ndarray, channels: int, bits: int = 1) -> list[int]:
    """Pixels of C channels, B bits each: channel c in bits [c·B, c·B + B) (the image beats' layout)."""
    return [int(sum(int(v) << (c * bits) for c, v in enumerate(px))) for px in values.reshape(-1, channels)]


def run_layer(dut: ConvLayer, images: list[np.ndarray], seed: int) -> list[int]:
    spec = dut.info.spec
    rng = random.Random(seed)
    pixels = [w for img in images for w in pixel_words(img, spec.in_c, spec.planes)]
    n_out = len(images) * spec.out_h * spec.out_w
    got: list[int] = []

    simulate(dut, stream_feeder(dut.pixels, pixels, rng, 0.2), *stream_collector(dut.out, n_out, rng, got))
    return got


@st.composite
def conv_layers(draw):
    k = draw(st.integers(1, 3))
    pad = draw(st.integers(0, k - 1))
    h, w = draw(st.integers(max(1, k - 2 * pad), 5)), draw(st.integers(max(1, k - 2 * pad), 5))
    bits = draw(st.sampled_from([1, 1, 3, 8]))  # a binary map, or a first layer on 3- or 8-bit pixels
    conv = Conv(h, w, draw(st.sampled_from([1, 2, 3, 8])), draw(st.sampled_from([2, 3, 4, 6])), k,
                draw(st.integers(1, 2)), pad, bits, "bipolar" if bits == 1 else "unsigned")
    fold = draw(st.sampled_from(conv.candidate_foldings()))
    return conv, fold, draw(st.integers(0, 2**16)), draw(st.booleans())


@settings(max_examples=24, deadline=None)
@given(conv_layers())
def test_output_pixels_equal_the_reference(tmp_path_factory, case):
    conv, fold, seed, column = case
    rng = np.random.default_rng(seed)
    specs = [conv, Dense(conv.out_size, 2, is_output=True)]
    net = random_conv_network(specs, rng)
    ex = load_export(write_export(net, tmp_path_factory.mktemp("conv") / "e", [fold, specs[1].candidate_foldings()[0]]))
    dut = ConvLayer(ex.layers[0], ex.weight_words[0], ex.threshold_words[0], column=column)
    assert dut.column is column
    images = [rng.integers(0, 1 << conv.input_bits, conv.in_size) for _ in range(2)]
    want = net.layers[0].forward(np.stack(images))  # (2, out_h·out_w·out_c) NHWC
    assert run_layer(dut, images, seed) == pixel_words(want, conv.out_c)


@pytest.mark.parametrize("fold", [(2, 4), (4, 9)])  # serial generator; column (T_w = 8 < 9)
def test_first_layer_on_8_bit_pixels_3x3_pad_1(tmp_path, fold):
    """cnv-style first layer: 8-bit pixels, padding pixel 0, read plane by plane, MSB first."""
    from fedxnor.contract.folding import Folding

    conv = Conv(6, 5, 1, 4, 3, 1, 1, 8, "unsigned")
    rng = np.random.default_rng(8)
    specs = [conv, Dense(conv.out_size, 2, is_output=True)]
    net = random_conv_network(specs, rng)
    ex = load_export(write_export(net, tmp_path / "e", [Folding(*fold), Folding(1, 8)]))
    dut = ConvLayer(ex.layers[0], ex.weight_words[0], ex.threshold_words[0])
    assert dut.column is (fold == (4, 9)) and dut.Q == (2 if fold == (4, 9) else 1)  # P = M, L = K: two arrays
    images = [rng.integers(0, 256, conv.in_size) for _ in range(2)]
    want = net.layers[0].forward(np.stack(images))
    assert run_layer(dut, images, 8) == pixel_words(want, conv.out_c)
