"""Until issue 21 the accelerator runs dense networks only: every hardware entry (verilog, fold, estimate, verify,
board build, and their library calls) refuses a network with a conv or max-pool layer in one line naming issue 21,
exit 2, nothing written, before any work; export-qonnx, which writes dense graphs only, refuses it too. The
reference still runs it."""

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

ISSUE_21 = "not in the hardware yet (issue 21)"


@pytest.fixture(params=["conv", "pool"])
def export_dir(tmp_path, request):
    if request.param == "conv":
        specs = [Conv(4, 4, 1, 2, 3, 1, 1, 8, "unsigned"), Dense(32, 3, is_output=True)]
    else:
        specs = [Dense(8, 32, 8, "unsigned"), MaxPool(4, 4, 2, 2, 2), Dense(8, 3, is_output=True)]
    net = random_conv_network(specs, np.random.default_rng(0))
    shape = [4, 4, 1] if request.param == "conv" else [8]
    return write_export(net, tmp_path / "exp", default_folds(specs), input_spec={"shape": shape, "encoding": "pixels"})


@pytest.mark.parametrize("argv", [
    ["verilog", "{exp}", "--out", "{out}/top.v"],
    ["fold", "{exp}", "--device", "up5k", "--out", "{out}/refolded"],
    ["estimate", "{exp}", "--device", "up5k"],
    ["verify", "{exp}", "--sim", "icarus", "--images", "2"],
    ["build", "{exp}", "--board", "icebreaker", "--out", "{out}/bits"],
    ["export-qonnx", "{exp}", "--out", "{out}/model.onnx"],
])
def test_hardware_commands_refuse_in_one_line(export_dir, tmp_path, argv):
    out = tmp_path / "out"
    out.mkdir()
    run = run_cli([a.format(exp=export_dir, out=out) for a in argv])
    assert_refused(run, code=2, nothing_in=out)
    assert (ISSUE_21 in run.err or argv[0] == "export-qonnx") and "layer" in run.err


def test_library_entries_refuse(export_dir):
    from fedxnor.hw.plan.plan import specs_of
    from fedxnor.hw.top import check_buildable
    from fedxnor.sim.runner import build_design

    exp = load_export(export_dir)
    for call in (lambda: specs_of(exp), lambda: specs_of([i.spec for i in exp.layers]), lambda: check_buildable(exp),
                 lambda: build_design(exp, "icarus")):
        with pytest.raises(FedxnorError, match=r"not in the hardware yet \(issue 21\)"):
            call()


def test_the_reference_runs_it(export_dir):
    from fedxnor.export.reference import Reference

    ref = Reference(export_dir)
    x = np.random.default_rng(1).integers(0, 256, (3, ref.export.layers[0].in_size))
    assert ref.classify(x).scores.shape == (3, 3)
