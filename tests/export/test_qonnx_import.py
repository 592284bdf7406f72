"""fedxnor import on hand-built bnn_pynq-style QONNX graphs (no torch): what it accepts folds exactly (negative and zero
BatchNorm scales, a negative TensorNorm scale), and everything outside the supported set is refused with exit 2 and one
line naming the node and its op, writing nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import assert_refused, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("qonnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

Q = "qonnx.custom_op.general"


def bnn_graph(rng, sizes=(784, 32, 16, 10), *, act="bipolar", extra=None, tn_scale=0.7, gammas=None, out_bn=False,
              weight_mags=(1.0,)):
    """A Brevitas TorchScript-style TFC: Reshape, 2x-1, BipolarQuant, (BipolarQuant W, Transpose, MatMul, BN, act)*, TensorNorm."""
    nodes, inits = [], {}

    def const(name, value):
        inits[name] = np.asarray(value, np.float32)
        return name

    nodes.append(helper.make_node("Reshape", ["x", const("shape", [1, -1])], ["flat"], name="reshape"))
    inits["shape"] = np.asarray([1, -1], np.int64)
    nodes.append(helper.make_node("Mul", ["flat", const("two", 2.0)], ["x2"], name="mul"))
    nodes.append(helper.make_node("Sub", ["x2", const("one", [1.0])], ["xpm"], name="sub"))
    nodes.append(helper.make_node("BipolarQuant", ["xpm", const("s1", 1.0)], ["a0"], domain=Q, name="inq"))
    a = "a0"
    for i, (n, m) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.choice(weight_mags, (m, n)) * rng.choice([-1.0, 1.0], (m, n))
        const(f"w{i}", w)
        nodes.append(helper.make_node("BipolarQuant", [f"w{i}", "s1"], [f"wq{i}"], domain=Q, name=f"wq{i}")
                     if len(weight_mags) == 1 else helper.make_node("Identity", [f"w{i}"], [f"wq{i}"], name=f"wid{i}"))
        nodes.append(helper.make_node("Transpose", [f"wq{i}"], [f"wt{i}"], perm=[1, 0], name=f"wt{i}"))
        nodes.append(helper.make_node("MatMul", [a, f"wt{i}"], [f"mm{i}"], name=f"fc{i}"))
        last = i == len(sizes) - 2
        if last and not out_bn:
            nodes.append(helper.make_node("Sub", [f"mm{i}", const("tn_mean", [0.25])], ["tn0"], name="tn_sub"))
            nodes.append(helper.make_node("Div", ["tn0", const("tn_std", [1.5])], ["tn1"], name="tn_div"))
            nodes.append(helper.make_node("Mul", ["tn1", const("tn_w", [tn_scale])], ["tn2"], name="tn_mul"))
            nodes.append(helper.make_node("Add", ["tn2", const("tn_b", [0.3])], ["y"], name="tn_add"))
            break
        g = rng.normal(size=m) if gammas is None or last else gammas(m)
        stats = [const(f"g{i}", g), const(f"b{i}", rng.normal(size=m)), const(f"mu{i}", rng.normal(0, 4, m)),
                 const(f"v{i}", rng.uniform(1, 9, m))]
        nodes.append(helper.make_node("BatchNormalization", [f"mm{i}", *stats], ["y" if last else f"bn{i}"], name=f"bn{i}",
                                      epsilon=1e-4))
        if last:
            break
        if extra == "Relu" and i == 0:
            nodes[-1].output[0] = "bn0pre"
            nodes.append(helper.make_node("Relu", ["bn0pre"], ["bn0"], name="relu0"))
        if act == "quant2" and i == 0:
            q = [f"bn{i}", "s1", const("zp", 0.0), const("bw2", 2.0)]
            nodes.append(helper.make_node("Quant", q, [f"a{i + 1}"], domain=Q, name="act0", signed=1, narrow=0, rounding_mode="ROUND"))
        else:
            nodes.append(helper.make_node("BipolarQuant", [f"bn{i}", "s1"], [f"a{i + 1}"], domain=Q, name=f"act{i}"))
        a = f"a{i + 1}"
    graph = helper.make_graph(nodes, "tfc", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 28, 28])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, sizes[-1]])],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(Q, 1)])


def save(tmp_path, model, name="m.onnx"):
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return path


def do_import(path, out, images=300):
    return run_cli(["import", path, "--out", out, "--images", images, "--json"])


def test_accepts_negative_and_zero_bn_scales_and_folds_exactly(tmp_path):
    rng = np.random.default_rng(0)

    def gammas(m):  # a third negative, a few exactly zero: inverted rows and constant neurons
        g = rng.normal(size=m)
        g[: m // 3] = -np.abs(g[: m // 3])
        g[-3:] = 0.0
        return g

    r = do_import(save(tmp_path, bnn_graph(rng, gammas=gammas)), tmp_path / "out")
    assert r.code == 0, r.err
    s = json.loads(r.out)
    assert s["agreement"] == 1.0 and s["input"] == {"encoding": "pixels-binarized", "threshold": 128}
    assert s["exact_accumulators"] and s["layers"] == ["784x32", "32x16", "16x10"]
    from fedxnor.export.manifest import load_export

    man = load_export(tmp_path / "out").manifest
    assert man["layers"][0]["inverted_rows"]  # the negative scales were folded by inverting rows
    assert man["source"]["format"] == "qonnx"


def test_negative_tensornorm_scale_inverts_the_output_order(tmp_path):
    r = do_import(save(tmp_path, bnn_graph(np.random.default_rng(1), tn_scale=-0.7)), tmp_path / "out")
    assert r.code == 0, r.err
    assert json.loads(r.out)["output_order_inverted"] is True


def test_import_then_reference_reports_agreement_from_the_files(tmp_path):
    assert do_import(save(tmp_path, bnn_graph(np.random.default_rng(2))), tmp_path / "out", 200).code == 0
    r = run_cli(["reference", tmp_path / "out", "--images", 200, "--json"])
    assert r.code == 0 and json.loads(r.out)["agreement"] == 1.0


@pytest.mark.parametrize("case,expect", [
    ("quant2", ["'act0'", "Quant", "2-bit"]),
    ("relu", ["'relu0'", "Relu", "supported"]),
    ("conv", ["'conv0'", "Conv", "single chain"]),  # a Conv beside the chain; conv refusals: test_qonnx_cnv.py
    ("missing_init", ["'bn0'", "BatchNormalization", "missing initializer"]),
    ("dynamo_missing_init", ["'wq1'", "BipolarQuant", "missing initializer"]),
    ("weights_2bit", ["'fc0'", "MatMul", "1-bit"]),
    ("per_class_output_bn", ["'bn2'", "BatchNormalization", "argmax"]),
])
def test_unsupported_graphs_are_refused_naming_the_node(tmp_path, case, expect):
    rng = np.random.default_rng(5)
    model = bnn_graph(rng, act="quant2" if case == "quant2" else "bipolar", extra="Relu" if case == "relu" else None,
                      out_bn=case == "per_class_output_bn", weight_mags=(1.0, 2.0) if case == "weights_2bit" else (1.0,))
    g = model.graph
    if case == "conv":
        g.node.insert(4, helper.make_node("Conv", ["a0", "w0"], ["c0"], name="conv0"))
    if case == "missing_init":
        g.initializer.remove(next(i for i in g.initializer if i.name == "mu0"))
    if case == "dynamo_missing_init":  # dynamo style: initializers also graph inputs; one input lost its initializer
        for init in g.initializer:
            g.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
        g.initializer.remove(next(i for i in g.initializer if i.name == "w1"))
    out = tmp_path / "out"
    r = do_import(save(tmp_path, model), out, 50)
    assert_refused(r, nothing_in=out)
    for word in expect:
        assert word in r.err, r.err


def test_truncated_and_missing_files_are_refused(tmp_path):
    data = bnn_graph(np.random.default_rng(6)).SerializeToString()
    (tmp_path / "t.onnx").write_bytes(data[: len(data) // 3])
    assert_refused(do_import(tmp_path / "t.onnx", tmp_path / "out"), nothing_in=tmp_path / "out")
    assert_refused(do_import(tmp_path / "none.onnx", tmp_path / "out"), nothing_in=tmp_path / "out")
    assert_refused(run_cli(["import", tmp_path / "t.onnx", "--out", tmp_path / "out", "--input-scale", "pixel/0"]),
                   nothing_in=tmp_path / "out")


GOOD = bnn_graph(np.random.default_rng(8), sizes=(784, 8, 10)).SerializeToString()


def test_a_name_that_is_not_utf8_is_refused_in_one_line(tmp_path):
    """ONNX is proto2: Python hands back a corrupt (non-UTF-8) name as bytes instead of refusing the file."""
    data = GOOD.replace(b"\x1a\x03inq", b"\x1a\x03\xe9nq", 1)  # node inq's name (field 3, length 3)
    assert data != GOOD
    (tmp_path / "m.onnx").write_bytes(data)
    r = do_import(tmp_path / "m.onnx", tmp_path / "out", 100)
    assert_refused(r, code=2, nothing_in=tmp_path / "out")
    assert "not UTF-8 text" in r.err


@settings(max_examples=30, deadline=None)
@given(cut=st.integers(0, len(GOOD) - 1), flips=st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(1, 255)),
                                                        max_size=3))
def test_fuzzed_files_import_exactly_or_are_refused_in_one_line(tmp_path_factory, cut, flips):
    """Truncated or corrupted bytes: either a clean refusal (exit 2, one line, nothing written), or an import whose
    network equals qonnx on every checked image (exit 0) — never a traceback, never a silently different network."""
    d = tmp_path_factory.mktemp("fuzz")
    data = bytearray(GOOD if flips else GOOD[:cut])
    for pos, x in flips:
        data[pos] ^= x
    (d / "m.onnx").write_bytes(bytes(data))
    r = do_import(d / "m.onnx", d / "out", 100)
    if r.code == 0:
        assert json.loads(r.out)["agreement"] == 1.0
    else:
        assert_refused(r, code=r.code if r.code in (1, 2) else 2, nothing_in=d / "out")
