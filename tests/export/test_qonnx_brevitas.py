"""A Brevitas 1W1A MLP trained here (seconds), exported by Brevitas' own export_qonnx in both styles, raw and after qonnx's
cleanup, imported: agreement 1.0 with qonnx's executor, the same classes as torch eval, and 0 RTL mismatches."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli

pytest.importorskip("brevitas")
pytest.importorskip("qonnx")
ROOT = Path(__file__).resolve().parents[2]
IMAGES = 1000


def tutorial():
    """docs/tutorial/brevitas_mlp.py, the code the tutorial runs: the tests train and export with it."""
    spec = importlib.util.spec_from_file_location("brevitas_mlp", ROOT / "docs" / "tutorial" / "brevitas_mlp.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def brevitas_models(tmp_path_factory):
    import onnx
    import torch
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    from fedxnor.datasets import load_split

    tut = tutorial()
    torch.set_num_threads(2)
    model = tut.train(hidden=(32, 32), epochs=1, train_images=3000, seed=1, log=lambda *_: None)
    with torch.no_grad():  # a negative and a zero BatchNorm scale: rows the importer must invert or make constant
        model.features[1].weight[:4] = -model.features[1].weight[:4].abs()
        model.features[1].weight[4] = 0.0
    d = tmp_path_factory.mktemp("brevitas")
    files = {style: tut.export(model, d / f"{style}.onnx", style) for style in ("dynamo", "torchscript")}
    clean = cleanup_model(ModelWrapper(onnx.load(str(files["dynamo"]))))
    clean.save(str(d / "cleaned.onnx"))
    files["cleaned"] = d / "cleaned.onnx"
    test = load_split("test").take(IMAGES)
    return files, tut.predict(model, test.images)


def import_ok(model_file: Path, out: Path) -> dict:
    r = run_cli(["import", model_file, "--out", out, "--images", IMAGES, "--json"])
    assert r.code == 0, r.err
    return json.loads(r.out)


@pytest.mark.parametrize("style", ["dynamo", "torchscript", "cleaned"])
def test_brevitas_export_imports_with_full_agreement(tmp_path, brevitas_models, style):
    import onnx

    files, torch_pred = brevitas_models
    ops = {n.op_type for n in onnx.load(str(files[style])).graph.node}
    assert ("Gemm" in ops) == (style != "torchscript") and "BipolarQuant" in ops  # both export styles really are covered
    s = import_ok(files[style], tmp_path / "out")
    assert s["agreement"] == 1.0 and s["checked_images"] == IMAGES
    assert s["input"] == {"encoding": "pixels-binarized", "threshold": 128}  # 2 (p/255) - 1 >= 0  <=>  p >= 128
    assert s["exact_accumulators"] and s["layers"] == ["784x32", "32x32", "32x10"]
    from fedxnor.datasets import load_split
    from fedxnor.export.manifest import load_export
    from fedxnor.export.reference import Reference

    ref = Reference(load_export(tmp_path / "out"))
    assert ref.export.manifest["layers"][0]["inverted_rows"][:4] == [0, 1, 2, 3]
    ours = ref.classify(load_split("test").take(IMAGES).images).classes
    assert (ours == torch_pred).mean() >= 0.999  # torch's and onnxruntime's BatchNorm may round one tie differently


def test_imported_brevitas_model_has_no_rtl_mismatch(tmp_path, brevitas_models):
    from fedxnor.sim.verify import verify_export

    files, _ = brevitas_models
    import_ok(files["dynamo"], tmp_path / "out")
    r = verify_export(tmp_path / "out", sim="icarus", images=20, progress=False, build_root=tmp_path / "build")
    assert r["images"] == 20 and r["mismatches"] == 0


def test_round_trip_of_an_imported_brevitas_model_is_byte_identical(tmp_path, brevitas_models):
    files, _ = brevitas_models
    import_ok(files["torchscript"], tmp_path / "a")
    assert run_cli(["export-qonnx", tmp_path / "a", "--out", tmp_path / "a.onnx", "--images", 200]).code == 0
    import_ok(tmp_path / "a.onnx", tmp_path / "b")
    hexes = sorted(p.name for p in (tmp_path / "a").glob("*.hex"))
    assert hexes and all((tmp_path / "a" / h).read_bytes() == (tmp_path / "b" / h).read_bytes() for h in hexes)
    assert np.array_equal(np.fromfile(tmp_path / "a" / "torch_predictions.u8", np.uint8)[:200],
                          np.fromfile(tmp_path / "b" / "torch_predictions.u8", np.uint8)[:200])
