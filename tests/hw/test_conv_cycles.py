"""The conv cycle model (contract/mapcycles.py) against simulation, cycle for cycle: every image's result cycle of
NetworkTop(maps=True) for random conv / pool / dense networks and foldings, and every pixel a conv or max-pool
unit takes and sends when it runs alone; latency_cycles, cycles_per_inference and layer_timing's `own` from it.
(Checked to fail: with the collector's turn-around or the line buffer's image turn one cycle off, the model
misses the simulated cycles.)"""

from __future__ import annotations

import numpy as np
import pytest
from fxconvnets import conv_net_specs, random_conv_network
from gateware import simulate
from hw_helpers import run_images
from hypothesis import given, settings

from fedxnor.contract import cycles, mapcycles
from fedxnor.contract.conv import Conv
from fedxnor.contract.dense import Dense
from fedxnor.contract.folding import Folding
from fedxnor.contract.pool import MaxPool
from fedxnor.export.manifest import load_export, write_export
from fedxnor.export.reference import Reference
from fedxnor.hw.convlayer import ConvLayer
from fedxnor.hw.pool import MaxPoolUnit
from fedxnor.hw.top import NetworkTop


def conv_export(specs, folds, directory, rng):
    first = specs[0]
    net = random_conv_network(specs, rng)
    return load_export(write_export(net, directory, folds, input_spec={
        "shape": list(first.in_shape), "encoding": "pixels" if first.input_bits > 1 else "bits"}))


def simulated_results(ex, images: int, rng) -> list[int]:
    """Result cycles of `images` random images back to back (their classes checked against the reference: the
    line buffer's ring runs on across images)."""
    first = ex.layers[0].spec
    x = rng.integers(0, 1 << first.input_bits, (images, first.in_size))
    log = run_images(NetworkTop(ex, maps=True), x)
    assert log.classes == Reference(ex).run(x).classes.tolist()
    return [c - log.first_offer for c in log.result_cycles]


@settings(max_examples=8, deadline=None)
@given(conv_net_specs())
def test_every_result_cycle_equals_the_model(tmp_path_factory, case):
    """Random conv networks (8-bit or binary first layers, pad, stride, pools, dense tails), four images back to
    back: the model's result cycles are the simulated ones."""
    rng = np.random.default_rng(case["seed"])
    ex = conv_export(case["specs"], case["folds"], tmp_path_factory.mktemp("cnv") / "e", rng)
    sim = simulated_results(ex, 4, rng)
    assert sim == mapcycles.result_cycles(ex.layers, 4)
    assert cycles.latency_cycles(ex.layers) == sim[0]


