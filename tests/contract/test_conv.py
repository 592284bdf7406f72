"""The convolution kind against its definition: the fast im2col reference equals, by equality, the hardware's
literal walk of the packed words and a textbook convolution in the ±1 domain written here (NCHW, torch's
weight layout, padding -1 for binary layers and 0 for pixels)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedxnor.contract.conv import Conv
from fedxnor.contract.folding import Folding
from fedxnor.errors import FedxnorError

CONV_EXAMPLES = 50


def torch_to_matrix(w: np.ndarray) -> np.ndarray:
    """(out_c, in_c, k, k) weight bits -> the M x K matrix, columns in (ky, kx, c) order: w.permute(0, 2, 3, 1)."""
    return w.transpose(0, 2, 3, 1).reshape(w.shape[0], -1)


def textbook_conv(spec: Conv, w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Accumulators (batch, out_h * out_w * out_c), NHWC, the slow obvious way: ±1 (or pixel) values in NCHW,
    padded with -1 (binary) or 0 (pixels), a sum of products per output channel and pixel."""
    b, s, k, p = len(x), spec.stride, spec.k, spec.pad
    v = x.reshape(b, spec.in_h, spec.in_w, spec.in_c).transpose(0, 3, 1, 2).astype(np.int64)
    bipolar = spec.encoding == "bipolar"
    if bipolar:
        v = 2 * v - 1
    v = np.pad(v, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=-1 if bipolar else 0)
    wpm = 2 * w.astype(np.int64) - 1
    dot = np.zeros((b, spec.out_c, spec.out_h, spec.out_w), np.int64)
    for oy in range(spec.out_h):
        for ox in range(spec.out_w):
            patch = v[:, :, oy * s:oy * s + k, ox * s:ox * s + k]
            dot[:, :, oy, ox] = np.einsum("bcyx,mcyx->bm", patch, wpm)
    acc = (dot + spec.fan_in) // 2 if bipolar else dot  # popcount(XNOR) = (K + dot) / 2
    return acc.transpose(0, 2, 3, 1).reshape(b, -1)


@st.composite
def conv_cases(draw):
    enc = draw(st.sampled_from(["bipolar", "unsigned"]))
    bits = 1 if enc == "bipolar" else draw(st.sampled_from([1, 3, 8]))
    k = draw(st.integers(1, 4))
    pad = draw(st.integers(0, min(1, k - 1)))
    stride = draw(st.integers(1, 2))
    in_h, in_w = draw(st.integers(max(1, k - 2 * pad), 9)), draw(st.integers(max(1, k - 2 * pad), 9))
    spec = Conv(in_h, in_w, draw(st.integers(1, 11)), draw(st.integers(1, 6)), k, stride, pad, bits, enc)
    fold = draw(st.sampled_from(spec.candidate_foldings()))
    return spec, fold, np.random.default_rng(draw(st.integers(0, 2**16)))


def check_conv(spec: Conv, fold: Folding, rng: np.random.Generator) -> None:
    w = rng.integers(0, 2, (spec.out_c, spec.in_c, spec.k, spec.k), dtype=np.uint8)
    x = rng.integers(0, 1 << spec.input_bits, (2, spec.in_size))
    x[1] = (1 << spec.input_bits) - 1  # the largest inputs: padding must still count as -1 / 0, not as them
    m = torch_to_matrix(w)
    fast = spec.accumulate(m, x)
    assert np.array_equal(fast, textbook_conv(spec, w, x))
    assert fast.shape == (2, spec.out_size)
    lo, hi = spec.acc_range
    assert fast.min() >= lo and fast.max() <= hi
    words = spec.pack_weights(m, fold)
    assert np.array_equal(spec.literal_accumulate(words, fold, x[0]), fast[0])
    # negative BN scale: an inverted row mirrors the accumulator (padding included), acc' = lo + hi - acc
    assert np.array_equal(spec.accumulate(1 - m, x), lo + hi - fast)
    # thresholds per output channel, the constants T = lo (always 1) and T = hi + 1 (never) among them
    t = rng.integers(lo, hi + 2, spec.out_c)
    t[0] = lo
    t[-1] = hi + 1 if spec.out_c > 1 else t[-1]
    out = spec.forward(m, t, x)
    want = (textbook_conv(spec, w, x).reshape(2, -1, spec.out_c) >= t).astype(np.uint8).reshape(2, -1)
    assert np.array_equal(out, want)
    maps = out.reshape(2, spec.out_h, spec.out_w, spec.out_c)
    assert maps[..., 0].all() and (spec.out_c == 1 or not maps[..., -1].any())


