"""contract/mapcycles.py without simulation (tests/hw/test_conv_cycles.py compares it with the gateware): its
dense chain reproduces contract/cycles.py's closed form exactly, layer_timing prices conv and max-pool layers,
the steady interval is read off a periodic tail, read registers are refused, a CNV-sized network is quick."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedxnor.contract import cycles, mapcycles
from fedxnor.contract.conv import Conv
from fedxnor.contract.dense import Dense
from fedxnor.contract.folding import Folding
from fedxnor.contract.pool import MaxPool
from fedxnor.contract.structure import DRAIN_FIXED, WINDOW_LAG, tree_levels
from fedxnor.errors import FedxnorError


@st.composite
def dense_networks(draw):
    n = draw(st.integers(1, 4))
    sizes = [draw(st.integers(1, 40)) for _ in range(n + 1)]
    bits = draw(st.sampled_from([1, 2, 8]))
    specs = [Dense(sizes[0], sizes[1], input_bits=bits, encoding="unsigned" if bits > 1 else "bipolar", is_output=n == 1)]
    specs += [Dense(sizes[i], sizes[i + 1], is_output=i == n - 1) for i in range(1, n)]
    folds = [draw(st.sampled_from(s.candidate_foldings())) for s in specs]
    return cycles.placed(specs, folds), draw(st.sampled_from([None, 0, 1, 3]))


@settings(max_examples=150, deadline=None)
@given(dense_networks())
def test_event_model_equals_the_closed_form_on_dense_networks(case):
    """The per-image recurrence the conv model ends in is the dense pipeline's: same latency, same II (pair terms
    and the result FIFO included) as cycles.py's formula, which tests/hw checks against simulation."""
    layers, stages = case
    r = mapcycles.result_cycles(layers, 12, stages)
    assert r[0] == cycles.latency_cycles(layers, stages)
    assert mapcycles.steady_interval(r) == cycles.initiation_interval(layers, stages)


@pytest.mark.parametrize("times, ii", [
    ([0, 5, 10, 15, 20], 5.0),
    ([0, 3, 9, 12, 18, 21, 27, 30], 4.5),  # alternating 3, 6
    ([0, 100, 101, 104, 107, 110], 3.0),  # a transient first
    ([0, 1, 3, 7], None),  # no period yet
])
def test_steady_interval_reads_the_periodic_tail(times, ii):
    assert mapcycles.steady_interval(times) == ii


@settings(max_examples=60, deadline=None)
@given(st.integers(3, 9), st.integers(3, 9), st.integers(1, 3), st.integers(1, 3), st.integers(1, 2), st.integers(0, 1),
       st.data())
