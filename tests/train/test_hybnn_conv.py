"""FedHyBNN with the convolutional VAE (train/hybnn_conv.py): its frozen encoder is deterministic, stays the same
through federated rounds and travels in the checkpoint; the BNN head on its bits exports bit-exactly; the VAE
options are refused where they do not apply."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fedxnor.datasets import load_pair
from fedxnor.errors import FedxnorError
from fedxnor.train.checkpoint import encoded_test_inputs, load_checkpoint, load_encoder
from fedxnor.train.federated import FederatedConfig, Federation, train_federated
from fedxnor.train.hybnn import BinaryVAE, VAEConfig, make_vae, train_vae, vae_config_for, vae_from_blob, vae_to_blob
from fedxnor.train.hybnn_conv import ConvBinaryVAE
from tests.cli_helpers import assert_refused, run_cli

CONV = dict(algo="fedhybnn", vae="conv", vae_bits=48, vae_epochs=1, clients=4, per_round=2, train_limit=1200, test_limit=300)


@pytest.fixture(scope="module")
def conv_run(tmp_path_factory):
    """A one-round FedHyBNN run on the conv VAE; the encoder as the federation built it before the round."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("fedhybnn-conv")
    cfg = FederatedConfig(**CONV)
    before = Federation(cfg, vae_cache=out / "vae.pt").encoder  # trains the VAE, caches it where the run reads it
    state = {k: v.clone() for k, v in before.state_dict().items()}
    ckpt = train_federated(cfg, out, progress=False)
    return cfg, before, state, ckpt


def test_one_round_fedhybnn_conv_vae_runs_with_its_bits_as_the_head_input(conv_run):
    cfg, _, _, ckpt = conv_run
    model, meta = load_checkpoint(ckpt)
    assert model.config.sizes[0] == cfg.vae_bits == 48 and model.config.input_encoding == "bits"
    assert meta["config"]["vae"] == "conv" and "48 bits" in meta["hybnn"]["encoder"]
    assert isinstance(load_encoder(ckpt), ConvBinaryVAE)
    bits, labels = encoded_test_inputs(ckpt, limit=300)
    assert bits.shape == (300, 48) and set(np.unique(bits)) <= {0, 1} and len(labels) == 300


def test_conv_encoder_is_frozen_and_the_same_after_a_round(conv_run):
    _, before, state, ckpt = conv_run
    assert not any(p.requires_grad for p in before.parameters()) and not before.training
    assert all(torch.equal(state[k], v) for k, v in before.state_dict().items())  # the round did not touch it
    after = load_encoder(ckpt)
    assert all(torch.equal(state[k], v) for k, v in after.state_dict().items())
    images = load_pair(None)[1].images[:300]
    first = before.encode_bits(images)
    assert np.array_equal(first, before.encode_bits(images))  # the same bits on every call
    assert np.array_equal(first, after.encode_bits(images))  # and from the checkpoint's copy
    assert 0 < first.mean() < 1  # not a constant code


def test_head_on_conv_bits_exports_bit_exactly(conv_run, tmp_path):
    from fedxnor.export.manifest import load_export
    from fedxnor.train.to_export import export_checkpoint

    _, _, _, ckpt = conv_run
    summary = export_checkpoint(ckpt, tmp_path / "exp", check_images=2000)  # raises unless reference == torch eval
    assert summary["agreement"] == 1.0 and summary["checked_images"] == 2000
    ex = load_export(tmp_path / "exp")
    assert ex.layers[0].fan_in == 48 and ex.layers[0].input_bits == 1


def test_vae_is_retrained_deterministically_and_the_cache_key_names_the_arch(tmp_path):
    cfg = FederatedConfig(**{**CONV, "train_limit": 600})
    a = Federation(cfg, vae_cache=tmp_path / "vae.pt").encoder
    b = Federation(FederatedConfig(**{**CONV, "train_limit": 600, "vae": "mlp"}), vae_cache=tmp_path / "vae.pt").encoder
    assert isinstance(a, ConvBinaryVAE) and isinstance(b, BinaryVAE)  # the conv cache was not read as the MLP's
    c = Federation(cfg).encoder  # no cache: trained again, the same weights
    assert all(torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items())


@settings(max_examples=12, deadline=None)
@given(h=st.integers(4, 15), w=st.integers(4, 15), c=st.integers(1, 3), bits=st.integers(1, 40), n=st.integers(1, 6),
       seed=st.integers(0, 2**31 - 1))
