"""ROM image files and what the export writes into them: the documented word layout, two's complement
thresholds, padding that never counts, the literal walk of the files (packing itself: tests/contract/test_dense.py)."""

from __future__ import annotations

import numpy as np
from fxnets import random_network
from hypothesis import given, settings
from hypothesis import strategies as st

from fedxnor.contract.bits import to_signed
from fedxnor.contract.dense import Dense
from fedxnor.export import images
from fedxnor.export.manifest import Folding, load_export, write_export
from fedxnor.export.reference import Reference, literal_accumulate, literal_thresholds


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def test_word_layout_is_documented_one():
    # 4 neurons, 5 inputs, P=2, L=2: neuron m -> PE m%2, address (m//2)*3 + c, input c*2+j in bit j.
    w = np.array([[1, 0, 0, 1, 1], [0, 1, 1, 0, 0], [1, 1, 0, 0, 0], [0, 0, 1, 1, 1]], np.uint8)
    pe0, pe1 = Dense(5, 4).pack_weights(w, Folding(2, 2))
    assert pe0 == [0b01, 0b10, 0b11, 0b11, 0b00, 0b10]  # neuron 0 then neuron 2; last word padded with a 1 in bit 1
    assert pe1 == [0b10, 0b01, 0b10, 0b00, 0b11, 0b11]
    assert images.format_hex([0b11], 2) == "3\n"
    assert images.format_hex([5], 9) == "005\n"


def test_threshold_twos_complement():
    spec = Dense(6, 4)  # acc in [0, 6], thresholds in [0, 7]: 4-bit two's complement
    assert spec.threshold_width == 4
    assert spec.pack_thresholds(np.array([-3, 4, 0, -1]), Folding(2, 6)) == [[13, 0], [4, 15]]
    assert to_signed(13, 4) == -3


def test_padding_never_counts(tmp_path):
    # Fan-in 5 with L=4: the padded lanes of the second word must add nothing, for
    # XNOR (bipolar, all-zero inputs would count XNOR(0,0)=1 without the padding rule)
    # and for AND (unsigned).
    rng = np.random.default_rng(7)
    net = random_network(rng, [5, 4, 3], input_bits=8)
    write_export(net, tmp_path / "e", [Folding(2, 4), Folding(1, 3)])
    exp = load_export(tmp_path / "e")
    x0 = rng.integers(0, 256, (1, 5))
    assert np.array_equal(literal_accumulate(exp, 0, x0[0]), net.layers[0].accumulate(x0)[0])
    h = net.layers[0].forward(x0)
    h[:] = 0  # all -1 activations: the worst case for XNOR padding
    assert np.array_equal(literal_accumulate(exp, 1, h[0]), net.layers[1].accumulate(h)[0])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), bits=st.sampled_from([1, 8]), data=st.data())
def test_literal_hardware_walk_equals_fast_reference(tmp_path_factory, seed, bits, data):
    rng = np.random.default_rng(seed)
    sizes = [data.draw(st.integers(1, 40)), data.draw(st.integers(1, 12)), data.draw(st.integers(1, 12)),
             data.draw(st.integers(1, 10))]
    net = random_network(rng, sizes, input_bits=bits)
    folds = [Folding(data.draw(st.sampled_from(divisors(sizes[i + 1]))), data.draw(st.integers(1, sizes[i])))
             for i in range(3)]
    d = tmp_path_factory.mktemp("lit") / "e"
    write_export(net, d, folds)
    exp = load_export(d)
    ref = Reference(exp)
    x = rng.integers(0, 1 << bits, (4, sizes[0]))
    res = ref.run(x)
    for k in range(len(x)):
        h = x[k]
        for li in range(3):
            acc = literal_accumulate(exp, li, h)
            assert np.array_equal(acc, net.layers[li].accumulate(h[None, :])[0])
            if li < 2:
                t = literal_thresholds(exp, li)
                assert np.array_equal(t, net.layers[li].thresholds)
                h = (acc >= t).astype(np.int64)
                assert np.array_equal(h, res.activations[li][k])
            else:
                assert np.array_equal(acc, res.scores[k])


def test_argmax_ties_go_to_lowest_index():
    from fedxnor.contract.network import argmax_lowest

    s = np.array([[3, 5, 5, 1], [2, 2, 2, 2], [0, -1, 0, 0]])
    assert argmax_lowest(s).tolist() == [1, 0, 0]
