"""In-process federation: determinism, kill + resume bit-identical, bad clients rejected,
FedBNN export bit-exact, HyBNN head integer-exact on the encoder's bits, the flow's entry point."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from fedxnor.errors import FedxnorError
from fedxnor.train import codecs
from fedxnor.train.checkpoint import encoded_test_inputs, load_checkpoint, load_encoder
from fedxnor.train.federated import FederatedConfig, Federation, flow_train, train_federated
from fedxnor.train.federation_accept import NodeReply
from fedxnor.train.models import BNN, get_config
from fedxnor.train.rotation import add_rotation, fold_rotation

TINY = dict(clients=6, per_round=3, train_limit=3000, test_limit=500)


def states_equal(a, b) -> bool:
    sa = torch.load(a, weights_only=True)["state_dict"]
    sb = torch.load(b, weights_only=True)["state_dict"]
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_deterministic_metrics_and_plots(tmp_path):
    cfg = FederatedConfig(algo="fedbat", model="mlp-small", rounds=2, **TINY)
    a = train_federated(cfg, tmp_path / "a", progress=False)
    b = train_federated(cfg, tmp_path / "b", progress=False)
    assert states_equal(a, b)
    m = json.loads((tmp_path / "a" / "metrics.json").read_text())
    for key in ("test_accuracy", "uplink_bytes_total", "downlink_bytes_total", "uplink_bits_per_param", "rounds"):
        assert key in m["meta"]
    assert m["meta"]["uplink_bits_per_param"] <= 1.1 and m["meta"]["rounds"] == 2
    assert [h["round"] for h in m["history"]] == [1, 2]
    h = m["history"][-1]
    assert h["uplink_bytes_cum"] == m["meta"]["uplink_bytes_total"] and len(h["clients"]) == 3
    for png in ("accuracy_rounds.png", "accuracy_uplink.png"):
        assert (tmp_path / "a" / png).read_bytes()[:4] == b"\x89PNG"
    c = train_federated(FederatedConfig(algo="fedbat", model="mlp-small", rounds=2, seed=1, **TINY), tmp_path / "c",
                        progress=False)
    assert not states_equal(a, c)


def test_kill_and_resume_bit_identical(tmp_path):
    """A real `fedxnor train` process, SIGKILLed after a finished round, resumed with --resume."""
    args = ["--algo", "efsign", "--model", "mlp-small", "--clients", "6", "--per-round", "3", "--rounds", "6",
            "--train-limit", "3000", "--test-limit", "500", "--quiet"]
    run = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "fedxnor", "train", *args, "--out", str(run)])
    state = run / "round_state.pt"
    killed_after = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if state.is_file():
                killed_after = torch.load(state, weights_only=True)["round"]
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait()
    assert killed_after is not None and 1 <= killed_after < 6 and not (run / "checkpoint.pt").exists()
    r = subprocess.run([sys.executable, "-m", "fedxnor", "train", *args, "--out", str(run), "--resume", "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["rounds"] == 6
    whole = train_federated(FederatedConfig(algo="efsign", model="mlp-small", rounds=6, **TINY), tmp_path / "whole",
                            progress=False)
    assert states_equal(run / "checkpoint.pt", whole)
    h1 = json.loads((run / "metrics.json").read_text())["history"]
    h2 = json.loads((tmp_path / "whole" / "metrics.json").read_text())["history"]
    assert [x["test_accuracy"] for x in h1] == [x["test_accuracy"] for x in h2]


def test_bad_clients_rejected_round_completes(tmp_path, monkeypatch):
    cfg = FederatedConfig(algo="fedavg", model="mlp-small", rounds=1, **TINY)
    fed = Federation(cfg)
    cids = fed.sample(0)
    honest = Federation.client_update

    def faulty(self, down, cid, rnd, memory=None):
        payload, mem, loss = honest(self, down, cid, rnd, memory)
        if cid == cids[0]:  # NaN in an otherwise well-formed update
            t = codecs.decode(payload, self.layout)
            t[0] = t[0].copy()
            t[0].flat[0] = np.nan
            payload = codecs.encode_fp32(t, self.layout)
        elif cid == cids[1]:
            payload = b"FXU1 not a payload"
        return payload, mem, loss

    monkeypatch.setattr(Federation, "client_update", faulty)
    train_federated(cfg, tmp_path / "r", progress=False)
    row = json.loads((tmp_path / "r" / "metrics.json").read_text())["history"][0]
    assert [r["client"] for r in row["rejected"]] == cids[:2] and row["accepted"] == cids[2:]
    assert "non-finite" in row["rejected"][0]["reason"]
    # the result is the honest client's update alone
    monkeypatch.setattr(Federation, "client_update", honest)
    state = fed.initial_state()
    good, _, _ = fed.client_update(fed.broadcast(state), cids[2], 0)
    expect, _ = fed.aggregate(state, [NodeReply("t", (cids[2],), {"cids": [cids[2]], "payloads": [good], "losses": [0.5]})])
    model, _ = load_checkpoint(tmp_path / "r" / "checkpoint.pt")
    assert all(torch.equal(model.state_dict()[k], expect[k]) for k in fed.float_keys)


def test_rotation_folds_into_plain_bnn():
    torch.manual_seed(0)
    m = add_rotation(BNN(get_config("mlp-small")))
    with torch.no_grad():
        for lin in [*m.hidden, m.out.linear]:
            lin.rot_in.normal_(0, 0.3)
            lin.rot_out.normal_(0, 0.3)
            r = torch.linalg.matrix_exp(lin.rot_in - lin.rot_in.transpose(1, 2))
            assert torch.allclose(r @ r.transpose(1, 2), torch.eye(r.shape[1]).expand_as(r), atol=1e-5)
    x = torch.randint(0, 256, (64, 28, 28), dtype=torch.uint8)
    m.train()
    m(x)  # BatchNorm statistics
    m.eval()
    plain = fold_rotation(m)
    assert not any(".rot_" in k for k in plain.state_dict())
    assert torch.equal(m(x), plain(x))
    assert not torch.equal(plain.hidden[0].weight_bits(), BNN(get_config("mlp-small")).hidden[0].weight_bits())


def test_fedbnn_export_bit_exact_through_reference(tmp_path):
    from fedxnor.datasets import load_split
    from fedxnor.export.manifest import PREDICTIONS_FILE
    from fedxnor.export.reference import Reference
    from fedxnor.train.to_export import export_checkpoint

    ckpt = train_federated(FederatedConfig(algo="fedbnn", model="mlp-small", rounds=2, **TINY), tmp_path / "r",
                           progress=False)
    summary = export_checkpoint(ckpt, tmp_path / "export", check_images=2000)  # raises unless torch == integer network
    assert summary["agreement"] == 1.0
    test = load_split("test").take(2000)
    ref = Reference(tmp_path / "export").classify(test.images)
    torch_pred = np.frombuffer((tmp_path / "export" / PREDICTIONS_FILE).read_bytes(), np.uint8)
    assert np.array_equal(ref.classes, torch_pred)
    model, meta = load_checkpoint(ckpt)
    assert meta["algo"] == "fedbnn" and np.array_equal(model.predict(torch.from_numpy(test.images)), ref.classes)


def test_fedhybnn_head_is_integer_exact_on_encoder_bits(tmp_path):
    cfg = FederatedConfig(algo="fedhybnn", rounds=2, vae_epochs=1, **TINY)
    ckpt = train_federated(cfg, tmp_path / "h", progress=False)
    model, meta = load_checkpoint(ckpt)
    assert model.config.input_encoding == "bits" and "hybnn" in meta
    bits, labels = encoded_test_inputs(ckpt, limit=1000)
    assert bits.shape == (1000, cfg.vae_bits) and set(np.unique(bits)) <= {0, 1}
    _, _, ref = model.to_int_network().run(bits.astype(np.int64))
    assert np.array_equal(ref, model.predict(torch.from_numpy(bits)))
    assert abs(float((ref == labels).mean()) - meta["test_accuracy"]) < 0.1
    enc = load_encoder(ckpt)
    assert np.array_equal(enc.encode_bits(np.zeros((2, 28, 28), np.uint8)), enc.encode_bits(np.zeros((2, 28, 28), np.uint8)))


def test_flow_train_and_config_errors(tmp_path):
    t = {"algo": "fedbnn", "model": "mlp-small", "epochs": 3, "rounds": 1, "clients": 4, "per_round": 2,
         "local_epochs": 1, "partition": "cls3", "codec": "fedbat", "lr": 0.0, "train_limit": 2400}
    ckpt = flow_train(t, 0, tmp_path / "flow", None, progress=False)
    meta = json.loads((tmp_path / "flow" / "metrics.json").read_text())["meta"]
    assert ckpt.is_file() and meta["codec"] == "fedbat" and meta["partition"] == "cls3"
    assert flow_train(t, 0, tmp_path / "flow", None, progress=False) == ckpt  # resumes: nothing left to do
    t2 = dict(t, rounds=2)  # a changed configuration starts over in the same directory
    flow_train(t2, 0, tmp_path / "flow", None, progress=False)
    assert json.loads((tmp_path / "flow" / "metrics.json").read_text())["meta"]["rounds"] == 2
    with pytest.raises(FedxnorError, match="BNN"):
        FederatedConfig(algo="fedbnn", model="fp-mlp").resolved()
    with pytest.raises(FedxnorError, match="hybnn-head"):
        FederatedConfig(algo="fedavg", model="hybnn-head").resolved()
    with pytest.raises(FedxnorError, match="per-round"):
        FederatedConfig(algo="fedavg", clients=3, per_round=5).resolved()
    fp = train_federated(FederatedConfig(algo="fedavg", model="fp-mlp-small", rounds=1, **TINY), tmp_path / "fp",
                         progress=False)
    with pytest.raises(FedxnorError, match="full-precision"):
        load_checkpoint(fp)


def test_lr_schedule():
    cos = FederatedConfig(algo="fedavg", model="fp-mlp-small", rounds=4, lr_schedule="cosine").resolved()
    assert [cos.lr_at(r) for r in range(4)] == pytest.approx([0.1, 0.1 * (1 + 2 ** -0.5) / 2, 0.05,
                                                              0.1 * (1 - 2 ** -0.5) / 2])
    const = FederatedConfig(algo="fedbnn", model="mlp-small", rounds=4, lr_schedule="constant").resolved()
    assert {const.lr_at(r) for r in range(4)} == {0.002}
    with pytest.raises(FedxnorError, match="lr schedule"):
        FederatedConfig(lr_schedule="step").resolved()


def _client_update_tensors(cfg: FederatedConfig, cid: int) -> tuple[bytes, list[np.ndarray], Federation]:
    fed = Federation(cfg)
    payload, _, _ = fed.client_update(fed.broadcast(fed.initial_state()), cid, 0)
    return payload, codecs.decode(payload, fed.layout), fed


def test_fedprox_pulls_the_update_towards_the_global_model():
    """mu/2·||w - w_global||² in the client's loss: a smaller update of every latent weight tensor, deterministic."""
    base = dict(algo="fedbnn", model="mlp-small", rounds=1, partition="cls3", logit_adjust=0.0, **TINY)
    plain, plain_t, fed = _client_update_tensors(FederatedConfig(**base), 1)
    prox, prox_t, _ = _client_update_tensors(FederatedConfig(**base, prox_mu=1.0), 1)
    again, _, _ = _client_update_tensors(FederatedConfig(**base, prox_mu=1.0), 1)
    assert prox == again and prox != plain
    latent = [i for i, k in enumerate(fed.float_keys) if k.endswith("weight") and "norms" not in k]
    assert latent
    for i in latent:
        assert np.linalg.norm(prox_t[i]) < np.linalg.norm(plain_t[i])
    with pytest.raises(FedxnorError, match="prox_mu"):
        FederatedConfig(prox_mu=-1.0).resolved()