def test_conv_vae_any_image_shape(h, w, c, bits, n, seed):
    """Images of any size and channel count: logits of latent_bits, a reconstruction shaped like its target, bits
    that do not depend on the batch they are encoded in, and a blob that restores the same encoder."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, h, w, c) if c > 1 else (n, h, w), dtype=np.uint8)
    cfg = vae_config_for(images, "conv", bits, 0.01, (4, 6))
    vae = make_vae(cfg)
    x = torch.from_numpy(images)
    assert vae.logits(x).shape == (n, bits)
    assert vae.decode(torch.ones(n, bits)).shape == vae.target(x).shape
    assert torch.isfinite(vae.loss(x, torch.Generator().manual_seed(seed)))
    codes = vae.encode_bits(images)
    assert codes.shape == (n, bits) and codes.dtype == np.uint8
    assert np.array_equal(codes, np.concatenate([vae.encode_bits(images[i : i + 1]) for i in range(n)]))
    again = vae_from_blob(vae_to_blob(vae))
    assert isinstance(again, ConvBinaryVAE) and np.array_equal(codes, again.encode_bits(images))


def test_old_mlp_vae_blob_still_loads():
    old = BinaryVAE(VAEConfig(input_size=16, hidden=8, latent_bits=5))
    blob = vae_to_blob(old)
    blob["config"] = {k: blob["config"][k] for k in ("input_size", "hidden", "latent_bits", "kl_weight")}  # before 'arch'
    images = np.random.default_rng(0).integers(0, 256, (7, 4, 4), dtype=np.uint8)
    assert np.array_equal(vae_from_blob(blob).encode_bits(images), old.encode_bits(images))


def test_conv_vae_trains_and_lowers_its_loss():
    images = load_pair(None)[0].images[:256]
    cfg = vae_config_for(images, "conv", 32, 0.01, (8, 16))
    torch.manual_seed(0)
    untrained = make_vae(cfg)
    vae = train_vae(images, 0, epochs=3, batch=32, config=cfg, progress=False)
    assert not any(p.requires_grad for p in vae.parameters())
    assert vae.reconstruction_error(images) < untrained.reconstruction_error(images)


@pytest.mark.parametrize("bad", [dict(arch="gru"), dict(latent_bits=0), dict(kl_weight=float("nan"))])
def test_vae_config_refuses_bad_values(bad):
    with pytest.raises(FedxnorError):
        VAEConfig(**bad)


@pytest.mark.parametrize("argv,message", [
    (["--algo", "fedbnn", "--vae", "conv"], "--vae sets FedHyBNN's VAE"),
    (["--algo", "fedavg", "--vae-bits", "512"], "--vae-bits sets FedHyBNN's VAE"),
    (["--algo", "fedhybnn", "--vae-bits", "0"], "--vae-bits 0 is out of range"),
    (["--algo", "fedhybnn", "--vae-kl", "nan"], "--vae-kl nan is not finite"),
    (["--algo", "fedhybnn", "--vae-epochs", "-1"], "--vae-epochs -1 is out of range"),
])
def test_cli_refuses_vae_options(tmp_path, argv, message):
    out = tmp_path / "run"
    run = run_cli(["train", *argv, "--rounds", "1", "--out", out])
    assert_refused(run, code=2, nothing_in=out)
    assert message in run.err


def test_flow_config_takes_the_vae_for_fedhybnn_only():
    from fedxnor.app.config import load_config

    cfg = load_config(None, {"train": {"algo": "fedhybnn", "vae": "conv", "vae_bits": 512}})
    assert (cfg["train"]["vae"], cfg["train"]["vae_bits"]) == ("conv", 512)
    with pytest.raises(FedxnorError, match="algo = 'fedhybnn'"):
        load_config(None, {"train": {"algo": "fedbnn", "vae": "mlp"}})
    with pytest.raises(FedxnorError, match="vae_bits"):
        load_config(None, {"train": {"algo": "fedhybnn", "vae_bits": 0}})
    with pytest.raises(FedxnorError, match="vae"):
        load_config(None, {"train": {"algo": "fedhybnn", "vae": "gru"}})


def test_fingerprint_of_legacy_vae_fields_is_unchanged():
    """The VAE fields leave a config's fingerprint as it was before they existed (resumes of those runs stay valid)
    for every algorithm but FedHyBNN, and for FedHyBNN at the old values (MLP VAE, 200 bits); its conv default counts."""
    import hashlib
    import json
    from dataclasses import asdict

    def before(cfg: FederatedConfig) -> str:  # the fingerprint as it was computed before the VAE fields
        d = {k: v for k, v in asdict(cfg).items() if k not in ("vae", "vae_bits", "vae_kl")}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    legacy = FederatedConfig(algo="fedhybnn", vae="mlp", vae_bits=200)
    assert legacy.fingerprint() == before(legacy)
    for cfg in (FederatedConfig(algo="fedbnn"), FederatedConfig(algo="fedavg", vae="mlp", vae_bits=64)):
        assert cfg.fingerprint() == before(cfg)  # the VAE fields change nothing there
    assert FederatedConfig(algo="fedhybnn", vae="mlp").fingerprint() != FederatedConfig(algo="fedhybnn").fingerprint()
