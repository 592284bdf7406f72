"""A version 1 manifest (before layer kinds), exactly as fedxnor wrote it at ab85573, still loads: every layer
is dense, the network and its images are the ones written, and re-writing it gives version 2 with the same ROM
image bytes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fedxnor.errors import FedxnorError
from fedxnor.export.manifest import load_export, write_export
from fedxnor.export.reference import Reference

# written by ab85573's export/manifest.py: 6 -> 4 (8-bit pixels, P=2, L=4) -> 3 (P=1, L=3); row 1 inverted
V1_MANIFEST = {
    "schema": "fedxnor-manifest", "schema_version": 1, "source": {"model": "v1-fixture"},
    "input": {"shape": [2, 3], "encoding": "pixels", "bits": 8}, "num_classes": 3,
    "layers": [
        {"index": 0, "name": "fc0", "fan_in": 6, "fan_out": 4, "input_bits": 8, "input_encoding": "unsigned", "output": False,
         "pe": 2, "simd": 4, "words_per_row": 2, "weight_width": 4, "weight_depth": 4, "acc_min": -1530, "acc_max": 1530,
         "weight_images": [
             {"file": "l0_w_pe0.hex", "sha256": "a8b608b627ed238f67c0caac955e10c7a49a5be81bfa8c32873aacc30432cb10"},
             {"file": "l0_w_pe1.hex", "sha256": "ddcfd16cd4b1a574c2923fc4bdcd27603f72277d7d80cfe640415834e8eb0da3"}],
         "threshold_width": 12, "threshold_depth": 2, "thresholds": [-1530, 7, 0, 1531], "inverted_rows": [1],
         "threshold_images": [
             {"file": "l0_t_pe0.hex", "sha256": "95f9d6cd657f2f15a09b6cd079bcd5914b3036b9d00ffc24d845071c3c7a42c7"},
             {"file": "l0_t_pe1.hex", "sha256": "5cce28871a73ae999215b88fc0f7fdc2f70a459446f83494317004e1688f66b8"}]},
        {"index": 1, "name": "fc1", "fan_in": 4, "fan_out": 3, "input_bits": 1, "input_encoding": "bipolar", "output": True,
         "pe": 1, "simd": 3, "words_per_row": 2, "weight_width": 3, "weight_depth": 6, "acc_min": 0, "acc_max": 4,
         "weight_images": [
             {"file": "l1_w_pe0.hex", "sha256": "84d851563670adb70323c9e80884de4cabb7d67a1ff2c04e96f9136770e0b540"}]}],
    "files": {}}
V1_IMAGES = {"l0_t_pe0.hex": "a06\n000\n", "l0_t_pe1.hex": "007\n5fb\n", "l0_w_pe0.hex": "a\nd\n3\nc\n",
             "l0_w_pe1.hex": "d\nd\n6\nc\n", "l1_w_pe0.hex": "7\n6\n6\n7\n6\n6\n"}
W0 = [[0, 1, 0, 1, 1, 0], [1, 0, 1, 1, 1, 0], [1, 1, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0]]
W1 = [[1, 1, 1, 0], [0, 1, 1, 1], [0, 1, 1, 0]]


@pytest.fixture
def v1_dir(tmp_path) -> Path:
    d = tmp_path / "v1"
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps(V1_MANIFEST, indent=1) + "\n")
    for name, text in V1_IMAGES.items():
        (d / name).write_text(text)
    return d


def test_a_version_1_manifest_loads_as_all_dense(v1_dir):
    exp = load_export(v1_dir)
    assert [i.kind for i in exp.layers] == ["dense", "dense"] and exp.num_classes == 3
    l0, l1 = exp.network.layers
    assert np.array_equal(l0.weights, W0) and np.array_equal(l1.weights, W1)
    assert l0.thresholds.tolist() == [-1530, 7, 0, 1531] and l0.inverted.tolist() == [False, True, False, False]
    x = np.array([[0, 255, 3, 4, 200, 9], [255] * 6])
    acc0 = x @ (2 * np.array(W0) - 1).T
    h = (acc0 >= np.array([-1530, 7, 0, 1531])).astype(int)
    scores = h @ np.array(W1).T + (1 - h) @ (1 - np.array(W1)).T
    assert np.array_equal(Reference(exp).classify(x.reshape(2, 2, 3)).scores, scores)


def test_rewriting_a_version_1_export_gives_version_2_and_the_same_images(v1_dir, tmp_path):
    exp = load_export(v1_dir)
    out = write_export(exp.network, tmp_path / "v2", [i.fold for i in exp.layers], input_spec=exp.manifest["input"])
    m = json.loads((out / "manifest.json").read_text())
    assert m["schema_version"] == 2 and [la["kind"] for la in m["layers"]] == ["dense", "dense"]
    assert {p.name: p.read_text() for p in out.glob("*.hex")} == V1_IMAGES
    for old, new in zip(V1_MANIFEST["layers"], m["layers"]):
        assert {k: v for k, v in new.items() if k != "kind"} == old


@pytest.mark.parametrize("kind", ["conv", "maxpool", 3])
def test_a_version_1_manifest_has_no_other_kinds(v1_dir, kind):
    m = json.loads((v1_dir / "manifest.json").read_text())
    m["layers"][0]["kind"] = kind
    (v1_dir / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(FedxnorError, match="layer 0: field 'kind' must be one of 'dense'"):
        load_export(v1_dir)


def test_a_version_2_manifest_needs_each_layers_kind(v1_dir):
    m = json.loads((v1_dir / "manifest.json").read_text())
    m["schema_version"] = 2
    (v1_dir / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(FedxnorError, match="layer 0: field 'kind' must be one of 'dense', 'conv', 'maxpool', got None"):
        load_export(v1_dir)