def test_logit_adjustment_is_the_clients_label_prior():
    """BNNs train on logits + log(the client's label distribution) by default; full precision does not."""
    assert FederatedConfig(algo="fedbnn", model="mlp-small").resolved().logit_adjust == 1.0
    assert FederatedConfig(algo="fedhybnn").resolved().logit_adjust == 1.0
    assert FederatedConfig(algo="fedavg", model="fp-mlp").resolved().logit_adjust == 0.0
    assert FederatedConfig(algo="fedbnn", model="mlp-small", logit_adjust=0.0).resolved().logit_adjust == 0.0
    fed = Federation(FederatedConfig(algo="fedbnn", model="mlp-small", rounds=1, partition="cls3",
                                     logit_adjust=0.5, **TINY))
    idx = torch.from_numpy(fed.partition.indices[2])
    counts = np.bincount(fed.labels[fed.partition.indices[2]], minlength=10)
    assert (counts > 0).sum() == 3  # cls3: three labels per client
    adj = fed._logit_adjustment(idx).numpy()
    held = counts > 0
    assert np.allclose(adj[held], 0.5 * np.log(counts[held] / counts.sum()), atol=1e-6)
    assert np.all(adj[~held] == -np.inf)  # labels the client lacks drop out of its softmax
    off = Federation(FederatedConfig(algo="fedbnn", model="mlp-small", rounds=1, logit_adjust=0.0, **TINY))
    assert off._logit_adjustment(idx) is None
    # the adjusted client update differs from the plain one and is a pure function of the configuration
    cfg = dict(algo="fedbnn", model="mlp-small", rounds=1, partition="cls3", **TINY)
    a, _, _ = _client_update_tensors(FederatedConfig(**cfg), 2)
    b, _, _ = _client_update_tensors(FederatedConfig(**cfg), 2)
    c, _, _ = _client_update_tensors(FederatedConfig(**cfg, logit_adjust=0.0), 2)
    assert a == b and a != c
    assert all(np.isfinite(t).all() for t in codecs.decode(a, Federation(FederatedConfig(**cfg)).layout))


