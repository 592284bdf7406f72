"""The boards' map to the solver's devices, and the foldings the flow picks for a board."""

from __future__ import annotations

import pytest

from fedxnor.boards.platforms import BOARDS, foldings_for_board
from fedxnor.contract.dense import Dense
from fedxnor.contract.devices import DEVICES
from fedxnor.contract.folding import Folding
from fedxnor.errors import FedxnorError
from fedxnor.hw.plan.fit import check_fit
from fedxnor.hw.plan.solver import solve, solve_foldings

MLP_SMALL = [Dense(784, 64, 8, "unsigned", name="fc0"), Dense(64, 64, name="fc1"), Dense(64, 10, is_output=True, name="fc2")]


def test_unknown_device_and_board():
    with pytest.raises(FedxnorError, match="unknown device 'xc7'"):
        solve_foldings(MLP_SMALL, "xc7")
    with pytest.raises(FedxnorError, match="unknown board"):
        foldings_for_board(MLP_SMALL, "arty")
    assert {b.plan_device for b in BOARDS.values()} <= set(DEVICES)
    assert foldings_for_board(MLP_SMALL, "icebreaker") == solve_foldings(MLP_SMALL, "up5k")

def test_board_foldings_fit_the_logic_cells_and_check_fit_agrees():
    for board in ("icebreaker", "ice40-hx8k"):
        dev = BOARDS[board].resources
        plan = solve(MLP_SMALL, dev)
        assert list(plan.foldings) == foldings_for_board(MLP_SMALL, board)
        assert plan.lcs <= 0.9 * dev.lcs
        check_fit(MLP_SMALL, dev.name, foldings=plan.foldings)
    # the flow's old pick for the iCEBreaker routed to 6531/5280 cells: the preflight now refuses it
    with pytest.raises(FedxnorError, match=r"needs about \d+ logic cells with the board top .* up5k has 5280"):
        check_fit(MLP_SMALL, "up5k", foldings=[Folding(8, 47), Folding(4, 1), Folding(1, 1)])
    with pytest.raises(FedxnorError, match=r"needs at least \d+ logic cells") as e:
        solve_foldings(MLP_SMALL, "up5k", max_lc_share=0.3)
    assert "\n" not in str(e.value)

