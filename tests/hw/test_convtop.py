"""NetworkTop on conv networks: conv (8-bit pixels or binary maps), max-pool and dense layers in one pipeline,
the image as one pixel per beat; every class, and with the debug stream every feature-map and hidden bit, equals
the reference's, for random networks and foldings, with stalls on the image, result and debug streams."""

from __future__ import annotations

import numpy as np
from fxconvnets import random_conv_network
from hw_helpers import decode_debug, run_images
from hypothesis import given, settings
from hypothesis import strategies as st

from fedxnor.contract.conv import Conv
from fedxnor.contract.dense import Dense
from fedxnor.contract.pool import MaxPool
from fedxnor.export.manifest import load_export, write_export
from fedxnor.export.reference import Reference
from fedxnor.hw.top import NetworkTop


@st.composite
def conv_networks(draw):
    bits = draw(st.sampled_from([1, 8]))
    h, w, c = draw(st.integers(4, 7)), draw(st.integers(4, 7)), draw(st.sampled_from([1, 2, 3]))
    specs = [Conv(h, w, c, draw(st.sampled_from([2, 4, 6])), 3, 1, draw(st.integers(0, 1)), bits,
                  "bipolar" if bits == 1 else "unsigned")]
    if draw(st.booleans()):
        oh, ow, oc = specs[-1].out_shape
        specs.append(MaxPool(oh, ow, oc, 2, 2) if min(oh, ow) >= 2 else Conv(oh, ow, oc, 3, 1))
    if draw(st.booleans()):
        oh, ow, oc = specs[-1].out_shape
        specs.append(Conv(oh, ow, oc, draw(st.sampled_from([2, 5])), 1))
    if draw(st.booleans()):
        specs.append(Dense(specs[-1].out_size, draw(st.integers(2, 6))))
    specs.append(Dense(specs[-1].out_size, draw(st.integers(2, 5)), is_output=True))
    folds = [draw(st.sampled_from(s.candidate_foldings())) if s.has_weights else None for s in specs]
    return specs, folds, draw(st.integers(0, 2**16))


@settings(max_examples=12, deadline=None)
@given(conv_networks())
def test_classes_equal_the_reference(tmp_path_factory, case):
    specs, folds, seed = case
    rng = np.random.default_rng(seed)
    net = random_conv_network(specs, rng)
    first = specs[0]
    d = write_export(net, tmp_path_factory.mktemp("cnv") / "e", folds,
                     input_spec={"shape": list(first.in_shape), "encoding": "pixels" if first.input_bits > 1 else "bits"})
    ex = load_export(d)
    debug = bool(seed % 2)  # half the cases with the debug stream: every feature-map and hidden bit
    top = NetworkTop(ex, maps=True, debug=debug)
    x = rng.integers(0, 1 << first.input_bits, (10, first.in_size))
    log = run_images(top, x, in_stall=lambda c: (c * 7 + seed) % 5 == 0, out_stall=lambda c: (c * 3 + seed) % 4 == 0)
    ref = Reference(ex).run(x)
    assert log.classes == ref.classes.tolist()
    if debug:
        for got, want in zip(decode_debug(top, log.debug, len(x)), ref.activations):
            assert np.array_equal(got, want)


def test_cnv_shaped_pixels_conv_pool_conv_dense(tmp_path):
    """8-bit pixels, 3x3 pad 1, 2x2 max-pool, a binary 3x3 conv, two dense layers: 12 images, every class."""
    from fedxnor.contract.folding import Folding

    specs = [Conv(6, 6, 1, 4, 3, 1, 1, 8, "unsigned"), MaxPool(6, 6, 4, 2, 2), Conv(3, 3, 4, 6, 3, 1, 1),
             Dense(54, 8), Dense(8, 4, is_output=True)]
    rng = np.random.default_rng(5)
    net = random_conv_network(specs, rng)
    ex = load_export(write_export(net, tmp_path / "e", [Folding(2, 5), None, Folding(3, 12), Folding(4, 9), Folding(1, 8)],
                                  input_spec={"shape": [6, 6, 1], "encoding": "pixels"}))
    x = rng.integers(0, 256, (12, 36))
    top = NetworkTop(ex, maps=True, debug=True)
    log = run_images(top, x, in_stall=lambda c: c % 3 == 0, out_stall=lambda c: c % 5 == 0, dbg_stall=lambda c: c % 7 < 2)
    ref = Reference(ex).run(x)
    assert log.classes == ref.classes.tolist()
    maps = decode_debug(top, log.debug, len(x))  # conv0, pool0, conv1 maps and the hidden dense layer, every bit
    assert [a.shape[1] for a in maps] == [144, 36, 54, 8]
    for got, want in zip(maps, ref.activations):
        assert np.array_equal(got, want)
