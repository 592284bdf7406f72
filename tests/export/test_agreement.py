"""The exporter's central promise: the integer reference equals torch eval on every
Fashion-MNIST test image, for 8-bit and binarized inputs (checkpoints trained here)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from fedxnor.export.reference import Reference
from fedxnor.train.central import CentralConfig, train_central
from fedxnor.train.checkpoint import load_checkpoint
from fedxnor.train.to_export import export_checkpoint


@pytest.mark.parametrize("model,pe,simd", [("mlp-small", [16, 8, 2], [32, 16, 16]),
                                          ("mlp", [8, 4, 5], [49, 64, 256]),
                                          ("mlp-bin", [1], [784, 256, 256])])
def test_reference_equals_torch_eval_on_full_test_set(tmp_path, fashion_test, model, pe, simd):
    ckpt = train_central(CentralConfig(model=model, epochs=1, train_limit=3000, seed=3), tmp_path, progress=False)
    net, _ = load_checkpoint(ckpt)
    export_checkpoint(ckpt, tmp_path / "exp", pe=pe, simd=simd)
    res = Reference(tmp_path / "exp").classify(fashion_test.images)
    with torch.no_grad():
        scores, acts = net(torch.from_numpy(fashion_test.images), return_activations=True)
    assert len(fashion_test) == 10000
    assert np.array_equal(res.classes, torch.argmax(scores, 1).numpy())
    # Every hidden activation bit equals torch's sign output, not only the class.
    for layer, a in enumerate(acts):
        assert np.array_equal(res.activations[layer], (a.numpy() > 0).astype(np.uint8)), layer
    # Scores are the integer dot products: torch's scores divided by the positive scale.
    n = net.out.linear.fan_in
    dots = 2 * res.scores - n
    assert np.array_equal(np.argmax(dots, 1), res.classes)


def test_negative_and_zero_bn_scales_fold(tmp_path, small_checkpoint, fashion_test):
    # Force inverted rows and constant neurons into a trained model; agreement must hold.
    net, meta = load_checkpoint(small_checkpoint)
    with torch.no_grad():
        bn = net.norms[0].bn
        bn.weight[:20] *= -1
        bn.weight[20:24] = 0.0
        bn.bias[20:22] = -1.0
        bn.bias[22:24] = 0.0  # sign(0) = +1: always on
        bn.weight[30] = -0.0
    from fedxnor.train.checkpoint import save_checkpoint

    ckpt = save_checkpoint(tmp_path / "edited.pt", net, meta)
    export_checkpoint(ckpt, tmp_path / "exp")
    man = json.loads((tmp_path / "exp" / "manifest.json").read_text())
    inv = man["layers"][0]["inverted_rows"]
    assert set(range(20)) <= set(inv)
    t = man["layers"][0]["thresholds"]
    lo, hi = man["layers"][0]["acc_min"], man["layers"][0]["acc_max"]
    assert t[20] == t[21] == hi + 1 and t[22] == t[23] == lo
    res = Reference(tmp_path / "exp").classify(fashion_test.images)
    assert np.array_equal(res.classes, net.predict(torch.from_numpy(fashion_test.images)))


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fedxnor", *map(str, args)], capture_output=True, text=True)


def test_cli_train_export_reference(tmp_path):
    r = cli("train", "--model", "mlp-small", "--epochs", "1", "--train-limit", "2000", "--out", tmp_path / "run",
            "--json")
    assert r.returncode == 0, r.stderr
    ckpt = json.loads(r.stdout)["checkpoint"]
    r = cli("export", ckpt, "--out", tmp_path / "exp", "--pe", "8", "4", "2", "--simd", "28", "--check-images", "500")
    assert r.returncode == 0, r.stderr
    r = cli("reference", tmp_path / "exp", "--images", "500", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["images"] == 500 and out["agreement"] == 1.0 and out["mismatches"] == 0
    assert 0.3 < out["accuracy"] <= 1.0
    man = json.loads((tmp_path / "exp" / "manifest.json").read_text())
    assert man["source"]["checkpoint_sha256"] and [la["pe"] for la in man["layers"]] == [8, 4, 2]


def test_cli_export_bad_folding_writes_nothing(tmp_path, small_checkpoint):
    r = cli("export", small_checkpoint, "--out", tmp_path / "exp", "--pe", "3")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "does not divide fan-out 64" in r.stderr
    assert not (tmp_path / "exp").exists()
    r = cli("export", tmp_path / "missing.pt", "--out", tmp_path / "exp")
    assert r.returncode == 2 and "no such checkpoint" in r.stderr
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    r = cli("export", tmp_path / "junk.pt", "--out", tmp_path / "exp")
    assert r.returncode == 2 and "not a readable checkpoint" in r.stderr
    assert not (tmp_path / "exp").exists()


def test_training_is_reproducible_from_seed(tmp_path):
    a = train_central(CentralConfig(model="mlp-small", epochs=1, train_limit=1000, seed=5), tmp_path / "a",
                      progress=False)
    b = train_central(CentralConfig(model="mlp-small", epochs=1, train_limit=1000, seed=5), tmp_path / "b",
                      progress=False)
    sa, sb = torch.load(a, weights_only=True)["state_dict"], torch.load(b, weights_only=True)["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
