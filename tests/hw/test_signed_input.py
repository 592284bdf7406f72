"""Signed (two's complement) first layers in gateware: the array's Horner accumulator subtracts the MSB plane's term.
Classes (and, for dense networks, every hidden activation bit) equal the reference, by equality, for dense and conv
first layers with random signed inputs, the most negative value included, under stalls on both streams. Checked to
fail when the MSB plane is added instead of subtracted (the unsigned array on signed planes)."""

from __future__ import annotations

import numpy as np
from fxconvnets import random_conv_network
from hw_helpers import decode_debug, run_images
from hypothesis import given, settings
from hypothesis import strategies as st

from fedxnor.contract.conv import Conv
from fedxnor.contract.dense import Dense
from fedxnor.contract.matrix import input_range
from fedxnor.contract.pool import MaxPool
from fedxnor.export.manifest import load_export, write_export
from fedxnor.export.reference import Reference
from fedxnor.hw.top import NetworkTop


def signed_inputs(spec, rng, n):
    lo, hi = input_range(spec.input_bits, spec.encoding)
    x = rng.integers(lo, hi + 1, (n, spec.in_size))
    x[0] = lo  # every input -2^(B-1): only the MSB plane set
    x[1, ::2] = hi
    return x


@st.composite
def dense_cases(draw):
    bits = draw(st.integers(2, 8))
    n = draw(st.integers(3, 40))
    specs = [Dense(n, draw(st.sampled_from([2, 4, 6])), bits, "signed")]
    if draw(st.booleans()):
        specs.append(Dense(specs[-1].fan_out, draw(st.integers(2, 6))))
    specs.append(Dense(specs[-1].fan_out, draw(st.integers(2, 5)), is_output=True))
    folds = [draw(st.sampled_from(s.candidate_foldings())) for s in specs]
    return specs, folds, draw(st.integers(0, 2**16))


@settings(max_examples=6, deadline=None)
@given(dense_cases())
def test_dense_signed_first_layer_equals_reference(tmp_path_factory, case):
    specs, folds, seed = case
    rng = np.random.default_rng(seed)
    net = random_conv_network(specs, rng)
    ex = load_export(write_export(net, tmp_path_factory.mktemp("sd") / "e", folds))
    x = signed_inputs(specs[0], rng, 8)
    want = Reference(ex).run(x)
    top = NetworkTop(ex, debug=True)
    log = run_images(top, x, in_stall=lambda c: (c * 7 + seed) % 5 == 0, out_stall=lambda c: (c * 3 + seed) % 4 == 0)
    assert log.classes == want.classes.tolist()
    for layer, acts in enumerate(decode_debug(top, log.debug, len(x))):
        assert np.array_equal(acts, want.activations[layer]), f"hidden layer {layer}"


@settings(max_examples=4, deadline=None)
@given(st.integers(2, 8), st.integers(0, 1), st.sampled_from([1, 2, 3]), st.integers(0, 2**16))
def test_conv_signed_first_layer_equals_reference(tmp_path_factory, bits, pad, c, seed):
    """signed pixels -> 3x3 conv (pad: the stored value 0) -> 2x2 max-pool -> dense -> dense, through the conv front."""
    specs = [Conv(6, 5, c, 4, 3, 1, pad, bits, "signed")]
    oh, ow, oc = specs[0].out_shape
    specs += [MaxPool(oh, ow, oc, 2, 2)]
    specs += [Dense(specs[-1].out_size, 6), Dense(6, 3, is_output=True)]
    rng = np.random.default_rng(seed)
    folds = [rng.choice(s.candidate_foldings()) if s.has_weights else None for s in specs]
    net = random_conv_network(specs, rng)
    ex = load_export(write_export(net, tmp_path_factory.mktemp("sc") / "e", folds,
                                  input_spec={"shape": [6, 5, c], "encoding": "raw"}))
    x = signed_inputs(specs[0], rng, 8)
    log = run_images(NetworkTop(ex, maps=True), x, in_stall=lambda k: (k * 5 + seed) % 3 == 0,
                     out_stall=lambda k: (k + seed) % 4 == 0)
    assert log.classes == Reference(ex).run(x).classes.tolist()