@pytest.mark.parametrize("specs, folds", [
    # CNV-shaped: 8-bit pixels, pad 1, 2x2 pool, binary conv, two dense layers
    ([Conv(6, 6, 1, 4, 3, 1, 1, 8, "unsigned"), MaxPool(6, 6, 4, 2, 2), Conv(3, 3, 4, 6, 3, 1, 1), Dense(54, 8),
      Dense(8, 4, is_output=True)], [Folding(2, 5), None, Folding(3, 12), Folding(4, 9), Folding(1, 8)]),
    # deep array (P = M, one token a window): the column generator, its ring of 14 pixel slots
    ([Conv(5, 5, 2, 4, 3, 1, 0), Conv(3, 3, 4, 4, 1), Dense(36, 3, is_output=True)],
     [Folding(4, 18), Folding(4, 4), Folding(1, 36)]),
    # column builds end to end: an 8-bit layer on two arrays (Q = 2), a one-token-a-window layer on its pixel ring
    ([Conv(8, 8, 1, 4, 3, 1, 0, 8, "unsigned"), Conv(6, 6, 4, 8, 3), MaxPool(4, 4, 8, 2, 2), Dense(32, 6),
      Dense(6, 3, is_output=True)], [Folding(4, 9), Folding(8, 36), None, Folding(2, 8), Folding(1, 6)]),
    # the dense tail binds: the map buffer's banks wait for the first dense layer
    ([Conv(4, 4, 1, 2, 1), Dense(32, 16), Dense(16, 2, is_output=True)], [Folding(2, 1), Folding(1, 1), Folding(1, 1)]),
])
def test_steady_interval_and_latency_equal_the_model(tmp_path, specs, folds):
    rng = np.random.default_rng(3)
    ex = conv_export(specs, folds, tmp_path / "e", rng)
    sim = simulated_results(ex, 7, rng)
    assert sim == mapcycles.result_cycles(ex.layers, 7)
    ii = mapcycles.steady_interval(sim)
    assert ii is not None and cycles.cycles_per_inference(ex.layers) == -(-ii // 1)
    assert cycles.latency_cycles(ex.layers) == sim[0]


def unit_cycles(spec, fold, images: int, directory, rng):
    """Simulate a conv or max-pool unit alone (input always valid, output always ready): cycles of every pixel
    taken and every pixel sent."""
    if spec.kind == "conv":
        ex = conv_export([spec, Dense(spec.out_size, 2, is_output=True)], [fold, Folding(1, 1)], directory, rng)
        dut = ConvLayer(ex.layers[0], ex.weight_words[0], ex.threshold_words[0])
        out = dut.out
    else:
        dut = MaxPoolUnit(in_h=spec.in_h, in_w=spec.in_w, channels=spec.c, k=spec.k, stride=spec.stride)
        out = dut.pooled
    n_in, n_out = images * spec.in_h * spec.in_w, images * spec.out_h * spec.out_w
    took, sent = [], []

    async def bench(ctx):
        ctx.set(out.ready, 1)
        cyc = 0
        while len(sent) < n_out:
            ctx.set(dut.pixels.valid, len(took) < n_in)
            if ctx.get(out.valid):
                sent.append(cyc)
            if len(took) < n_in and ctx.get(dut.pixels.ready):
                took.append(cyc)
            await ctx.tick()
            cyc += 1
    simulate(dut, bench, period=1e-8)
    return took, sent


def model_unit(spec, fold, images: int):
    inp, out = mapcycles.Stream(), mapcycles.Stream()
    units = [mapcycles.Source(inp, images * spec.in_h * spec.in_w),
             mapcycles.conv_unit(spec, fold, inp, out, images) if spec.kind == "conv" else mapcycles.PoolUnit(spec, inp, out, images),
             mapcycles.Sink(out)]
    mapcycles.run_units(units)
    return inp.hand, out.hand


@pytest.mark.parametrize("spec, fold, column", [
    # the serial generator (Conv.column_window false: T_w >= max(k·k, D + 1))
    (Conv(6, 6, 2, 4, 3, 1, 0), Folding(1, 6), False),  # T_w = 12 > k·k: the sequencer binds
    (Conv(7, 5, 1, 4, 3, 2, 1), Folding(1, 3), False),  # stride 2, pad 1, odd sides
    (Conv(6, 6, 2, 4, 1, 1, 0), Folding(1, 1), False),  # 1x1
    (Conv(6, 6, 1, 4, 3, 1, 0, 8, "unsigned"), Folding(1, 9), False),  # 8-bit pixels: 8 planes a word
    (Conv(9, 9, 2, 4, 3, 3, 0), Folding(1, 6), False),  # stride = k
    # the column generator and the pixel ring (T_w < max(k·k, D + 1))
    (Conv(6, 6, 2, 4, 3, 1, 1), Folding(4, 18), True),  # one token a window: 14 slots, pad 1 (positions without a pixel)
    (Conv(7, 5, 1, 4, 3, 2, 1), Folding(4, 9), True),  # stride 2, odd sides
    (Conv(6, 6, 2, 4, 1, 1, 0), Folding(4, 2), True),  # 1x1: no column memory
    (Conv(6, 6, 1, 4, 3, 1, 0, 8, "unsigned"), Folding(4, 9), True),  # 8-bit pixels at P = M, L = K: two arrays
    (Conv(5, 5, 1, 2, 3, 1, 0, 8, "unsigned"), Folding(2, 9), True),  # two arrays, an odd number of windows
    (Conv(9, 9, 2, 4, 3, 3, 0), Folding(4, 18), True),  # stride = k
    (Conv(6, 6, 2, 4, 3, 1, 0), Folding(2, 6), True),  # T_w = 6 < 9: the sequencer binds, not the walker
    (MaxPool(6, 6, 3, 2, 2), None, None),
    (MaxPool(7, 7, 2, 3, 2), None, None),  # overlapping windows, a row left over
    (MaxPool(5, 6, 2, 2, 1), None, None),
])
def test_unit_alone_and_its_layer_timing(tmp_path, spec, fold, column):
    """Every pixel taken and sent by the unit at the model's cycle; layer_timing's own is the unit's per-image
    interval in simulation (four images: periodic from the second)."""
    if spec.kind == "conv":  # the generator the folding picks, as the case list says
        assert spec.column_window(fold) is column
    rng = np.random.default_rng(0)
    took, sent = unit_cycles(spec, fold, 4, tmp_path / "e", rng)
    m_took, m_sent = model_unit(spec, fold, 4)
    assert sent == m_sent
    assert took == m_took[:len(took)]  # the bench stops at the last pixel sent
    per = spec.out_h * spec.out_w
    last = [sent[(m + 1) * per - 1] for m in range(4)]
    _, own = cycles.layer_timing(spec, fold)
    assert own == last[3] - last[2] == last[2] - last[1]