def test_logit_adjustment_leaves_absent_labels_to_other_clients():
    """A plain BNN client (no rotation mixing the output rows) never moves the output weights of labels it lacks."""
    cfg = FederatedConfig(algo="fedavg", model="mlp-small", rounds=1, partition="cls3", **TINY)
    _, tensors, fed = _client_update_tensors(cfg, 4)
    held = np.bincount(fed.labels[fed.partition.indices[4]], minlength=10) > 0
    out = tensors[fed.float_keys.index("out.linear.weight")]
    assert np.all(out[~held] == 0) and np.all(np.abs(out[held]).sum(axis=1) > 0)
    _, plain, _ = _client_update_tensors(FederatedConfig(**{**cfg.__dict__, "logit_adjust": 0.0}), 4)
    assert np.all(np.abs(plain[fed.float_keys.index("out.linear.weight")]).sum(axis=1) > 0)


@pytest.mark.parametrize("bn_stats", ["mean", "pooled"])
def test_batchnorm_variance_aggregation(bn_stats):
    """'pooled' gives the variance of the clients' data together: their variances plus the spread of their means."""
    fed = Federation(FederatedConfig(algo="fedbnn", model="mlp-small", rounds=1, bn_stats=bn_stats, **TINY))
    state = fed.initial_state()
    cids = fed.sample(0)[:2]
    rng = np.random.default_rng(0)
    replies, sent = [], []
    for cid in cids:
        tensors = [rng.normal(size=t.shape).astype(np.float32) if fed.layout.is_stat(i) else np.zeros_like(t)
                   for i, t in enumerate(fed.float_tensors(state))]
        tensors = [np.abs(t) if k.endswith("running_var") else t for k, t in zip(fed.float_keys, tensors)]
        sent.append(tensors)
        replies.append(NodeReply("t", (cid,), {"cids": [cid], "payloads": [codecs.encode_fp32(tensors, fed.layout)],
                                               "losses": [0.5]}))
    new, _ = fed.aggregate(state, replies)
    w = np.asarray([fed.sizes[c] for c in cids], np.float64)
    w /= w.sum()
    index = {k: i for i, k in enumerate(fed.float_keys)}
    var_keys = [k for k in fed.float_keys if k.endswith("running_var")]
    assert var_keys
    for k in var_keys:
        m = index[k.replace("running_var", "running_mean")]
        mu = sum(wj * s[m].astype(np.float64) for wj, s in zip(w, sent))
        expect = sum(wj * s[index[k]].astype(np.float64) for wj, s in zip(w, sent))
        if bn_stats == "pooled":
            expect = expect + sum(wj * (s[m].astype(np.float64) - mu) ** 2 for wj, s in zip(w, sent))
        assert torch.equal(new[k], torch.from_numpy(expect).float())
        assert torch.equal(new[k.replace("running_var", "running_mean")], torch.from_numpy(mu).float())


def test_bad_bn_stats_refused():
    with pytest.raises(FedxnorError, match="bn_stats"):
        FederatedConfig(algo="fedbnn", bn_stats="median").resolved()
