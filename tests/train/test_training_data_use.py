"""How training uses its data: only FedHyBNN holds samples out (for its VAE), models take their input
size from the images, and a truncated round state is refused in one line on --resume."""

from __future__ import annotations

import numpy as np
import pytest
from cli_helpers import assert_refused, files_under, run_cli
from idx_files import learnable_set

from fedxnor.errors import FedxnorError
from fedxnor.train.federated import STATE_FILE, FederatedConfig, Federation


@pytest.mark.parametrize("algo,model", [("fedavg", "mlp-small"), ("fedbnn", "mlp-small"), ("signsgd", "mlp-small"),
                                        ("fedbat", "mlp-small"), ("fedavg", "fp-mlp-small")])
def test_other_algorithms_train_on_the_whole_training_set(algo, model):
    fed = Federation(FederatedConfig(algo=algo, model=model, clients=10, per_round=2, train_limit=1200))
    assert int(fed.sizes.sum()) == 1200 == len(fed.train_y)
    assert np.array_equal(np.sort(np.concatenate(fed.partition.indices)), np.arange(1200))


def test_fedhybnn_holds_out_its_vae_data_only():
    cfg = FederatedConfig(algo="fedhybnn", clients=10, per_round=2, train_limit=1200, vae_epochs=1)
    fed = Federation(cfg)
    assert int(fed.sizes.sum()) == 1200 - int(1200 * cfg.holdout) == 1000


def test_models_take_their_input_size_from_the_data(tmp_path):
    data = learnable_set(tmp_path / "d", (7, 9), n_train=200, n_test=20)
    for algo, model in (("fedbnn", "mlp-small"), ("fedavg", "fp-mlp-small")):
        fed = Federation(FederatedConfig(algo=algo, model=model, clients=4, per_round=2, data_dir=str(data), hidden="12,8"))
        assert fed.template.config.sizes == (63, 12, 8, 10) and fed.template.config.input_shape == (7, 9)
        assert fed.evaluate(fed.initial_state())[0] >= 0  # the model runs on 7 x 9 images
    fed = Federation(FederatedConfig(algo="fedhybnn", clients=4, per_round=2, data_dir=str(data), vae_epochs=1))
    cfg = fed.encoder.config  # the default VAE (conv, 512 bits) on 7 x 9 images
    assert cfg.input_size == 63 and fed.train_x.shape[1] == cfg.latent_bits == 512


def test_hidden_string_is_checked():
    with pytest.raises(FedxnorError, match="comma-separated"):
        FederatedConfig(algo="fedavg", hidden="64;64").resolved()
    with pytest.raises(FedxnorError, match="out of range"):
        FederatedConfig(algo="fedavg", hidden="64,0").resolved()


def test_truncated_round_state_on_resume(tmp_path):
    data = learnable_set(tmp_path / "d", (6, 6), n_train=120, n_test=20)
    out = tmp_path / "run"
    argv = ["train", "--algo", "fedavg", "--model", "mlp-small", "--hidden", "8", "--data", data, "--clients", "4",
            "--per-round", "2", "--rounds", "2", "--out", out, "--quiet", "--resume"]
    assert run_cli(argv).code == 0
    state = out / STATE_FILE
    whole = state.read_bytes()
    for cut in (0, 10, len(whole) // 2):
        state.write_bytes(whole[:cut])
        before = files_under(out)
        run = run_cli(argv)
        assert_refused(run, nothing_in=out, before=before)
        assert "not a readable round state" in run.err and "delete it" in run.err


def test_broken_vae_cache_is_retrained_not_a_traceback(tmp_path):
    data = learnable_set(tmp_path / "d", (6, 6), n_train=150, n_test=20)
    out = tmp_path / "run"
    argv = ["train", "--algo", "fedhybnn", "--data", data, "--clients", "2", "--per-round", "2", "--rounds", "1",
            "--hidden", "8", "--out", out, "--quiet", "--resume", "--json"]
    first = run_cli(argv)
    assert first.code == 0, first.err
    (out / "vae.pt").write_bytes((out / "vae.pt").read_bytes()[:100])
    again = run_cli(argv)
    assert again.code == 0, again.err
    assert again.out == first.out  # the VAE is deterministic: the same model again
