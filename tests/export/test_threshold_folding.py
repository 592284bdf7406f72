"""BatchNorm + sign folds into one integer compare per neuron, exactly.

The thresholds are compared against a plain float computation of the same layer:
for every possible integer pre-activation, the float32 BN formula's sign must
equal the integer compare (acc >= T), with negative scales inverting the row.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fedxnor.contract.network import IntLayer
from fedxnor.export.thresholds import fold_thresholds


def float_fires(x: np.ndarray, shift, scale, bias) -> np.ndarray:
    x = x.astype(np.float32)[:, None]
    return ((x - shift) * scale + bias) >= np.float32(0)


def check_layer(n: int, shift, scale, bias, encoding: str, bits: int) -> None:
    w = np.zeros((len(shift), n), np.uint8)
    layer = IntLayer(w, None, input_bits=bits, encoding=encoding)
    lo, hi = layer.acc_range
    acc_to_x = (2, -n) if encoding == "bipolar" else (1, 0)
    t, inv = fold_thresholds(shift, scale, bias, acc_to_x, (lo, hi))
    acc = np.arange(lo, hi + 1)
    x = acc_to_x[0] * acc + acc_to_x[1]
    want = float_fires(x, shift, scale, bias)  # (values, M)
    mirrored = lo + hi - acc  # accumulator of the inverted row
    got = np.where(inv[None, :], mirrored[:, None] >= t[None, :], acc[:, None] >= t[None, :])
    assert np.array_equal(got, want)
    assert ((t >= lo) & (t <= hi + 1)).all()


# Integer-valued statistics make exact ties (y == 0 at an integer pre-activation) common.
f32 = st.one_of(st.integers(-300, 300).map(float),
                st.floats(-300, 300, width=32, allow_nan=False, allow_infinity=False))


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 70), m=st.integers(1, 6), data=st.data(),
       encoding=st.sampled_from(["bipolar", "unsigned"]), bits=st.sampled_from([1, 2, 8]))
def test_fold_matches_float_bn(n, m, data, encoding, bits):
    if encoding == "bipolar":
        bits = 1
    shift = np.array(data.draw(st.lists(f32, min_size=m, max_size=m)), np.float32)
    scale = np.array(data.draw(st.lists(st.one_of(st.just(0.0), st.just(-0.0), st.floats(-4, 4, width=32)),
                                        min_size=m, max_size=m)), np.float32)
    bias = np.array(data.draw(st.lists(st.one_of(st.just(0.0), f32), min_size=m, max_size=m)), np.float32)
    check_layer(n, shift, scale, bias, encoding, bits)


def test_exact_ties_fire():
    # y == 0 exactly at integer x: sign(0) = +1 must fire (>=, not >).
    n = 10
    shift = np.array([4.0, 4.0], np.float32)  # x = 4 -> y = 0
    scale = np.array([1.0, -1.0], np.float32)
    bias = np.zeros(2, np.float32)
    t, inv = fold_thresholds(shift, scale, bias, (2, -n), (0, n))
    # x = 2p - 10 = 4 at p = 7: positive scale fires for p >= 7
    assert t[0] == 7 and not inv[0]
    # negative scale fires for x <= 4, i.e. p <= 7; inverted row p' = 10 - p >= 3
    assert inv[1] and t[1] == 3


def test_constant_neurons():
    shift = np.zeros(4, np.float32)
    scale = np.array([0.0, 0.0, 1e-30, -1e-30], np.float32)
    bias = np.array([1.0, -1.0, 5.0, -5.0], np.float32)
    t, inv = fold_thresholds(shift, scale, bias, (2, -8), (0, 8))
    assert t[0] == 0 and t[1] == 9  # always on / never on
    assert t[2] == 0 and t[3] == 9
    assert not inv[0] and not inv[1]


def test_nan_statistics_rejected():
    import pytest

    from fedxnor.errors import FedxnorError

    with pytest.raises(FedxnorError, match="NaN"):
        fold_thresholds(np.array([np.nan], np.float32), np.ones(1, np.float32), np.zeros(1, np.float32),
                        (1, 0), (-5, 5))
