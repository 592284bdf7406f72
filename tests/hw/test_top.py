"""The network top against the bit-exact reference: random networks and foldings, stalls, debug stream."""

from __future__ import annotations

import numpy as np
import pytest
from fxnets import random_network
from hw_helpers import decode_debug, run_images

from fedxnor.export.manifest import Folding, load_export, write_export
from fedxnor.export.reference import Reference
from fedxnor.hw.top import NetworkTop, generate_verilog


def make_export(tmp_path, rng, sizes, foldings, input_bits=8):
    net = random_network(rng, sizes, input_bits=input_bits)
    return load_export(write_export(net, tmp_path / "exp", foldings))


def check_against_reference(top, ex, x, log):
    ref = Reference(ex).run(x)
    assert log.classes == ref.classes.tolist()
    if top.ports.dbg_beats:
        acts = decode_debug(top, log.debug, len(x))
        for layer, a in enumerate(acts):
            assert np.array_equal(a, ref.activations[layer]), f"layer {layer}"


@pytest.mark.parametrize("sizes,folds,bits", [
    ([20, 8, 6, 5], [(2, 6), (3, 4), (1, 6)], 3),     # fan-ins not divisible by L
    ([13, 12, 4], [(4, 13), (2, 5)], 8),               # one word per row on layer 0
    ([9, 6, 3], [(6, 1), (3, 6)], 1),                  # one lane, one bit
    ([17, 10, 10, 7], [(5, 4), (10, 3), (7, 10)], 2),  # P = M on the hidden layer
])
def test_random_networks_match_reference(tmp_path, rng, sizes, folds, bits):
    ex = make_export(tmp_path, rng, sizes, [Folding(p, s) for p, s in folds], bits)
    x = rng.integers(0, 1 << bits, (8, sizes[0]))
    top = NetworkTop(ex, debug=True)
    log = run_images(top, x)
    check_against_reference(top, ex, x, log)
    assert log.busy_end == 0


def test_stalls_on_every_stream(tmp_path, rng):
    ex = make_export(tmp_path, rng, [23, 12, 8, 4], [Folding(3, 5), Folding(4, 12), Folding(2, 3)], 4)
    x = rng.integers(0, 16, (10, 23))
    top = NetworkTop(ex, debug=True)
    r = np.random.default_rng(7)
    stalls = {k: r.random(4000) < 0.4 for k in ("in", "out", "dbg")}
    log = run_images(top, x, in_stall=lambda c: stalls["in"][c % 4000], out_stall=lambda c: stalls["out"][c % 4000],
                     dbg_stall=lambda c: stalls["dbg"][c % 4000])
    check_against_reference(top, ex, x, log)


def test_long_result_stall_drops_nothing(tmp_path, rng):
    ex = make_export(tmp_path, rng, [16, 8, 3], [Folding(2, 8), Folding(1, 8)], 2)
    x = rng.integers(0, 4, (9, 16))
    top = NetworkTop(ex, debug=True)
    log = run_images(top, x, out_stall=lambda c: c < 600, dbg_stall=lambda c: 100 < c < 900)
    check_against_reference(top, ex, x, log)


def test_no_debug_port_and_verilog_ports(tmp_path, rng):
    ex = make_export(tmp_path, rng, [20, 8, 5], [Folding(2, 6), Folding(1, 8)], 8)
    top = NetworkTop(ex, debug=False)
    assert not hasattr(top, "debug") or "debug" not in top.signature.members
    x = rng.integers(0, 256, (5, 20))
    log = run_images(top, x)
    assert log.classes == Reference(ex).run(x).classes.tolist()
    text, ports = generate_verilog(ex, debug=False, name="acc_nodbg")
    assert "module acc_nodbg(" in text and "debug__valid" not in text
    assert ports.dbg_beats == 0 and ports.in_width == 6 * 8 and ports.in_beats == 4 and ports.class_width == 3
    text, ports = generate_verilog(ex, debug=True)
    for name in ("clk", "rst", "image__valid", "image__ready", "image__payload", "result__valid", "result__ready",
                 "result__payload", "debug__valid", "debug__ready", "debug__payload", "busy", "cycles"):
        assert f" {name};" in text or f" {name} ;" in text or f"] {name};" in text, name
    assert ports.dbg_fields == (((0, 0, 8, 0),),) and ports.hidden_sizes == (8,)


