"""Lane group: XNOR / AND popcount through a pipelined adder tree, every register placement."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from fedxnor.contract.structure import tree_levels
from fedxnor.hw.lanes import LaneGroup, register_after


def test_register_placement():
    assert register_after(5, 5) == [0, 1, 1, 1, 1, 1]  # every level registered (the default)
    assert register_after(5, 0) == [0] * 6
    assert register_after(5, 2) == [0, 0, 0, 1, 0, 1]  # evenly, the last after the last level
    assert register_after(3, 5) == [0, 1, 1, 3]  # extra registers at the output
    assert register_after(0, 2) == [2]  # one lane: no tree
    assert tree_levels(1) == 0 and tree_levels(2) == 1 and tree_levels(32) == 5 and tree_levels(33) == 6


@pytest.mark.parametrize("lanes,mode,stages", [(1, "xnor", None), (7, "xnor", None), (32, "xnor", None),
                                               (13, "and", 2), (16, "pop", 0), (25, "xnor", 9), (3, "and", None)])
def test_lane_group_counts(lanes, mode, stages):
    rng = np.random.default_rng(lanes * 31 + (stages or 0))
    dut = LaneGroup(lanes, mode=mode, stages=stages)
    n = 40
    a = [int(v) for v in rng.integers(0, 1 << lanes, n, dtype=np.uint64)]
    w = [int(v) for v in rng.integers(0, 1 << lanes, n, dtype=np.uint64)]
    a[0], w[0] = (1 << lanes) - 1, (1 << lanes) - 1  # all lanes count
    a[1], w[1] = 0, (1 << lanes) - 1  # none (XNOR of input pad 0 with weight pad 1 = 0)
    mask = (1 << lanes) - 1
    want = {"xnor": [(~(x ^ y) & mask).bit_count() for x, y in zip(a, w)],
            "and": [(x & y).bit_count() for x, y in zip(a, w)],
            "pop": [x.bit_count() for x in a]}[mode]
    got = []

    async def bench(ctx):
        for i in range(n + dut.latency):
            if i < n:
                ctx.set(dut.a, a[i])
                ctx.set(dut.w, w[i])
            if i >= dut.latency:
                got.append(ctx.get(dut.count))
            await ctx.tick()

    top = Module()  # a sync domain even when the tree has no register
    top.submodules.dut = dut
    tick = Signal()
    top.d.sync += tick.eq(~tick)
    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == want
    assert dut.latency == (tree_levels(lanes) if stages is None else stages)
