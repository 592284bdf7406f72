"""The folding solver on conv networks (issue 21 item 5): conv + max-pool + dense chains solve, every folding is
legal (None for a max-pool), the plan fits its budget, its cycles are the event model's, and more budget never
gives a slower pipeline."""

from __future__ import annotations

import numpy as np
import pytest
from fxconvnets import conv_net_specs, random_conv_network
from hypothesis import given, settings
from hypothesis import strategies as st

from fedxnor.contract import cycles
from fedxnor.contract.conv import Conv
from fedxnor.contract.dense import Dense
from fedxnor.contract.devices import DEVICES, Device
from fedxnor.contract.folding import Folding
from fedxnor.contract.pool import MaxPool
from fedxnor.errors import FedxnorError
from fedxnor.export.manifest import load_export, write_export
from fedxnor.hw.plan.fit import check_fit
from fedxnor.hw.plan.plan import check_foldings, plan_for, specs_of
from fedxnor.hw.plan.solver import solve

CNV = [Conv(10, 10, 1, 8, 3, 1, 0, 8, "unsigned", "conv0"), Conv(8, 8, 8, 16, 3, 1, 1, name="conv1"),
       MaxPool(8, 8, 16, 2, 2, "pool1"), Dense(256, 16, name="fc0"), Dense(16, 10, is_output=True, name="fc1")]


def device(luts: int, bram: int) -> Device:
    base = DEVICES["up5k"]
    return Device(f"tiny-{luts}-{bram}", "ice40", luts=luts, ffs=luts, bram=bram, bram_bits=base.bram_bits,
                  bram_configs=base.bram_configs)


def assert_plan_ok(plan, specs, dev, share=1.0):
    check_foldings(specs, plan.foldings)  # legal (P, L) for every weighted layer, None for every max-pool
    assert all((f is None) == (not s.has_weights) for s, f in zip(specs, plan.foldings))
    assert plan.luts <= share * dev.luts + 1e-6 and plan.ffs <= share * dev.ffs + 1e-6 and plan.bram <= dev.bram
    assert plan.cycles_per_inference == cycles.cycles_per_inference(cycles.placed(specs, plan.foldings))
    assert plan.cycles_per_inference >= max(c.own for c in plan.layer_costs)  # no layer runs faster than alone


@pytest.mark.parametrize("name", ["up5k", "ecp5-85"])
def test_a_conv_network_solves_on_real_devices(name):
    dev = DEVICES[name]
    plan = solve(CNV, dev, maps=True)
    assert_plan_ok(plan, CNV, dev, 0.85)
    assert plan.foldings[2] is None
    row = plan.to_dict(CNV)["layers"][2]
    assert row["kind"] == "maxpool" and row["pe"] is None and row["in_shape"] == [8, 8, 16]


def solved(specs, dev):
    try:
        return solve(specs, dev, max_lut_share=1.0, maps=True)
    except FedxnorError as e:
        assert "\n" not in str(e) and "pick a bigger device" in str(e)
        return None


@settings(max_examples=40, deadline=None)
@given(case=conv_net_specs(), luts=st.integers(600, 4000), bram=st.integers(0, 8), extra=st.integers(1, 3000))
def test_solutions_fit_and_more_budget_is_never_slower(case, luts, bram, extra):
    specs = case["specs"]
    small, big = device(luts, bram), device(luts + extra, bram + 2)
    tight, loose = solved(specs, small), solved(specs, big)
    for plan, dev in ((tight, small), (loose, big)):
        if plan is not None:
            assert_plan_ok(plan, specs, dev)
    if tight is not None:
        assert loose is not None and loose.cycles_per_inference <= tight.cycles_per_inference


def test_plan_for_checks_pool_foldings_and_spram():
    folds = [Folding(4, 9), Folding(8, 72), None, Folding(2, 64), Folding(1, 16)]
    plan = plan_for(CNV, folds, "up5k", maps=True)
    assert plan.cycles_per_inference == cycles.cycles_per_inference(cycles.placed(CNV, folds))
    with pytest.raises(FedxnorError, match="maxpool layer: it has no weights to fold"):
        plan_for(CNV, folds[:2] + [Folding(1, 1)] + folds[3:], "up5k", maps=True)
    with pytest.raises(FedxnorError, match="needs a folding"):
        plan_for(CNV, [None] + folds[1:], "up5k", maps=True)
    with pytest.raises(FedxnorError, match="SPRAM"):
        plan_for(CNV, folds, "up5k", weight_store=(0,), maps=True)


def test_conv_exports_plan_with_maps_and_are_refused_without(tmp_path):
    net = random_conv_network(CNV, np.random.default_rng(3))
    folds = [Folding(4, 9), Folding(8, 72), None, Folding(2, 64), Folding(1, 16)]
    ex = load_export(write_export(net, tmp_path / "e", folds, input_spec={"shape": [10, 10, 1], "encoding": "pixels"}))
    assert [s.kind for s in specs_of(ex, maps=True)] == ["conv", "conv", "maxpool", "dense", "dense"]
    check_fit(ex, "ecp5-85", maps=True)  # its own foldings fit
    with pytest.raises(FedxnorError, match=r"fc0 .*needs|needs about \d+ LUTs"):
        check_fit(ex, Device("mini", "ice40", luts=500, ffs=500, bram=30, bram_bits=4096,
                             bram_configs=DEVICES["up5k"].bram_configs), maps=True)
    if Conv.in_hardware:  # issue 21 enabled: maps=True is no longer needed
        assert specs_of(ex) == specs_of(ex, maps=True)
    else:
        with pytest.raises(FedxnorError, match=r"not in the hardware yet \(issue 21\)"):
            specs_of(ex)



def test_a_conv_networks_dense_tail_reads_few_words_where_timing_wants_read_registers():
    """The one-stage activation read of a conv network's dense tail (no read registers with a conv front) is a
    2W:1 mux: on ECP5 the solver keeps W <= SINGLE_READ_MAX_WORDS even where fewer lanes would do; iCE40 (no read
    registers wanted) and a network without a conv front (two-stage reads) are not held."""
    from fedxnor.contract.structure import SINGLE_READ_MAX_WORDS

    tail = [*CNV[:3], Dense(256, 256, name="fc0"), Dense(256, 10, is_output=True, name="fc1")]
    slow = 4000  # a slow target: the fewest LUTs want the fewest lanes
    ecp5 = solve(tail, DEVICES["ecp5-85"], maps=True, target_cycles=slow)
    assert_plan_ok(ecp5, tail, DEVICES["ecp5-85"], 0.85)
    assert -(-256 // ecp5.foldings[4].simd) == SINGLE_READ_MAX_WORDS  # fc1 reads fc0's 256 bits: 16 lanes, no fewer
    up5k = solve(tail, DEVICES["up5k"], maps=True, target_cycles=slow)
    dense_only = solve(tail[3:], DEVICES["ecp5-85"], target_cycles=slow)
    assert up5k.foldings[4].simd < 16 and dense_only.foldings[1].simd < 16
