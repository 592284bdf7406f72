"""A tiny CNV-shaped Brevitas 1W1A net (bnn_pynq's CNV layers: 8-bit signed Q1.7 input, 3x3 convs, BatchNorm2d, 1-bit
activations, 2x2 max-pool, NCHW flatten, dense, TensorNorm) on 10x10x3 images, trained a few steps here and exported by
Brevitas' own export_qonnx in both styles and after qonnx's cleanup: `fedxnor import` agrees with qonnx's executor on every
checked image, the RTL (NetworkTop with the conv front) gives the reference's classes, and graphs outside the supported
set are refused in one line naming the node."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_refused, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from idx_files import learnable_set

pytest.importorskip("brevitas")
pytest.importorskip("qonnx")
ROOT = Path(__file__).resolve().parents[2]
SHAPE = (10, 10, 3)
IMAGES = 200


def tutorial():
    spec = importlib.util.spec_from_file_location("brevitas_cnv", ROOT / "docs" / "tutorial" / "brevitas_cnv.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny(tut, data, pad=0, channels=(8, 8), train_images=None):
    import torch

    torch.set_num_threads(1)
    model = tut.SmallCNV(SHAPE, channels, hidden=(16,), pad=pad)
    model = tut.train(model, epochs=1, train_images=train_images, seed=3, data_dir=data, batch=50, log=lambda *_: None)
    with torch.no_grad():  # a negative and a zero BatchNorm2d scale: channels the importer must invert or make constant
        bn = model.conv_features[1]
        bn.weight[:2] = -bn.weight[:2].abs()
        bn.weight[2] = 0.0
    return model.eval()


@pytest.fixture(scope="module")
def cnv_files(tmp_path_factory):
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    d = tmp_path_factory.mktemp("cnv")
    data = learnable_set(d / "data", SHAPE, n_train=400, n_test=IMAGES, seed=4)
    tut = tutorial()
    model = tiny(tut, data)
    files = {style: tut.export(model, d / f"{style}.onnx", style) for style in ("dynamo", "torchscript")}
    clean = cleanup_model(ModelWrapper(onnx.load(str(files["dynamo"]))))
    clean.save(str(d / "cleaned.onnx"))
    files["cleaned"] = d / "cleaned.onnx"
    from fedxnor.datasets import load_split

    return files, data, tut.predict(model, load_split("test", data).images), tut


def do_import(model_file: Path, out: Path, data: Path, images: int = IMAGES):
    return run_cli(["import", model_file, "--out", out, "--images", images, "--data", data, "--json"])


@pytest.mark.parametrize("style", ["dynamo", "torchscript", "cleaned"])
def test_brevitas_cnv_imports_with_full_agreement(tmp_path, cnv_files, style):
    import onnx

    from fedxnor.datasets import load_split
    from fedxnor.export.manifest import load_export
    from fedxnor.export.reference import Reference

    files, data, torch_pred, _ = cnv_files
    ops = {n.op_type for n in onnx.load(str(files[style])).graph.node}
    assert {"Conv", "MaxPool", "Quant"} <= ops and ("Gemm" in ops) == (style != "torchscript")
    r = do_import(files[style], tmp_path / "out", data)
    assert r.code == 0, r.err
    s = json.loads(r.out)
    assert s["agreement"] == 1.0 and s["checked_images"] == IMAGES and s["exact_accumulators"]
    assert s["layers"] == ["conv3x3/1p0:10x10x3->8", "conv3x3/1p0:8x8x8->8", "pool2x2/2:6x6x8", "72x16", "16x10"]
    assert s["input"]["values"] == "8-bit signed -128..127" and s["input"]["step"] == 2.0 ** -7
    ex = load_export(tmp_path / "out")
    lut = ex.manifest["input"]["map"]
    # Brevitas' Q1.7 of 2p/255 - 1, rounded half to even, clipped: the map must be exactly that
    want = np.clip(np.round((2 * np.arange(256, dtype=np.float32) / np.float32(255) - 1) * 128), -128, 127)
    assert lut == want.astype(int).tolist() and lut[0] == -128 and lut[255] == 127
    assert ex.layers[0].encoding == "signed" and ex.layers[0].input_bits == 8
    assert ex.manifest["layers"][0]["inverted_rows"][:2] == [0, 1]
    ours = Reference(ex).classify(load_split("test", data).images).classes
    assert len(set(ours.tolist())) >= 3  # a network that says one class for everything would prove little
    assert (ours == torch_pred).mean() >= 0.99  # torch's and onnxruntime's BatchNorm may round a tie differently


def test_imported_cnv_runs_on_the_conv_hardware(tmp_path, cnv_files):
    """The imported signed-input CNV in gateware (NetworkTop with the conv front): every class equals the reference's."""
    sys.path.insert(0, str(ROOT / "tests" / "hw"))
    from hw_helpers import run_images

    from fedxnor.datasets import load_split
    from fedxnor.export.manifest import load_export
    from fedxnor.export.reference import Reference
    from fedxnor.hw.top import NetworkTop

    files, data, _, _ = cnv_files
    assert do_import(files["cleaned"], tmp_path / "out", data, 20).code == 0
    ex = load_export(tmp_path / "out")
    ref = Reference(ex)
    x = ref.prepare(load_split("test", data).images[:3])
    assert x.min() < 0  # signed inputs reach the hardware as two's complement beats
    log = run_images(NetworkTop(ex, maps=True), x)
    assert log.classes == ref.run(x).classes.tolist()


