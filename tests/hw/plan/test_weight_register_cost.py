"""A conv network's fully connected layers register their weight words twice before the lanes on every device
(hw/top.py weight_regs, SystolicArray in_reg): the cost the solver and plan_for use counts those flip-flops
(contract/cost.py weight_register_ffs), a dense-only network's does not."""

from __future__ import annotations

import pytest

from fedxnor.contract.conv import Conv
from fedxnor.contract.cost import MODELS, weight_register_ffs
from fedxnor.contract.dense import Dense
from fedxnor.contract.devices import get_device
from fedxnor.contract.folding import Folding
from fedxnor.contract.pool import MaxPool
from fedxnor.hw.plan.plan import after_map, as_built, plan_for
from fedxnor.hw.plan.solver import solve

CNV = [Conv(10, 10, 1, 8, 3, 1, 0, 8, "unsigned", "conv0"), Conv(8, 8, 8, 16, 3, 1, 1, name="conv1"),
       MaxPool(8, 8, 16, 2, 2, "pool1"), Dense(256, 16, name="fc0"), Dense(16, 10, is_output=True, name="fc1")]
FOLDS = [Folding(4, 9), Folding(8, 72), None, Folding(2, 64), Folding(1, 16)]


@pytest.mark.parametrize("name", ["up5k", "ecp5-85"])
def test_a_conv_networks_dense_layers_pay_their_weight_registers(name):
    dev = as_built(get_device(name), CNV)  # a conv network: no read registers of the device's own (ECP5)
    model = MODELS[dev.family]
    plan = plan_for(CNV, FOLDS, name, maps=True)
    for i in (3, 4):
        spec, fold = CNV[i], FOLDS[i]
        regs = weight_register_ffs(spec, fold, dev, model)
        # a, w and the RAM-side w of every row's lanes, the lagging chunk (hw/array.py, hw/lanes.py in_reg)
        assert regs >= 3 * fold.pe * fold.simd + fold.simd
        bare = spec.cost(fold, dev, model, first=False, after_map=after_map(CNV, i))
        assert plan.layer_costs[i].ffs == pytest.approx(bare.ffs + regs)
    for i in (0, 1, 2):  # the conv front's own registers are priced by its kinds, unchanged
        assert plan.layer_costs[i] == CNV[i].cost(FOLDS[i], dev, model, first=i == 0)


def test_a_dense_only_network_pays_none_and_the_solver_agrees_with_plan_for():
    mlp = [Dense(64, 32, input_bits=8, encoding="unsigned", name="fc0"), Dense(32, 10, is_output=True, name="fc1")]
    folds = [Folding(4, 16), Folding(1, 8)]
    dev = get_device("up5k")
    plan = plan_for(mlp, folds, "up5k")
    assert [c.ffs for c in plan.layer_costs] == [s.cost(f, dev, MODELS[dev.family], first=i == 0).ffs
                                           for i, (s, f) in enumerate(zip(mlp, folds))]
    solved = solve(CNV, "ecp5-85", maps=True)  # the solver's figures are plan_for's for its own foldings
    again = plan_for(CNV, solved.foldings, "ecp5-85", maps=True)
    assert solved.ffs == pytest.approx(again.ffs) and solved.layer_costs == again.layer_costs
