"""Conv BNNs: torch eval equals the integer network (the bridge's BatchNorm2d folding, (ky, kx, c) weight order,
padding -1 / pixel 0, max-pool = OR after sign, NHWC flatten) BY EQUALITY on every class, hidden bit and score,
on edge-case shapes and on random ones (Hypothesis)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from conv_nets import assert_reference_equals_torch, conv_config, randomize
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedxnor.train.models import BNN

EDGE_CASES = {
    # name: (input shape, conv blocks (out_c, k, stride, pad, pool), hidden, input encoding)
    "odd-sizes-valid": ((9, 7), [(5, 3, 1, 0, 0), (6, 3, 1, 0, 0)], (6,), "pixels"),
    "k1": ((6, 5, 2), [(3, 1, 1, 0, 0), (9, 1, 1, 0, 2)], (5,), "pixels"),
    "stride2-pad1": ((11, 9), [(4, 3, 2, 1, 0), (7, 3, 2, 1, 0)], (4,), "pixels"),
    "binary-padding": ((8, 8), [(5, 3, 1, 1, 0), (11, 3, 1, 2, 2)], (6,), "pixels"),
    "channels-not-multiple-of-8": ((10, 10, 3), [(13, 3, 1, 1, 2), (9, 2, 1, 0, 0)], (7,), "pixels"),
    "pool-odd-map": ((9, 9), [(6, 2, 1, 0, 3)], (), "pixels"),
    "pool-straight-to-output": ((8, 6, 2), [(3, 3, 1, 1, 2)], (), "pixels"),
    "binarized-pixels-padded": ((7, 7), [(5, 3, 1, 1, 0), (4, 3, 2, 0, 0)], (3,), "pixels-binarized"),
    "large-k": ((7, 7, 3), [(4, 5, 1, 2, 0), (6, 7, 1, 0, 0)], (5,), "pixels"),
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_edge_cases_exact(case):
    shape, convs, hidden, enc = EDGE_CASES[case]
    model = randomize(BNN(conv_config(shape, convs, hidden, enc)), seed=len(case))
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, (64, *shape)).astype(np.uint8)
    images[:4] = 0  # all-zero and all-255 images: the extremes of the first layer's range
    images[4:8] = 255
    assert_reference_equals_torch(model, images)


def test_negative_and_zero_scales_present_and_folded():
    model = randomize(BNN(conv_config((8, 8), [(16, 3, 1, 1, 2)], (8,))), seed=3)
    net = model.to_int_network()
    scale = model.conv_norms[0].bn.weight.detach()
    assert net.layers[0].inverted.tolist() == (scale < 0).tolist()
    lo, hi = net.layers[0].spec.acc_range
    t = net.layers[0].thresholds
    for c in np.flatnonzero((scale == 0).numpy()):
        assert t[c] == (lo if model.conv_norms[0].bn.bias[c] >= 0 else hi + 1)
    assert (scale < 0).any() and (scale == 0).any()


def test_padding_is_minus_one_for_binary_layers_and_zero_for_pixels():
    """An all-+1 second-layer kernel on an all-+1 map: with -1 padding the corner output is the count of
    in-map taps minus the padded ones, which a zero padding would not give."""
    model = BNN(conv_config((4, 4), [(1, 3, 1, 1, 0), (1, 3, 1, 1, 0)], ()))
    with torch.no_grad():
        for conv in model.convs:
            conv.weight.fill_(0.5)
    model.eval()
    x = torch.full((1, 1, 4, 4), 1.0)
    corner = model.convs[1](x)[0, 0, 0, 0].item()
    assert corner == 4 - 5  # 4 taps on the map (+1), 5 padded taps (-1)
    first = model.convs[0](torch.full((1, 1, 4, 4), 200.0))[0, 0, 0, 0].item()
    assert first == 4 * 200  # pixel padding adds 0


def test_weight_bits_are_in_ky_kx_c_order():
    model = BNN(conv_config((5, 5, 3), [(2, 2, 1, 0, 0)], ()))
    with torch.no_grad():
        w = model.convs[0].weight
        w.fill_(-1.0)
        w[1, 2, 0, 1] = 1.0  # out 1, channel 2, ky 0, kx 1
    bits = model.convs[0].weight_bits().numpy()
    assert bits.shape == (2, 12)
    assert np.flatnonzero(bits[1]).tolist() == [(0 * 2 + 1) * 3 + 2] and not bits[0].any()


@st.composite
def conv_nets(draw):
    h, w, c = draw(st.integers(3, 10)), draw(st.integers(3, 10)), draw(st.integers(1, 4))
    shape = (h, w) if c == 1 and draw(st.booleans()) else (h, w, c)
    blocks = []
    for _ in range(draw(st.integers(1, 3))):
        k = draw(st.integers(1, min(4, h + 2, w + 2)))
        pad = draw(st.integers(0, min(2, k - 1) if k > 1 else 0))
        stride = draw(st.integers(1, 2))
        oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        if min(oh, ow) < 1:
            break
        pool = draw(st.sampled_from([0, 2, 3]))
        if pool > min(oh, ow):
            pool = 0
        blocks.append((draw(st.integers(1, 12)), k, stride, pad, pool))
        h, w = (oh // pool, ow // pool) if pool else (oh, ow)
    if not blocks:
        blocks = [(3, 1, 1, 0, 0)]
    hidden = tuple(draw(st.lists(st.integers(1, 9), max_size=2)))
    enc = draw(st.sampled_from(["pixels", "pixels", "pixels-binarized"]))
    return shape, blocks, hidden, enc, draw(st.integers(0, 2**31))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_nets())
def test_random_conv_shapes_exact(net):
    shape, convs, hidden, enc, seed = net
    model = randomize(BNN(conv_config(shape, convs, hidden, enc)), seed)
    images = np.random.default_rng(seed).integers(0, 256, (24, *shape)).astype(np.uint8)
    assert_reference_equals_torch(model, images)


@pytest.mark.parametrize("name", ["cnv-fmnist", "cnv-small"])
def test_layer_specs_are_the_exported_layers(name):
    """Planning before training (BNNConfig.layer_specs) sees exactly the layers the bridge exports."""
    from fedxnor.train.models import build_model

    model = build_model(name)
    specs = model.config.layer_specs()
    unnamed = [replace(s, name="") for s in specs]
    assert unnamed == [replace(la.spec, name="") for la in model.to_int_network().layers]
    assert [s.kind for s in specs][-1] == "dense" and specs[0].kind == "conv" and specs[0].input_bits == 8
    weight_bits = sum(s.fan_in * s.fan_out for s in specs if s.has_weights)
    # the block RAM of the board each net is for: the UP5K's 120 Kbit, the ECP5-85F's 208 DP16KD of 18 Kbit
    assert weight_bits <= (120 * 1024 if name == "cnv-small" else 208 * 18 * 1024)