def test_first_layer_padding_is_accepted_and_binary_padding_refused(tmp_path, cnv_files):
    """Zero padding of the signed first layer is the contract's stored 0; a ±1 map has no zero to pad with."""
    _, data, _, tut = cnv_files
    one = tut.export(tiny(tut, data, pad=1, channels=(4,), train_images=100), tmp_path / "pad1.onnx")
    r = do_import(one, tmp_path / "o1", data, 50)
    assert r.code == 0, r.err
    assert json.loads(r.out)["layers"][0] == "conv3x3/1p1:10x10x3->4"
    two = tut.export(tiny(tut, data, pad=1, channels=(4, 4), train_images=100), tmp_path / "pad2.onnx")
    r = do_import(two, tmp_path / "o2", data, 50)
    assert_refused(r, nothing_in=tmp_path / "o2")
    assert "Conv" in r.err and "pads a ±1 map" in r.err


def edited(files, tmp_path, edit) -> Path:
    import onnx

    m = onnx.load(str(files["cleaned"]))
    edit(m.graph)
    path = tmp_path / "edited.onnx"
    onnx.save(m, str(path))
    return path


def node(graph, op, nth=0):
    return [n for n in graph.node if n.op_type == op][nth]


def set_attr(n, name, value):
    from onnx import helper

    for a in list(n.attribute):
        if a.name == name:
            n.attribute.remove(a)
    n.attribute.append(helper.make_attribute(name, value))


def pool_before_sign(g):
    """conv -> BN -> MaxPool -> BipolarQuant: pooling real values, not bits."""
    pool = node(g, "MaxPool")
    act = next(n for n in g.node if n.op_type == "BipolarQuant" and n.output[0] == pool.input[0])
    bn_out, act_out, pool_out = act.input[0], act.output[0], pool.output[0]
    pool.input[0], pool.output[0] = bn_out, act_out
    act.input[0], act.output[0] = act_out, pool_out
    nodes = list(g.node)
    i, j = nodes.index(act), nodes.index(pool)
    nodes[i], nodes[j] = copy.deepcopy(pool), copy.deepcopy(act)
    del g.node[:]
    g.node.extend(nodes)


def mul_after_flatten(g):
    """Reshape -> Mul by a constant -> Gemm: an op between the flatten and the dense layer."""
    from onnx import helper, numpy_helper

    flat = node(g, "Reshape")
    gemm = next(n for n in g.node if n.input and n.input[0] == flat.output[0])
    g.initializer.append(numpy_helper.from_array(np.array(2.0, np.float32), "two"))
    g.node.insert(list(g.node).index(gemm), helper.make_node("Mul", [flat.output[0], "two"], ["scaled"], name="scale_flat"))
    gemm.input[0] = "scaled"