@settings(max_examples=CONV_EXAMPLES, deadline=None)
@given(conv_cases())
def test_fast_conv_equals_textbook_and_literal_walk(case):
    check_conv(*case)


@pytest.mark.parametrize("args,fold", [
    ((7, 5, 3, 4, 3, 2, 1, 8, "unsigned"), Folding(2, 5)),  # odd sizes, stride 2, pad 1, 8-bit pixels, RGB
    ((6, 6, 9, 3, 1, 1, 0), Folding(3, 4)),  # k = 1, 9 channels (not a multiple of 8)
    ((5, 7, 13, 6, 3, 1, 1), Folding(6, 117)),  # pad 1 with -1 bits, one word per row
    ((4, 4, 1, 2, 4, 2, 1, 1, "unsigned"), Folding(1, 3)),  # binarized pixels padded with 0
])
def test_named_edge_cases(args, fold):
    check_conv(Conv(*args), fold, np.random.default_rng(3))


def test_shapes_matrix_and_tokens():
    spec = Conv(28, 28, 1, 16, 3, 1, 1, 8, "unsigned")
    assert (spec.out_shape, spec.fan_in, spec.fan_out, spec.in_size) == ((28, 28, 16), 9, 16, 784)
    assert spec.tokens(Folding(4, 9)) == 28 * 28 * 4 * 1 * 8
    s2 = Conv(7, 9, 3, 4, 3, 2, 0)
    assert s2.out_shape == (3, 4, 4) and s2.tokens(Folding(2, 10)) == 3 * 4 * 2 * 3
    assert s2.weight_depth(Folding(2, 10)) == 2 * 3 and not s2.is_output and s2.has_weights


def test_window_order_is_ky_kx_c_with_padding():
    spec = Conv(2, 2, 2, 1, 3, 1, 1)
    x = np.arange(8)  # (y * 2 + x) * 2 + c
    assert spec.window(x, 0, 0) == [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 0, 0, 4, 5, 6, 7]


@pytest.mark.parametrize("kwargs,match", [
    (dict(in_h=4, in_w=4, in_c=1, out_c=2, k=3, pad=3), "pad 3 must be below the kernel size 3"),
    (dict(in_h=2, in_w=4, in_c=1, out_c=2, k=3), "does not fit a 2x4 map"),
    (dict(in_h=4, in_w=4, in_c=0, out_c=2, k=3), "in_c must be an integer >= 1"),
    (dict(in_h=4, in_w=4, in_c=1, out_c=2, k=3, stride=True), "stride must be an integer >= 1"),
    (dict(in_h=4, in_w=4, in_c=1, out_c=2, k=3, input_bits=8), "bipolar layer takes 1-bit"),
    (dict(in_h=4, in_w=4, in_c=1, out_c=2, k=3, encoding="twos"), "unknown input encoding"),  # "signed" is known (issue 22)
])
def test_bad_convs_are_one_line_errors(kwargs, match):
    with pytest.raises(FedxnorError, match=match):
        Conv(**kwargs)


def test_inputs_of_the_wrong_width_refused():
    spec = Conv(4, 4, 2, 2, 3)
    with pytest.raises(FedxnorError, match="inputs of width 32"):
        spec.accumulate(np.ones((2, 18), np.uint8), np.zeros((1, 16)))