@pytest.mark.parametrize("stages", [0, 1, 4])
def test_adder_tree_stages_change_latency_not_results(tmp_path, rng, stages):
    from fedxnor.contract import cycles

    ex = make_export(tmp_path, rng, [26, 12, 6, 4], [Folding(4, 9), Folding(2, 12), Folding(2, 3)], 4)
    x = rng.integers(0, 16, (7, 26))
    top = NetworkTop(ex, debug=False, stages=stages)
    log = run_images(top, x)
    assert log.classes == Reference(ex).run(x).classes.tolist()
    rc = log.result_cycles
    assert rc[0] - log.first_offer == cycles.latency_cycles(ex.layers, stages)
    assert (rc[-1] - rc[2]) / (len(rc) - 3) == pytest.approx(cycles.initiation_interval(ex.layers, stages), rel=0.05)


def test_drain_bound_pipeline_matches_model(tmp_path, rng):
    """Deep arrays with short passes: the buffer-bank pair term (T_l + D_l + T_l+1) / 2 sets the II."""
    from fedxnor.contract import cycles

    ex = make_export(tmp_path, rng, [40, 16, 16, 10], [Folding(16, 40), Folding(16, 16), Folding(10, 16)], 8)
    tokens = [s.tokens for s in cycles.stage_timings(ex.layers)]
    ii = cycles.initiation_interval(ex.layers)
    assert ii > max(tokens)  # the pair term, not the slowest stage, binds here
    x = rng.integers(0, 256, (9, 40))
    log = run_images(NetworkTop(ex, debug=False), x)
    assert log.classes == Reference(ex).run(x).classes.tolist()
    rc = log.result_cycles
    assert (rc[-1] - rc[2]) / (len(rc) - 3) == pytest.approx(ii, rel=0.05)  # even count: the II alternates
    assert rc[0] - log.first_offer == cycles.latency_cycles(ex.layers)


@pytest.mark.parametrize("stages", [None, 1])
@pytest.mark.parametrize("sizes, folds", [
    ([26, 12, 6, 4], [(4, 9), (2, 12), (2, 3)]),  # activation reads of one and two words
    ([26, 12, 22, 4], [(4, 9), (11, 1), (2, 3)]),  # 12 words (two read groups, the second part-full), 8 padded
    ([60, 12, 4], [(4, 30), (2, 12)]),  # 30-bit LUT ROM words: two slices, each read from its own address copy
    ([26, 60, 10, 4], [(4, 9), (2, 30), (2, 5)]),  # a 30-lane activation read: two slices, two select copies
])
def test_read_regs_registers_keep_results_and_the_cycle_model_exact(tmp_path, rng, stages, sizes, folds):
    """read_regs (ECP5 builds): a register between each weight RAM and its lanes and a second stage in each
    layer's input read, the image buffer's write and each activation buffer's producer outputs registered, each
    sequencer's start registered, the class registered before the result FIFO; bit-exact, and the cycle model
    still predicts latency and II exactly (unsigned first layer: the popcount of x is delayed too)."""
    from fedxnor.contract import cycles

    ex = make_export(tmp_path, rng, sizes, [Folding(p, lanes) for p, lanes in folds], 4)
    x = rng.integers(0, 16, (7, sizes[0]))
    top = NetworkTop(ex, debug=True, stages=stages, read_regs=True)
    log = run_images(top, x)
    check_against_reference(top, ex, x, log)  # classes and every hidden activation bit
    rc = log.result_cycles
    assert rc[0] - log.first_offer == cycles.latency_cycles(ex.layers, stages, read_regs=True)
    # per layer: three read registers and a registered start; one per activation buffer's door register, one for
    # the image write, one for the class
    n = len(ex.layers)
    latency = cycles.latency_cycles(ex.layers, stages, read_regs=True)
    assert latency == cycles.latency_cycles(ex.layers, stages) + 4 * n + (n - 1) + 2
    assert (rc[-1] - rc[2]) / (len(rc) - 3) == pytest.approx(cycles.initiation_interval(ex.layers, stages, True), rel=0.05)
