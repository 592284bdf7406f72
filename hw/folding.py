"""Transitional names for the planner, which now lives in hw/plan/ and fedxnor.contract.

Removed once every caller imports from there (issue 19); new code must not import this module.
"""

from __future__ import annotations

from fedxnor.contract.cost import LC_FIT, MODELS, logic_cells, rom_tiles  # noqa: F401
from fedxnor.contract.dense import Dense as LayerShape  # noqa: F401
from fedxnor.contract.devices import DEVICES, Device, get_device  # noqa: F401
from fedxnor.hw.plan.budget import DEFAULT_LC_SHARE  # noqa: F401
from fedxnor.hw.plan.fit import check_fit  # noqa: F401
from fedxnor.hw.plan.plan import plan_for, weight_bit_ops  # noqa: F401
from fedxnor.hw.plan.plan import specs_of as shapes_of  # noqa: F401
from fedxnor.hw.plan.refold import refold_export  # noqa: F401
from fedxnor.hw.plan.solver import solve, solve_foldings  # noqa: F401

BOARDS: dict[str, str] = {"icebreaker": "up5k", "ice40-hx8k": "hx8k", "ulx3s-85f": "ecp5-85"}


def spram_cells_of(shape, fold) -> int:
    return shape.spram_cells(fold)


def foldings_for_board(export, board: str):
    """solve_foldings for the FPGA of a named board (layer 0 in SPRAM on the UP5K when block RAM is too small)."""
    from fedxnor.errors import FedxnorError

    if board not in BOARDS:
        raise FedxnorError(f"unknown board {board!r}: choose one of {', '.join(BOARDS)}")
    return solve_foldings(export, BOARDS[board], spram=True)
