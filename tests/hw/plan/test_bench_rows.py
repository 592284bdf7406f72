"""The planner gives the committed benchmark rows' foldings, cycles and modelled resources exactly: a
change to the contract's cycle or cost model, or to the solver, that would move a published figure fails here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedxnor.boards.platforms import get_board
from fedxnor.contract import cycles
from fedxnor.contract.dense import Dense
from fedxnor.contract.folding import Folding
from fedxnor.hw.plan.plan import plan_for
from fedxnor.hw.plan.solver import solve_foldings

RESULTS = Path(__file__).resolve().parents[3] / "bench" / "results"
SOLVED = {"icebreaker", "ice40-hx8k"}  # rows whose folding is the solver's (bench_boards.FOLDINGS fixes the others)


def specs(layers: list[str]) -> list[Dense]:
    """8-bit pixels into the first layer, as every benchmarked model takes them."""
    sizes = [tuple(map(int, la.split("->"))) for la in layers]
    return [Dense(n, m, 8 if i == 0 else 1, "unsigned" if i == 0 else "bipolar", i == len(sizes) - 1, f"fc{i}")
            for i, (n, m) in enumerate(sizes)]


BOARD_ROWS = json.loads((RESULTS / "boards.json").read_text())["rows"]


@pytest.mark.parametrize("row", BOARD_ROWS, ids=[r["board"] for r in BOARD_ROWS])
def test_board_rows_cycles_and_solver_foldings(row):
    board = get_board(row["board"].removesuffix("-spram"))
    net = specs(row["layers"])
    folds = [Folding(*f) for f in row["foldings"]]
    assert cycles.cycles_per_inference(cycles.placed(net, folds), read_regs=board.resources.read_regs) == \
        row["cycles_per_inference"]
    if row["board"] in SOLVED:
        assert solve_foldings(net, board.plan_device, spram=True) == folds


def test_up5k_foldings_table_model_figures():
    hw = json.loads((RESULTS / "hw_up5k.json").read_text())
    net = specs(["784->64", "64->64", "64->10"])
    assert solve_foldings(net, "up5k") == [Folding(*f) for f in hw["foldings"]]
    for row in hw["foldings_table"]:
        plan = plan_for(net, [Folding(*f) for f in row["foldings"]], "up5k", max_lut_share=1.0)
        got = {"cycles_per_inference": plan.cycles_per_inference, "latency_cycles": plan.latency_cycles,
               "luts_model": round(plan.luts), "ffs_model": round(plan.ffs), "bram_model": plan.bram,
               "layer_tokens": [c.cycles for c in plan.layer_costs]}
        assert got == {k: row[k] for k in got}, row["name"]
