"""fedxnor -> QONNX -> fedxnor: qonnx executes the exported model exactly as the reference, and importing it back gives
byte-identical ROM images (thresholds and input mapping included), for every kind of first layer."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import run_cli
from fxnets import random_network
from hypothesis import given, settings
from hypothesis import strategies as st

from fedxnor.contract.network import IntLayer, IntNetwork
from fedxnor.export.manifest import load_export, write_export

pytest.importorskip("qonnx")
IMAGES = 300


def first_layer_kind(net: IntNetwork, kind: str, rng) -> tuple[IntNetwork, dict]:
    """Re-type layer 0 of a random network: 8-bit pixels, 0/1 binarized pixels (mlp-bin) or ±1 binarized pixels (bnn_pynq)."""
    if kind == "pixels":
        return net, {"shape": [28, 28], "encoding": "pixels"}
    l0 = net.layers[0]
    enc = "unsigned" if kind == "binarized-01" else "bipolar"
    lo, hi = IntLayer(l0.weights, None, input_bits=1, encoding=enc).acc_range
    t = np.clip(rng.integers(lo, hi + 2, l0.fan_out), lo, hi + 1)
    t[: len(t) // 2] = rng.integers((lo + hi) // 2 - 20, (lo + hi) // 2 + 20, len(t) // 2)  # most near the middle: they fire
    layer = IntLayer(l0.weights, t, input_bits=1, encoding=enc, inverted=l0.inverted)
    spec = {"shape": [784], "encoding": "pixels-binarized", "threshold": int(rng.integers(0, 257))}
    return IntNetwork((layer, *net.layers[1:])), spec


def hex_files(d):
    return {p.name: p.read_bytes() for p in sorted(d.glob("*.hex"))}


def round_trip(tmp_path, net: IntNetwork, spec: dict) -> tuple[dict, dict]:
    src, onnx_file, back = tmp_path / "src", tmp_path / "model.onnx", tmp_path / "back"
    write_export(net, src, input_spec=spec)
    r = run_cli(["export-qonnx", src, "--out", onnx_file, "--images", IMAGES, "--json"])
    assert r.code == 0, r.err
    assert json.loads(r.out)["agreement"] == 1.0
    r = run_cli(["import", onnx_file, "--out", back, "--images", IMAGES, "--json"])
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert summary["agreement"] == 1.0 and summary["exact_accumulators"]
    a, b = load_export(src), load_export(back)
    assert a.manifest["input"]["encoding"] == b.manifest["input"]["encoding"]
    assert a.manifest["input"].get("threshold") == b.manifest["input"].get("threshold")
    for la, lb in zip(a.manifest["layers"], b.manifest["layers"]):
        assert la.get("thresholds") == lb.get("thresholds")  # inverted_rows is provenance (the rows are already inverted)
    return hex_files(src), hex_files(back)


@pytest.mark.parametrize("kind", ["pixels", "binarized-01", "binarized-pm1"])
def test_round_trip_gives_byte_identical_roms(tmp_path, kind):
    rng = np.random.default_rng(7)
    net, spec = first_layer_kind(random_network(rng, [784, 24, 16, 10]), kind, rng)
    before, after = round_trip(tmp_path, net, spec)
    assert before and before == after


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), hidden=st.lists(st.integers(1, 40), min_size=0, max_size=2))
def test_round_trip_property_bipolar_input(tmp_path_factory, seed, hidden):
    """Random widths (no hidden layer included), thresholds anywhere in [lo, hi + 1], inverted rows, any input threshold."""
    rng = np.random.default_rng(seed)
    net, spec = first_layer_kind(random_network(rng, [784, *hidden, 10]), "binarized-pm1" if hidden else "pixels", rng)
    before, after = round_trip(tmp_path_factory.mktemp("rt"), net, spec)
    assert before == after


def test_exported_model_passes_qonnx_checks(tmp_path):
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper

    from fedxnor.export.qonnx_export import check_model

    rng = np.random.default_rng(3)
    net, spec = first_layer_kind(random_network(rng, [784, 16, 10]), "binarized-pm1", rng)
    write_export(net, tmp_path / "src", input_spec=spec)
    assert run_cli(["export-qonnx", tmp_path / "src", "--out", tmp_path / "m.onnx", "--images", 50]).code == 0
    model = ModelWrapper(onnx.load(str(tmp_path / "m.onnx")))
    onnx.checker.check_model(model.model)
    cleaned = check_model(model)
    ops = sorted({n.op_type for n in cleaned.graph.node})
    assert ops == ["BipolarQuant", "Flatten", "MatMul", "MultiThreshold"]
    assert model.get_metadata_prop("fedxnor.input") == "pixel/255"


def test_hybnn_latent_input_is_refused(tmp_path):
    from cli_helpers import assert_refused

    rng = np.random.default_rng(4)
    net = random_network(rng, [20, 8, 4], input_bits=1)
    net = IntNetwork((IntLayer(net.layers[0].weights, np.full(8, 10), encoding="bipolar"), net.layers[1]))
    write_export(net, tmp_path / "src", input_spec={"shape": [20], "encoding": "bits"})
    assert_refused(run_cli(["export-qonnx", tmp_path / "src", "--out", tmp_path / "m.onnx"]), nothing_in=tmp_path / "m.onnx")


BREVITAS_Q17 = [max(-128, min(127, int(np.round((2 * np.float32(p) / np.float32(255) - 1) * 128)))) for p in range(256)]


@pytest.mark.parametrize("first", ["signed-mapped", "pixels", "binarized-01"])
def test_conv_round_trip_gives_byte_identical_roms(tmp_path, first):
    """conv (signed 8-bit Q1.7 map, 8-bit pixels with pad 1, or 0/1 pixels) -> max-pool -> conv -> dense -> dense on 9x9x3
    images: export-qonnx (NCHW Conv, MaxPool, Flatten with the columns permuted to CHW), then import: the same ROMs."""
    from fxconvnets import random_conv_network
    from idx_files import learnable_set

    from fedxnor.contract.conv import Conv
    from fedxnor.contract.dense import Dense
    from fedxnor.contract.pool import MaxPool

    enc, bits, pad = {"signed-mapped": ("signed", 8, 0), "pixels": ("unsigned", 8, 1), "binarized-01": ("unsigned", 1, 0)}[first]
    c0 = Conv(9, 9, 3, 6, 3, 1, pad, bits, enc)
    pool = MaxPool(*c0.out_shape, 2, 2)
    c1 = Conv(*pool.out_shape, 5, 2, 1, 0)
    specs = [c0, pool, c1, Dense(c1.out_size, 7), Dense(7, 10, is_output=True)]
    rng = np.random.default_rng(11)
    net = random_conv_network(specs, rng)
    spec = {"shape": [9, 9, 3], "encoding": {"signed-mapped": "pixels-mapped", "pixels": "pixels",
                                              "binarized-01": "pixels-binarized"}[first]}
    spec.update({"map": BREVITAS_Q17} if first == "signed-mapped" else {"threshold": 100} if first == "binarized-01" else {})
    data = learnable_set(tmp_path / "data", (9, 9, 3), n_train=10, n_test=IMAGES)
    src, onnx_file, back = tmp_path / "src", tmp_path / "model.onnx", tmp_path / "back"
    write_export(net, src, input_spec=spec)
    r = run_cli(["export-qonnx", src, "--out", onnx_file, "--data", data, "--json"])
    assert r.code == 0, r.err
    r = run_cli(["import", onnx_file, "--out", back, "--data", data, "--json"])
    assert r.code == 0, r.err
    assert json.loads(r.out)["agreement"] == 1.0
    a, b = load_export(src), load_export(back)
    assert a.manifest["input"].get("map") == b.manifest["input"].get("map")
    assert [la.get("thresholds") for la in a.manifest["layers"]] == [lb.get("thresholds") for lb in b.manifest["layers"]]
    assert hex_files(src) == hex_files(back) and hex_files(src)


def test_dense_network_on_multichannel_images_round_trips(tmp_path):
    """A dense first layer on 6x6x3 images: the graph takes NCHW and flattens CHW, the contract flattens HWC; export and
    import permute the columns both ways, so the ROMs come back identical and qonnx agrees on every image."""
    from idx_files import learnable_set

    rng = np.random.default_rng(12)
    net = random_network(rng, [108, 12, 10])
    data = learnable_set(tmp_path / "data", (6, 6, 3), n_train=10, n_test=IMAGES)
    src, onnx_file, back = tmp_path / "src", tmp_path / "model.onnx", tmp_path / "back"
    write_export(net, src, input_spec={"shape": [6, 6, 3], "encoding": "pixels"})
    r = run_cli(["export-qonnx", src, "--out", onnx_file, "--data", data, "--json"])
    assert r.code == 0, r.err
    r = run_cli(["import", onnx_file, "--out", back, "--data", data, "--json"])
    assert r.code == 0, r.err
    assert hex_files(src) == hex_files(back)


@st.composite
def conv_round_trips(draw):
    """A random conv network (first layer: signed mapped, 8-bit pixels, 0/1 or ±1 binarized pixels; pad only where the
    contract's stored 0 is ONNX's zero), its input section and a seed."""
    from fedxnor.contract.conv import Conv
    from fedxnor.contract.dense import Dense
    from fedxnor.contract.pool import MaxPool

    first = draw(st.sampled_from(["signed", "pixels", "bin01", "binpm1"]))
    bits = draw(st.integers(2, 8)) if first == "signed" else 8 if first == "pixels" else 1
    enc = {"signed": "signed", "pixels": "unsigned", "bin01": "unsigned", "binpm1": "bipolar"}[first]
    h, w, c = draw(st.integers(4, 8)), draw(st.integers(4, 8)), draw(st.integers(1, 3))
    k = draw(st.integers(1, 3))
    pad = 0 if first == "binpm1" else draw(st.integers(0, k - 1))
    specs = [Conv(h, w, c, draw(st.integers(1, 5)), k, draw(st.integers(1, 2)), pad, bits, enc)]
    oh, ow, oc = specs[0].out_shape
    if min(oh, ow) >= 2 and draw(st.booleans()):
        specs.append(MaxPool(oh, ow, oc, 2, draw(st.integers(1, 2))))
    oh, ow, oc = specs[-1].out_shape
    if min(oh, ow) >= 2 and draw(st.booleans()):
        specs.append(Conv(oh, ow, oc, draw(st.integers(1, 4)), 2, 1, 0))
    specs.append(Dense(specs[-1].out_size, draw(st.integers(2, 5)), is_output=True))
    spec = {"shape": [h, w, c]}
    if first == "signed":  # a non-decreasing map that spans the whole B-bit range (so the importer picks the same width)
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        q = sorted(draw(st.lists(st.integers(lo, hi), min_size=254, max_size=254)))
        spec.update(encoding="pixels-mapped", map=[lo, *q, hi])
    elif first == "pixels":
        spec.update(encoding="pixels")
    else:
        spec.update(encoding="pixels-binarized", threshold=draw(st.integers(1, 255)))
    return specs, spec, draw(st.integers(0, 2**16))


@settings(max_examples=10, deadline=None)
@given(conv_round_trips())
def test_conv_round_trip_property(tmp_path_factory, case):
    """Random conv networks: export-qonnx (qonnx equals the reference) then import (equals qonnx) give the same ROMs."""
    from fxconvnets import random_conv_network
    from idx_files import learnable_set

    specs, spec, seed = case
    d = tmp_path_factory.mktemp("crt")
    net = random_conv_network(specs, np.random.default_rng(seed))
    data = learnable_set(d / "data", tuple(spec["shape"]), n_train=10, n_test=60, seed=seed)
    write_export(net, d / "src", input_spec=spec)
    r = run_cli(["export-qonnx", d / "src", "--out", d / "m.onnx", "--data", data, "--json"])
    assert r.code == 0, r.err
    r = run_cli(["import", d / "m.onnx", "--out", d / "back", "--data", data, "--json"])
    assert r.code == 0, r.err
    assert hex_files(d / "src") == hex_files(d / "back")
    assert load_export(d / "src").manifest["input"].get("map") == load_export(d / "back").manifest["input"].get("map")
