"""A HyBNN checkpoint exports: the FPGA runs the BNN head, the export carries the test images'
latent bits (the frozen encoder runs on the host), and the reference agrees with torch on all of them."""

from __future__ import annotations

import json
import subprocess
import sys

from fedxnor.export.manifest import load_export
from fedxnor.train.federated import FederatedConfig, train_federated


def test_fedhybnn_checkpoint_exports_and_agrees(tmp_path):
    cfg = FederatedConfig(algo="fedhybnn", rounds=1, vae_epochs=1, clients=4, per_round=2, train_limit=2000,
                          test_limit=200)
    ckpt = train_federated(cfg, tmp_path / "run", progress=False)
    out = tmp_path / "exp"
    r = subprocess.run([sys.executable, "-m", "fedxnor", "export", str(ckpt), "--out", str(out), "--json"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    ex = load_export(out)
    assert ex.layers[0].fan_in == cfg.vae_bits and ex.layers[0].input_bits == 1
    r = subprocess.run([sys.executable, "-m", "fedxnor", "reference", str(out), "--json"], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["images"] == 10000 and res["agreement"] == 1.0 and res["mismatches"] == 0
