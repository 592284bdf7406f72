"""Conv networks on the hardware paths: `fedxnor verilog` writes the accelerator of a conv + pool + dense export,
and what the gateware cannot build yet is refused in one line, exit 2, nothing written, before any work: a
max-pool or conv after a dense layer (the conv front comes first), a conv build with read registers (the ECP5
boards) or run-time weights, a build asked for dense layers only. The reference runs them all."""

from __future__ import annotations

import numpy as np
import pytest
from cli_helpers import assert_refused, run_cli
from fxconvnets import default_folds, random_conv_network

from fedxnor.contract.conv import Conv
from fedxnor.contract.dense import Dense
from fedxnor.contract.pool import MaxPool
from fedxnor.errors import FedxnorError
from fedxnor.export.manifest import load_export, write_export


def export_of(tmp_path, specs, shape):
    net = random_conv_network(specs, np.random.default_rng(0))
    return write_export(net, tmp_path / "exp", default_folds(specs), input_spec={"shape": shape, "encoding": "pixels"})


@pytest.fixture
def conv_dir(tmp_path):
    return export_of(tmp_path, [Conv(4, 4, 1, 2, 3, 1, 1, 8, "unsigned"), MaxPool(4, 4, 2, 2, 2), Dense(8, 3, is_output=True)],
                     [4, 4, 1])


@pytest.fixture
def pool_after_dense_dir(tmp_path):
    return export_of(tmp_path, [Dense(8, 32, 8, "unsigned"), MaxPool(4, 4, 2, 2, 2), Dense(8, 3, is_output=True)], [8])


def test_verilog_writes_a_conv_network(conv_dir, tmp_path):
    run = run_cli(["verilog", str(conv_dir), "--out", str(tmp_path / "top.v")])
    assert run.code == 0, run.err
    text = (tmp_path / "top.v").read_text()
    assert "module fedxnor_top" in text and "debug__payload" in text


def test_a_map_layer_after_a_dense_one_is_refused(pool_after_dense_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    run = run_cli(["verilog", str(pool_after_dense_dir), "--out", str(out / "top.v")])
    assert_refused(run, code=2, nothing_in=out)
    assert "before the fully connected ones" in run.err


def test_builds_the_conv_front_cannot_take_yet_are_refused(conv_dir):
    from fedxnor.hw.top import NetworkTop, check_buildable

    exp = load_export(conv_dir)
    with pytest.raises(FedxnorError, match="fully connected layers only"):
        check_buildable(exp, maps=False)
    for kwargs in ({"read_regs": True}, {"weight_store": {0: "spram"}}):
        with pytest.raises(FedxnorError, match="conv network builds without read registers or run-time weights"):
            NetworkTop(exp, **kwargs)


def test_the_reference_runs_it(pool_after_dense_dir):
    from fedxnor.export.reference import Reference

    ref = Reference(pool_after_dense_dir)
    x = np.random.default_rng(1).integers(0, 256, (3, ref.export.layers[0].in_size))
    assert ref.classify(x).scores.shape == (3, 3)


def test_an_ecp5_board_builds_a_conv_network_without_read_registers(conv_dir):
    """The ECP5 boards put registers after every memory read of a dense network; the conv front has none yet, so a
    conv network's board core is built, priced and timed without them (hw/plan/plan.py as_built)."""
    from fedxnor.boards.build import board_core
    from fedxnor.boards.figures import performance
    from fedxnor.boards.platforms import get_board
    from fedxnor.contract.cycles import cycles_per_inference

    exp = load_export(conv_dir)
    board = get_board("ulx3s-85f")
    assert board.resources.read_regs
    core = board_core(exp, board, 25e6, 115200)
    assert core.accel.read_regs is False
    assert performance(exp, board, 25e6)["cycles_per_inference"] == cycles_per_inference(exp.layers)
