"""Max-pool against a direct max over ±1 values; the generic IntLayer and the chain of kinds (NHWC sizes)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedxnor.contract.conv import Conv
from fedxnor.contract.dense import Dense
from fedxnor.contract.network import IntLayer, IntNetwork, check_chain, check_hardware, hardware_error
from fedxnor.contract.pool import MaxPool
from fedxnor.errors import FedxnorError

POOL_EXAMPLES = 40


def textbook_maxpool(spec: MaxPool, x: np.ndarray) -> np.ndarray:
    """Max over each window of the ±1 values, mapped back to bits, NHWC."""
    v = 2 * x.reshape(len(x), spec.in_h, spec.in_w, spec.c).astype(np.int64) - 1
    out = np.empty((len(x), spec.out_h, spec.out_w, spec.c), np.int64)
    for oy in range(spec.out_h):
        for ox in range(spec.out_w):
            win = v[:, oy * spec.stride:oy * spec.stride + spec.k, ox * spec.stride:ox * spec.stride + spec.k, :]
            out[:, oy, ox, :] = win.max(axis=(1, 2))
    return ((out + 1) // 2).reshape(len(x), -1)


@settings(max_examples=POOL_EXAMPLES, deadline=None)
@given(k=st.integers(1, 3), stride=st.integers(1, 3), extra_h=st.integers(0, 6), extra_w=st.integers(0, 6),
       c=st.integers(1, 10), density=st.sampled_from([0.05, 0.5, 0.95]), seed=st.integers(0, 2**16))
def test_maxpool_is_the_max_of_the_pm1_window(k, stride, extra_h, extra_w, c, density, seed):
    spec = MaxPool(k + extra_h, k + extra_w, c, k, stride)
    x = (np.random.default_rng(seed).random((3, spec.in_size)) < density).astype(np.uint8)
    out = spec.forward(None, None, x)
    assert np.array_equal(out, textbook_maxpool(spec, x))
    assert np.array_equal(spec.literal_forward(x[0]), out[0])
    assert out.shape == (3, spec.out_size) and spec.out_h == (spec.in_h - k) // stride + 1


def small_conv_net(rng) -> IntNetwork:
    """8-bit 6x6x3 image -> conv 3x3 pad 1 (4 ch) -> maxpool 2 -> conv 2x2 stride 2 bipolar pad 1 (5 ch) -> dense 3."""
    c1 = Conv(6, 6, 3, 4, 3, 1, 1, 8, "unsigned")
    p1 = MaxPool(6, 6, 4, 2, 2)
    c2 = Conv(3, 3, 4, 5, 2, 2, 1)
    d = Dense(c2.out_size, 3, is_output=True)
    layers = []
    for spec in (c1, p1, c2, d):
        if not spec.has_weights:
            layers.append(IntLayer(None, None, spec=spec))
            continue
        w = rng.integers(0, 2, (spec.fan_out, spec.fan_in), dtype=np.uint8)
        lo, hi = spec.acc_range
        t = None if spec.is_output else rng.integers(lo, hi + 2, spec.fan_out)
        layers.append(IntLayer(w, t, inverted=None if t is None else rng.random(spec.fan_out) < 0.5, spec=spec))
    return IntNetwork(tuple(layers))


def test_network_runs_every_hidden_map_nhwc():
    net = small_conv_net(np.random.default_rng(1))
    x = np.random.default_rng(2).integers(0, 256, (4, 6 * 6 * 3))
    acts, scores, classes = net.run(x)
    assert [a.shape for a in acts] == [(4, 144), (4, 36), (4, 5 * 2 * 2)]
    l0, l1, l2, l3 = net.layers
    assert np.array_equal(acts[0], l0.forward(x))
    assert np.array_equal(acts[1], textbook_maxpool(l1.spec, acts[0]))
    assert np.array_equal(acts[2], l2.forward(acts[1]))
    assert np.array_equal(scores, l3.spec.accumulate(l3.weights, acts[2]))
    assert l0.input_bits == 8 and l0.encoding == "unsigned" and l1.weights is None and l1.in_size == 144


@pytest.mark.parametrize("specs,match", [
    ([Conv(4, 4, 1, 2, 3), Dense(7, 2, is_output=True)], r"layer 1 \(dense\) takes 7 inputs \(7\) but layer 0 \(conv\) "
                                                         r"gives 8 \(2x2x2\)"),
    ([Conv(4, 4, 1, 2, 3), MaxPool(2, 2, 2, 2, 2)], "the output layer must be dense"),
    ([Dense(4, 16), Conv(4, 4, 1, 2, 3, input_bits=8, encoding="unsigned"), Dense(8, 2, is_output=True)],
     "only the first layer may take unsigned"),
    ([Dense(4, 5), Dense(6, 2, is_output=True)], "layer 1 has fan-in 6 but layer 0 has fan-out 5"),
    ([], "at least one layer"),
])
def test_chain_errors(specs, match):
    err = check_chain(specs)
    assert err is not None and "\n" not in err
    assert re.search(match, err), err


def test_dense_after_a_map_takes_its_nhwc_flatten():
    assert check_chain([Conv(4, 4, 1, 2, 3), MaxPool(2, 2, 2, 2, 1), Dense(2, 3, is_output=True)]) is None
    assert check_chain([Dense(4, 16), Conv(4, 4, 1, 2, 3), Dense(8, 2, is_output=True)]) is None


def test_hardware_runs_map_layers_first_and_refuses_them_after_a_dense_one():
    assert hardware_error([Dense(4, 5), Dense(5, 2, is_output=True)]) is None
    assert hardware_error([Conv(4, 4, 1, 2, 3), MaxPool(2, 2, 2, 2, 1), Dense(2, 2, is_output=True)]) is None
    msg = hardware_error([Dense(4, 32), MaxPool(4, 4, 2, 2, 2), Dense(8, 2, is_output=True)])
    assert msg.startswith("layer 1 is a maxpool layer after a dense one") and "\n" not in msg
    with pytest.raises(FedxnorError, match="first layer is a max-pool"):
        check_hardware([MaxPool(4, 4, 2, 2, 2), Dense(8, 2, is_output=True)])


def test_a_kind_the_accelerator_does_not_build_is_refused_in_one_line():
    class Unbuilt(Dense):
        in_hardware = False

    msg = hardware_error([Unbuilt(4, 5), Dense(5, 2, is_output=True)])
    assert msg.startswith("layer 0 is a dense layer, which the accelerator does not build") and "\n" not in msg