def test_conv_and_pool_layer_timing_bounds(h, w, c, k, stride, pad, data):
    """own is at least the slower of the taps (k·k a window; the column generator: a position of the padded map) and
    the tokens (T_w a window) over the image, and the unit alone settles to it; a conv's drain is one window's tokens
    through the array and collector."""
    pad = min(pad, k - 1)
    if h + 2 * pad < k or w + 2 * pad < k:
        return
    conv = Conv(h, w, c, data.draw(st.sampled_from([1, 2, 4])), k, stride, pad)
    fold = data.draw(st.sampled_from(conv.candidate_foldings()))
    drain, own = cycles.layer_timing(conv, fold)
    win = conv.out_h * conv.out_w
    tw = conv.tokens(fold) // win
    if conv.column_window(fold):  # the column generator: a padded map position a cycle at most
        assert own >= max((h + 2 * pad) * (w + 2 * pad), -(-win // conv.window_parallelism(fold)) * tw)
    else:  # the serial one: k·k taps a window
        assert own >= win * max(k * k, tw) and own >= conv.tokens(fold)
    assert drain == tw - 1 + tree_levels(fold.simd) + fold.pe + DRAIN_FIXED
    last = mapcycles.unit_output_cycles(conv, fold, 6)
    assert -(-(last[-1] - last[-3]) // 2) == own  # period 1 or 2 (collector pairs): the mean, rounded up
    if h >= k and w >= k:
        pool = MaxPool(h, w, c, k, stride)
        drain, own = cycles.layer_timing(pool, None)
        assert drain == mapcycles.OUT_REG and own >= pool.out_h * pool.out_w * k * k


def test_conv_network_cycles_dispatch_and_refuse_read_regs():
    specs = [Conv(6, 6, 1, 4, 3, 1, 1, 8, "unsigned"), MaxPool(6, 6, 4, 2, 2), Dense(36, 3, is_output=True)]
    layers = cycles.placed(specs, [Folding(2, 9), None, Folding(1, 12)])
    assert cycles.has_maps(layers)
    r = mapcycles.result_cycles(layers, 8)
    assert cycles.latency_cycles(layers) == r[0]
    assert cycles.cycles_per_inference(layers) == -(-mapcycles.steady_interval(r) // 1)
    for call in (lambda: cycles.cycles_per_inference(layers, read_regs=True),
                 lambda: cycles.latency_cycles(layers, read_regs=True),
                 lambda: cycles.layer_timing(specs[0], Folding(2, 9), read_regs=True)):
        with pytest.raises(FedxnorError, match="read registers"):
            call()


def test_cnv_sized_network_is_quick():
    """The Fashion-MNIST CNV shape (28x28, four 3x3 convs, two pools, two dense layers): II and latency in well under
    a second each, O(pixels) per image."""
    specs = [Conv(28, 28, 1, 32, 3, 1, 0, 8, "unsigned"), Conv(26, 26, 32, 32, 3), MaxPool(24, 24, 32, 2, 2),
             Conv(12, 12, 32, 64, 3), Conv(10, 10, 64, 64, 3), MaxPool(8, 8, 64, 2, 2), Dense(1024, 256),
             Dense(256, 10, is_output=True)]
    folds = [Folding(8, 9), Folding(16, 96), None, Folding(16, 96), Folding(16, 192), None, Folding(16, 64),
             Folding(10, 64)]
    layers = cycles.placed(specs, folds)
    t = time.perf_counter()
    ii = cycles.cycles_per_inference(layers)
    assert time.perf_counter() - t < 3.0
    assert ii >= specs[0].tokens(folds[0])
    assert cycles.latency_cycles(layers) >= ii


@settings(max_examples=60, deadline=None)
@given(st.integers(3, 9), st.integers(3, 9), st.integers(1, 3), st.integers(1, 3), st.integers(1, 2), st.integers(0, 1),
       st.sampled_from([1, 8]), st.data())
def test_column_collector_never_holds_the_sequencer(h, w, c, k, stride, pad, bits, data):
    """A column-built conv unit alone (output always ready): with Conv.collector_slots slots no window's first token
    waits for a slot, only for its hold bank to fill or its array to finish the window before. (Checked to fail with
    2 slots, or 4 fewer than the rule's, on a T_w = 1 layer.)"""
    pad = min(pad, k - 1)
    if h + 2 * pad < k or w + 2 * pad < k:
        return
    conv = Conv(h, w, c, data.draw(st.sampled_from([1, 2, 4, 8])), k, stride, pad, bits, "unsigned")
    fold = data.draw(st.sampled_from([f for f in conv.candidate_foldings() if conv.column_window(f)] or [None]))
    if fold is None:
        return
    inp, out = mapcycles.Stream(), mapcycles.Stream()
    unit = mapcycles.conv_unit(conv, fold, inp, out, 3)
    mapcycles.run_units([mapcycles.Source(inp, 3 * h * w), unit, mapcycles.Sink(out)])
    q, tw = unit.Q, unit.Tw
    assert len(out.hand) == 3 * conv.out_h * conv.out_w
    for n, t in enumerate(unit.start):
        assert t == max(unit.end[n] + 1 + WINDOW_LAG, unit.start[n - q] + tw if n >= q else 0)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.sampled_from([None, 0, 2]), st.integers(1, 8))
def test_a_conv_networks_dense_tail_counts_its_weight_registers(pe_exp, stages, images):
    """A conv network's fully connected layers register their weight words twice (hw/top.py weight_regs): each dense
    layer's drain is WEIGHT_REG_CYCLES longer than the same chain without them, so the first result comes that much
    later per dense layer; the dense-only closed form is unchanged (it has no such registers)."""
    from fedxnor.contract.densecycles import DenseChain, run_units
    from fedxnor.contract.structure import WEIGHT_REG_CYCLES

    pe = 1 << (pe_exp - 1)
    specs = [Conv(4, 4, 1, 2, 3, 1, 1), Dense(32, 8), Dense(8, 4, is_output=True)]
    layers = cycles.placed(specs, [Folding(2, 9), Folding(pe, 8), Folding(1, 4)])
    with_regs = mapcycles.result_cycles(layers, images, stages)

    chain = DenseChain(layers[1:], stages, images, weight_regs=True)
    plain = DenseChain(layers[1:], stages, images, weight_regs=False)
    assert [d - p for d, p in zip(chain.D, plain.D)] == [WEIGHT_REG_CYCLES] * 2
    assert chain.credit - plain.credit == WEIGHT_REG_CYCLES
    # the first image has nothing ahead of it: two dense layers, two registers each
    solo = mapcycles.result_cycles(layers, 1, stages)[0]
    plain.source = type("Src", (), {"full": [solo - sum(chain.T) + len(chain.T) - sum(chain.D)]})()
    run_units([plain])
    assert solo - plain.result[0] == 2 * WEIGHT_REG_CYCLES
    assert len(with_regs) == images and with_regs == sorted(with_regs)
