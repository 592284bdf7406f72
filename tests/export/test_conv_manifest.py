"""Conv networks through the files: write_export -> load_export -> the reference gives every hidden feature-map
bit of the network it was written from; the hardware-order walk of the ROM files agrees; (H, W, C) images
flatten NHWC; the manifest's version 2 fields."""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli
from fxconvnets import conv_net_specs, default_folds, random_conv_network
from hypothesis import HealthCheck, given, settings

from fedxnor.contract.conv import Conv
from fedxnor.contract.dense import Dense
from fedxnor.contract.pool import MaxPool
from fedxnor.errors import FedxnorError
from fedxnor.export.manifest import INPUTS_FILE, LABELS_FILE, PREDICTIONS_FILE, load_export, write_export
from fedxnor.export.reference import Reference, literal_layer, prepare_inputs

ROUND_TRIPS = 25


def write_conv_export(out: Path, specs, folds, rng, images: int = 5):
    net = random_conv_network(specs, rng)
    h, w, c = specs[0].in_shape
    x = rng.integers(0, 1 << specs[0].input_bits, (images, h, w, c)).astype(np.uint8)
    _, _, classes = net.run(x.reshape(images, -1))
    k = specs[-1].fan_out
    extra = {INPUTS_FILE: x.tobytes(), LABELS_FILE: rng.integers(0, k, images).astype(np.uint8).tobytes(),
             PREDICTIONS_FILE: classes.astype(np.uint8).tobytes()}
    d = write_export(net, out, folds, input_spec={"shape": [h, w, c], "encoding": "pixels"}, extra_files=extra)
    return d, net, x


@settings(max_examples=ROUND_TRIPS, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_net_specs())
def test_every_hidden_feature_map_bit_round_trips_through_the_files(case):
    rng = np.random.default_rng(case["seed"])
    root = Path(tempfile.mkdtemp(prefix="fxconv-"))
    try:
        d, net, x = write_conv_export(root / "exp", case["specs"], case["folds"], rng)
        exp = load_export(d)
        assert [dataclasses.replace(i.spec, name="") for i in exp.layers] == case["specs"]
        ref = Reference(exp)
        got = ref.classify(x)
        acts, scores, classes = net.run(x.reshape(len(x), -1))
        assert len(got.activations) == len(acts) == len(case["specs"]) - 1
        for a, b in zip(got.activations, acts):
            assert a.shape == b.shape and np.array_equal(a, b)
        assert np.array_equal(got.scores, scores) and np.array_equal(got.classes, classes)
        for i, layer in enumerate(exp.network.layers):  # the files' weights and thresholds are the network's
            orig = net.layers[i]
            if layer.weights is not None:
                assert np.array_equal(layer.weights, orig.weights) and np.array_equal(layer.inverted, orig.inverted)
                assert (layer.thresholds is None) == (orig.thresholds is None)
                assert layer.thresholds is None or np.array_equal(layer.thresholds, orig.thresholds)
        # the hardware's order, from the ROM words read back, for the first image, layer by layer
        h = ref.prepare(x[:1])[0]
        for i in range(len(exp.layers)):
            out = literal_layer(exp, i, h)
            want = got.activations[i][0] if i < len(exp.layers) - 1 else got.scores[0]
            assert np.array_equal(out, want), i
            h = out
        r = run_cli(["reference", d])
        assert r.code == 0, r.err
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_manifest_version_2_fields(tmp_path):
    specs = [Conv(6, 5, 3, 4, 3, 2, 1, 8, "unsigned"), MaxPool(3, 3, 4, 2, 1), Dense(16, 3, is_output=True)]
    d, _, _ = write_conv_export(tmp_path / "e", specs, default_folds(specs), np.random.default_rng(0))
    m = json.loads((d / "manifest.json").read_text())
    assert m["schema_version"] == 2 and m["input"]["shape"] == [6, 5, 3]
    conv, pool, dense = m["layers"]
    assert {k: conv[k] for k in ("kind", "name", "in_h", "in_w", "in_c", "out_c", "k", "stride", "pad")} == \
        {"kind": "conv", "name": "conv0", "in_h": 6, "in_w": 5, "in_c": 3, "out_c": 4, "k": 3, "stride": 2, "pad": 1}
    assert (conv["weight_depth"], len(conv["thresholds"]), conv["acc_max"]) == (4 * 4, 4, 27 * 255)
    assert pool == {"index": 1, "name": "pool1", "kind": "maxpool", "in_h": 3, "in_w": 3, "c": 4, "k": 2, "stride": 1,
                    "input_bits": 1, "input_encoding": "bipolar", "output": False}
    assert (dense["kind"], dense["fan_in"], dense["output"]) == ("dense", 16, True)
    assert sorted(p.name for p in d.glob("*.hex")) == ["l0_t_pe0.hex", "l0_w_pe0.hex", "l2_w_pe0.hex"]


