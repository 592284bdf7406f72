"""The fully connected layer kind: legality, packing and the reference, each against its definition."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedxnor.contract.dense import Dense
from fedxnor.contract.folding import Folding
from fedxnor.errors import FedxnorError


@st.composite
def folded_layers(draw):
    enc = draw(st.sampled_from(["bipolar", "unsigned"]))
    bits = 1 if enc == "bipolar" else draw(st.integers(1, 8))
    n, m = draw(st.integers(1, 70)), draw(st.integers(1, 12))
    spec = Dense(n, m, bits, enc, is_output=draw(st.booleans()))
    fold = draw(st.sampled_from(spec.candidate_foldings()))
    seed = draw(st.integers(0, 2**16))
    return spec, fold, np.random.default_rng(seed)


@settings(max_examples=60, deadline=None)
@given(folded_layers())
def test_literal_walk_of_the_packed_words_equals_the_fast_reference(case):
    """The hardware's walk (rows, words, lanes, bit planes, padding) gives exactly the matrix reference."""
    spec, fold, rng = case
    w = rng.integers(0, 2, (spec.fan_out, spec.fan_in), dtype=np.uint8)
    x = rng.integers(0, 1 << spec.input_bits, (3, spec.fan_in))
    words = spec.pack_weights(w, fold)
    fast = spec.accumulate(w, x)
    for i in range(len(x)):
        assert np.array_equal(spec.literal_accumulate(words, fold, x[i]), fast[i])
    lo, hi = spec.acc_range
    assert fast.min() >= lo and fast.max() <= hi


@settings(max_examples=60, deadline=None)
@given(folded_layers())
def test_packing_round_trips_and_pads_with_weight_one(case):
    spec, fold, rng = case
    w = rng.integers(0, 2, (spec.fan_out, spec.fan_in), dtype=np.uint8)
    words = spec.pack_weights(w, fold)
    assert len(words) == fold.pe and all(len(r) == spec.weight_depth(fold) for r in words)
    assert all(0 <= v < 1 << fold.simd for r in words for v in r)
    bits = spec.unpack_weights(words, fold)
    assert np.array_equal(bits[:, :spec.fan_in], w) and bits[:, spec.fan_in:].all()
    # neuron m in row m % P at local index m // P: word c of neuron m at (m // P) * W + c
    m = spec.fan_out - 1
    W = spec.words_per_row(fold)
    row = words[m % fold.pe][(m // fold.pe) * W:(m // fold.pe + 1) * W]
    assert sum(v << (c * fold.simd) for c, v in enumerate(row)) & ((1 << spec.fan_in) - 1) == \
        sum(int(b) << j for j, b in enumerate(w[m]))


def test_thresholds_pack_in_twos_complement_by_row():
    spec = Dense(4, 4, 3, "unsigned")
    lo, hi = spec.acc_range
    t = np.array([lo, -1, 0, hi + 1])
    rows = spec.pack_thresholds(t, Folding(2, 4))
    width = spec.threshold_width
    assert rows == [[lo & ((1 << width) - 1), 0], [(1 << width) - 1, hi + 1]]


def test_folding_legality_is_p_divides_m_and_l_within_n():
    spec = Dense(12, 6)
    legal = {f for f in (Folding(p, q) for p, q in itertools.product(range(0, 8), range(0, 14))) if spec.folding_error(f) is None}
    assert legal == {Folding(p, q) for p in (1, 2, 3, 6) for q in range(1, 13)} == set(spec.candidate_foldings())
    with pytest.raises(FedxnorError, match="layer 2: P=4 does not divide fan-out 6"):
        spec.check_folding(Folding(4, 1), "layer 2")


def test_tokens_count_rows_words_and_planes():
    assert Dense(784, 64, 8, "unsigned").tokens(Folding(8, 28)) == 8 * 28 * 8
    assert Dense(65, 10, is_output=True).tokens(Folding(5, 8)) == 2 * 9
    assert Dense(784, 64, 8, "unsigned").intake_tokens(Folding(8, 28)) == 28 * 8


@pytest.mark.parametrize("kwargs,match", [
    (dict(fan_in=0, fan_out=3), "fan-in and fan-out"),
    (dict(fan_in=3, fan_out=3, input_bits=2), "bipolar layer takes 1-bit"),
    (dict(fan_in=3, fan_out=3, input_bits=17, encoding="unsigned"), "input_bits must be in 1..16"),
    (dict(fan_in=3, fan_out=3, encoding="twos"), "unknown input encoding"),  # "signed" is known (issue 22)
])
def test_bad_shapes_are_one_line_errors(kwargs, match):
    with pytest.raises(FedxnorError, match=match):
        Dense(**kwargs)


def test_accumulators_past_float32s_exact_range_stay_exact():
    """K·max|x| >= 2^24: the product switches to float64 (float32 would round 16,829,999 to an even number)."""
    spec = Dense(66000, 2, 8, "unsigned")
    w = np.ones((2, 66000), np.uint8)
    w[1, :3] = 0
    x = np.full((1, 66000), 255)
    x[0, 0] = 254
    assert spec.accumulate(w, x).tolist() == [[66000 * 255 - 1, 66000 * 255 - 1 - 2 * (254 + 255 + 255)]]
    small = Dense(5, 1)  # bipolar: acc = popcount(XNOR)
    assert small.accumulate(np.array([[1, 0, 1, 1, 0]], np.uint8), np.array([[1, 1, 0, 1, 0]])).tolist() == [[3]]
