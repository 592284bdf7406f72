"""Conv BNNs through the real bridge and export directory: a conv model trained on a generated 3-channel
(4-D IDX) set exports, and the reference that reads only the export reproduces torch eval on every class and
every hidden feature-map bit; edge-case nets (odd sizes, k = 1, stride 2, padding, channel counts not a
multiple of 8, negative and zero BN scales, 8-bit first layer) likewise; a disagreeing bridge writes nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cli_helpers import run_cli
from conv_nets import conv_config, randomize, rgb_set, torch_eval
from idx_files import idx_bytes, write_split

from fedxnor.datasets import load_split
from fedxnor.errors import FedxnorError
from fedxnor.export.reference import Reference
from fedxnor.train.central import CentralConfig, train_central
from fedxnor.train.checkpoint import load_checkpoint, save_checkpoint
from fedxnor.train.models import BNN
from fedxnor.train.to_export import export_checkpoint


@pytest.fixture(scope="module")
def rgb(tmp_path_factory):
    return rgb_set(tmp_path_factory.mktemp("rgb"), shape=(16, 16, 3), n_train=300, n_test=80)


def assert_export_equals_torch(model: BNN, export_dir, images: np.ndarray) -> None:
    res = Reference(export_dir).classify(images)
    classes, acts, _ = torch_eval(model, images)
    assert np.array_equal(res.classes, classes)
    assert len(res.activations) == len(acts)
    for i, (a, t) in enumerate(zip(res.activations, acts)):
        assert np.array_equal(a, t), f"hidden layer {i}"


def test_conv_model_trained_on_rgb_exports_bit_exact(tmp_path, rgb):
    ckpt = train_central(CentralConfig(model="cnv-small", epochs=2, seed=1, batch=20), tmp_path / "run", data_dir=rgb,
                         progress=False)
    model, _ = load_checkpoint(ckpt)
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())["history"]
    assert model.config.input_shape == (16, 16, 3) and history[1]["loss"] < 0.8 * history[0]["loss"]  # it learns
    summary = export_checkpoint(ckpt, tmp_path / "exp")  # the data set the checkpoint records
    assert summary["agreement"] == 1.0 and summary["checked_images"] == 80
    man = json.loads((tmp_path / "exp" / "manifest.json").read_text())
    assert man["schema_version"] == 2
    assert [la["kind"] for la in man["layers"]] == ["conv", "conv", "maxpool", "conv", "maxpool", "dense", "dense"]
    assert man["input"]["shape"] == [16, 16, 3]
    assert_export_equals_torch(model, tmp_path / "exp", load_split("test", rgb).images)


EXPORT_CASES = {
    "odd-k1-stride2-c5": ((9, 7, 2), [(5, 1, 1, 0, 0), (5, 3, 2, 1, 0)], (6,)),
    "padded-pool-c13": ((10, 10, 3), [(13, 3, 1, 1, 2), (9, 2, 1, 0, 0)], (7,)),
    "pool-to-output": ((8, 6), [(3, 3, 1, 1, 2)], ()),
}


@pytest.mark.parametrize("case", sorted(EXPORT_CASES))
def test_edge_case_nets_export_bit_exact(tmp_path, case):
    shape, convs, hidden = EXPORT_CASES[case]
    model = randomize(BNN(conv_config(shape, convs, hidden)), seed=11)
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (50, *shape)).astype(np.uint8)
    x[0], x[1] = 0, 255
    write_split(tmp_path / "data", "test", idx_bytes(x), idx_bytes(rng.integers(0, 10, 50).astype(np.uint8)))
    ckpt = save_checkpoint(tmp_path / "c.pt", model, {"data_dir": str(tmp_path / "data")})
    simd = [min(3, la.spec.fan_in) for la in model.to_int_network().layers if la.spec.has_weights]  # words cut mid-window
    export_checkpoint(ckpt, tmp_path / "exp", pe=[1], simd=simd)
    man = json.loads((tmp_path / "exp" / "manifest.json").read_text())
    conv0 = man["layers"][0]
    assert conv0["kind"] == "conv" and conv0["simd"] == simd[0]
    bn = model.conv_norms[0].bn.weight.detach()
    assert set(conv0["inverted_rows"]) == set(np.flatnonzero((bn < 0).numpy()).tolist())
    assert_export_equals_torch(model, tmp_path / "exp", x)


def test_disagreeing_bridge_writes_nothing(tmp_path, rgb, monkeypatch):
    model = randomize(BNN(conv_config((16, 16, 3), [(4, 3, 1, 1, 2)], (5,))), seed=2)
    ckpt = save_checkpoint(tmp_path / "c.pt", model, {"data_dir": str(rgb)})
    real = BNN.to_int_network

    def broken(self):
        net = real(self)
        net.layers[-1].weights[:] = net.layers[-1].weights[::-1].copy()  # class c's scores become class 9 - c's
        return net

    monkeypatch.setattr(BNN, "to_int_network", broken)
    with pytest.raises(FedxnorError, match="disagrees with torch eval"):
        export_checkpoint(ckpt, tmp_path / "exp")
    assert not (tmp_path / "exp").exists()


def test_cli_train_export_reference_conv(tmp_path, rgb):
    r = run_cli(["train", "--model", "cnv-small", "--data", rgb, "--epochs", "1", "--out", tmp_path / "run", "--json"])
    assert r.code == 0, r.err
    ckpt = json.loads(r.out)["checkpoint"]
    r = run_cli(["export", ckpt, "--out", tmp_path / "exp", "--pe", "2", "--simd", "9"])
    assert r.code == 0, r.err
    r = run_cli(["reference", tmp_path / "exp", "--json"])
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["images"] == 80 and out["agreement"] == 1.0 and out["mismatches"] == 0
    with torch.no_grad():
        assert out["accuracy"] >= 0.0