def test_writer_refuses_foldings_that_do_not_fit_the_kind(tmp_path):
    specs = [Conv(4, 4, 1, 2, 3), MaxPool(2, 2, 2, 2, 2), Dense(2, 2, is_output=True)]
    net = random_conv_network(specs, np.random.default_rng(0))
    folds = default_folds(specs)
    with pytest.raises(FedxnorError, match="layer 1 is a maxpool layer: it has no weights to fold"):
        write_export(net, tmp_path / "a", [folds[0], folds[0], folds[2]])
    with pytest.raises(FedxnorError, match="layer 0: need a folding"):
        write_export(net, tmp_path / "b", [None, None, folds[2]])
    with pytest.raises(FedxnorError, match="does not divide fan-out 2"):
        write_export(net, tmp_path / "c", [folds[0].__class__(3, 1), None, folds[2]])
    assert not any(tmp_path.iterdir())


def test_images_are_flattened_nhwc_and_nchw_is_refused(tmp_path):
    specs = [Conv(4, 3, 2, 2, 1, input_bits=8, encoding="unsigned"), Dense(24, 2, is_output=True)]
    d, net, x = write_conv_export(tmp_path / "e", specs, default_folds(specs), np.random.default_rng(5))
    exp = load_export(d)
    flat = prepare_inputs(exp, x)
    assert flat.shape == (5, 24)
    assert flat[1, (2 * 3 + 1) * 2 + 1] == x[1, 2, 1, 1]  # (y * W + x) * C + c
    with pytest.raises(FedxnorError, match=r"images of shape \(2, 4, 3\) are not the model's input \(4, 3, 2\); "
                                           r"images must be channels-last"):
        prepare_inputs(exp, x.transpose(0, 3, 1, 2))
    assert np.array_equal(prepare_inputs(exp, x.reshape(5, -1)), flat)  # already flattened NHWC


def test_single_channel_maps_take_hw_images_and_a_hw_shape(tmp_path):
    specs = [Conv(5, 5, 1, 2, 3, 1, 1, 8, "unsigned"), MaxPool(5, 5, 2, 2, 2), Dense(8, 3, is_output=True)]
    net = random_conv_network(specs, np.random.default_rng(2))
    d = write_export(net, tmp_path / "e", default_folds(specs), input_spec={"shape": [5, 5], "encoding": "pixels"})
    exp = load_export(d)
    x = np.random.default_rng(3).integers(0, 256, (4, 5, 5))
    assert np.array_equal(Reference(exp).classify(x).scores, net.run(x.reshape(4, -1))[1])


@pytest.mark.parametrize("shape", [[25, 1], [5, 5, 2], [1, 5, 5], [25]])
def test_a_map_input_shape_must_be_h_w_c(tmp_path, shape):
    specs = [Conv(5, 5, 1, 2, 3), Dense(18, 3, is_output=True)]
    net = random_conv_network(specs, np.random.default_rng(2))
    d = write_export(net, tmp_path / "e", default_folds(specs), input_spec={"shape": shape, "encoding": "bits"})
    with pytest.raises(FedxnorError, match="input: shape"):
        load_export(d)