@pytest.mark.parametrize("edit,expect", [
    (lambda g: set_attr(node(g, "Conv", 1), "dilations", [2, 2]), ["Conv", "dilations [2, 2]", "supported"]),
    (lambda g: set_attr(node(g, "MaxPool"), "ceil_mode", 1), ["MaxPool", "ceil_mode", "supported"]),
    (pool_before_sign, ["MaxPool", "before the 1-bit activation"]),
    (mul_after_flatten, ["'scale_flat'", "Mul", "follows the flatten"]),
    (lambda g: set_attr(node(g, "Quant"), "narrow", 1), None),  # narrow range: still an exact map (-127..127), accepted
])
def test_conv_graphs_outside_the_set_are_refused_naming_the_node(tmp_path, cnv_files, edit, expect):
    files, data, _, _ = cnv_files
    r = do_import(edited(files, tmp_path, edit), tmp_path / "out", data, 50)
    if expect is None:
        assert r.code == 0, r.err
        assert json.loads(r.out)["input"]["values"] == "8-bit signed -127..127"
        return
    assert_refused(r, nothing_in=tmp_path / "out")
    for word in expect:
        assert word in r.err, r.err


def test_hidden_multibit_quant_still_refused(tmp_path, cnv_files):
    """A multi-bit Quant is the input's only: the same node as a hidden activation is refused."""
    from onnx import helper

    def hidden_quant(g):
        act = [n for n in g.node if n.op_type == "BipolarQuant" and n.input[0].startswith("BatchNorm")][0]
        q = node(g, "Quant")
        act.op_type = "Quant"
        del act.input[1:]
        act.input.extend(list(q.input[1:]))
        for name, v in (("signed", 1), ("narrow", 0), ("rounding_mode", "ROUND")):
            act.attribute.append(helper.make_attribute(name, v))

    r = do_import(edited(cnv_files[0], tmp_path, hidden_quant), tmp_path / "out", cnv_files[1], 50)
    assert_refused(r, nothing_in=tmp_path / "out")
    assert "8-bit Quant is not supported here" in r.err, r.err


def test_external_weight_data_is_read_or_refused(tmp_path, cnv_files):
    """torch's dynamo exporter keeps larger models' initializers in MODEL.onnx.data: read beside the model; if the data
    file is missing, one line naming it."""
    import onnx

    files, data, _, _ = cnv_files
    m = onnx.load(str(files["cleaned"]))
    onnx.save(m, str(tmp_path / "ext.onnx"), save_as_external_data=True, location="ext.onnx.data", size_threshold=0)
    assert (tmp_path / "ext.onnx.data").stat().st_size > 0
    r = do_import(tmp_path / "ext.onnx", tmp_path / "out", data, 50)
    assert r.code == 0, r.err
    (tmp_path / "ext.onnx.data").unlink()
    r = do_import(tmp_path / "ext.onnx", tmp_path / "out2", data, 50)
    assert_refused(r, nothing_in=tmp_path / "out2")
    assert "external data" in r.err and ".onnx.data" in r.err


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.floats(0.0, 1.0), flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(1, 255)), max_size=3))
def test_fuzzed_cnv_files_import_exactly_or_are_refused_in_one_line(tmp_path_factory, cnv_files, cut, flips):
    """Truncated or corrupted bytes of a CNV file (Conv and MaxPool attributes, the input Quant, weights): either a clean
    refusal (exit 2, one line, nothing written) or an import that equals qonnx on every checked image."""
    files, data, _, _ = cnv_files
    good = Path(files["cleaned"]).read_bytes()
    d = tmp_path_factory.mktemp("fuzz")
    buf = bytearray(good if flips else good[: int(cut * (len(good) - 1))])
    for pos, x in flips:
        buf[int(pos * (len(buf) - 1))] ^= x
    (d / "m.onnx").write_bytes(bytes(buf))
    r = do_import(d / "m.onnx", d / "out", data, 30)
    if r.code == 0:
        assert json.loads(r.out)["agreement"] == 1.0
    else:
        assert_refused(r, code=r.code if r.code in (1, 2) else 2, nothing_in=d / "out")
