"""`fedxnor flow`: configuration errors before any work, resumable stages, and a report
whose figures are the stage outputs' figures."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from fedxnor.app.config import DEFAULTS, load_config
from fedxnor.errors import FedxnorError


def flow(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fedxnor", "flow", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd)


@pytest.mark.parametrize("toml,message", [
    ("[train]\nepoch = 3\n", "unknown key 'train.epoch' (did you mean 'train.epochs'?)"),
    ("[train]\nrounds = 'ten'\n", "'train.rounds' must be an integer"),
    ("[verify]\nsim = 'modelsim'\n", "'verify.sim' = 'modelsim' is not one of"),
    ("[train]\nclients = 5\nper_round = 10\n", "exceeds 'train.clients'"),
    ("bogus = 1\n", "unknown key 'bogus'"),
    ("[train\n", "not valid TOML"),
    ("stages = ['train', 'deploy']\n", "unknown stage 'deploy'"),
    # a model that does not fit the board: the build preflight, before any training
    ("[train]\nmodel = 'mlp'\n",
     "model mlp (784-256-256-10) does not fit build.board = 'icebreaker' (up5k) with any folding: network weights need"),
    ("[train]\nmodel = 'mlp-small'\n[export]\nfold = 'manual'\npe = [1, 1, 1]\nsimd = [784, 64, 64]\n",
     "model mlp-small (784-64-64-10) on build.board = 'icebreaker'"),
])
def test_bad_config_fails_before_work(tmp_path, toml, message):
    cfg = tmp_path / "flow.toml"
    cfg.write_text(toml + f"\nout = '{tmp_path / 'run'}'\n" if not toml.startswith("[") else
                   f"out = '{tmp_path / 'run'}'\n" + toml)
    r = flow("--config", cfg)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_defaults_in_one_place_validate():
    cfg = load_config()
    assert cfg == {**DEFAULTS, **cfg} and cfg["train"]["model"] == "mlp-small"
    with pytest.raises(FedxnorError):
        load_config(overrides={"train": {"per_round": 0}})


def test_flow_runs_resumes_and_reports_stage_figures(tmp_path):
    run = tmp_path / "run"
    cfg = tmp_path / "flow.toml"
    cfg.write_text(f"out = '{run}'\nstages = ['train', 'export', 'reference', 'report']\n"
                   "[train]\nalgo = 'central'\nepochs = 1\ntrain_limit = 2000\n"
                   "[export]\nfold = 'manual'\npe = [8, 4, 2]\nsimd = [16]\n"
                   "[reference]\nimages = 3000\n")
    r = flow("--config", cfg)
    assert r.returncode == 0, r.stderr
    stages = {s: json.loads((run / s / "stage.json").read_text()) for s in ("train", "export", "reference", "report")}
    assert all(v["status"] == "ok" for v in stages.values())
    # The report's figures are exactly the stage outputs' figures.
    headline = stages["report"]["summary"]["headline"]
    assert headline["reference_accuracy"] == stages["reference"]["summary"]["accuracy"]
    assert headline["reference_agreement"] == stages["reference"]["summary"]["agreement"] == 1.0
    assert headline["train_test_accuracy"] == stages["train"]["summary"]["test_accuracy"]
    md = (run / "report" / "report.md").read_text()
    html = (run / "report" / "report.html").read_text()
    ref = stages["reference"]["summary"]
    assert f"| reference | vs torch eval | agreement | {ref['agreement']:.4f} |" in md
    assert f"| reference | {ref['images']} test images | accuracy | {ref['accuracy']:.4f} |" in md
    assert f"<td>{ref['accuracy']:.4f}</td>" in html
    for la in stages["export"]["summary"]["layers"]:
        assert re.search(rf"\| {la['name']} \| {la['kind']} \| {la['fan_in']} \| {la['fan_out']} \| .* \| {la['pe']} \| "
                         rf"{la['simd']} \|", md)
    assert (run / "report" / "accuracy.png").stat().st_size > 1000
    # Resume: everything up to date is skipped; changing a stage's config reruns it and what follows.
    r = flow("--config", cfg)
    assert r.returncode == 0 and r.stderr.count("up to date, skipped") == 3
    cfg.write_text(cfg.read_text().replace("images = 3000", "images = 2000"))
    r = flow("--config", cfg)
    assert r.returncode == 0 and r.stderr.count("up to date, skipped") == 2
    assert json.loads((run / "reference" / "stage.json").read_text())["summary"]["images"] == 2000


def test_failed_stage_names_itself(tmp_path):
    run = tmp_path / "run"
    r = flow("--out", run, "--only", "reference")
    assert r.returncode == 2 and "stage 'export' has no output" in r.stderr
    (run / "export").mkdir(parents=True)
    (run / "export" / "stage.json").write_text(json.dumps({"summary": {"directory": str(tmp_path / "gone")},
                                                          "fingerprint": "x"}))
    r = flow("--out", run, "--only", "reference")
    assert r.returncode == 3 and "stage 'reference' failed" in r.stderr and "no such export directory" in r.stderr


def test_the_export_stage_records_conv_and_pool_layers(tmp_path):
    """A conv network's stage record: every layer's kind and sizes, foldings only where there are weights."""
    import numpy as np
    from fxconvnets import default_folds, random_conv_network

    from fedxnor.app.flow import layer_summary
    from fedxnor.contract.conv import Conv
    from fedxnor.contract.dense import Dense
    from fedxnor.contract.pool import MaxPool
    from fedxnor.export.manifest import load_export, write_export

    specs = [Conv(6, 5, 3, 4, 3, 2, 1, 8, "unsigned"), MaxPool(3, 3, 4, 2, 1), Dense(16, 3, is_output=True)]
    net = random_conv_network(specs, np.random.default_rng(0))
    exp = load_export(write_export(net, tmp_path / "e", default_folds(specs), input_spec={"shape": [6, 5, 3],
                                                                                        "encoding": "pixels"}))
    conv, pool, dense = (layer_summary(i) for i in exp.layers)
    assert conv["kind"] == "conv" and (conv["fan_in"], conv["fan_out"], conv["weight_bits"]) == (27, 4, 108)
    assert pool == {"name": pool["name"], "kind": "maxpool", "in_size": 36, "out_size": 16, "input_bits": 1}
    assert dense["kind"] == "dense" and dense["pe"] >= 1
