"""Conv models through the federation harness: every algorithm and codec for a round or two on a tiny conv net
over a generated 3-channel (4-D IDX) set, label-skewed partitions, kill-free resume bit-identical, FedBNN's
rotation on the M x (C·k·k) conv matrix folded exactly, and every BNN result bit-exact through the bridge."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conv_nets import assert_reference_equals_torch, rgb_set

from fedxnor.datasets import load_split
from fedxnor.train.checkpoint import load_any_checkpoint, load_checkpoint
from fedxnor.train.federated import FederatedConfig, Federation, train_federated
from fedxnor.train.models import BNN, get_config, shaped_config
from fedxnor.train.rotation import RotatedBinaryConv2d, add_rotation, fold_rotation


@pytest.fixture(scope="module")
def rgb(tmp_path_factory):
    return rgb_set(tmp_path_factory.mktemp("rgb"), shape=(12, 12, 3), n_train=160, n_test=40)


def tiny(rgb, **kw) -> FederatedConfig:
    base = dict(clients=4, per_round=2, rounds=2, batch=16, min_per_client=5, data_dir=str(rgb))
    return FederatedConfig(**{**base, **kw})


RUNS = [("fedavg", "fp-cnv-small", "", "iid"), ("fedbat", "fp-cnv-small", "", "dir0.3"),
        ("signsgd", "fp-cnv-small", "", "cls3"), ("efsign", "fp-cnv-small", "", "iid"),
        ("fedbnn", "cnv-small", "", "dir0.3"), ("fedbnn", "cnv-small", "fedbat", "cls3"),
        ("signsgd", "cnv-small", "", "iid")]


@pytest.mark.parametrize("algo,model,codec,partition", RUNS)
def test_every_algorithm_trains_a_conv_model(tmp_path, rgb, algo, model, codec, partition):
    cfg = tiny(rgb, algo=algo, model=model, codec=codec, partition=partition)
    fed = Federation(cfg)
    conv_keys = [k for k in fed.float_keys if k.startswith("convs.") and fed.template.state_dict()[k].ndim == 4]
    assert conv_keys, "the conv weights travel on the wire"
    ckpt = train_federated(cfg, tmp_path / "run", progress=False)
    meta = json.loads((tmp_path / "run" / "metrics.json").read_text())["meta"]
    assert meta["rounds"] == 2 and 0.0 <= meta["test_accuracy"] <= 1.0
    lay = fed.layout
    if fed.cfg.codec != "fp32":  # 1-bit codecs: a bit per parameter, a float32 scale per tensor, bf16 statistics
        par = [i for i in range(len(lay.names)) if not lay.is_stat(i)]
        vp = sum(lay.sizes[i] for i in par)
        payload = 20 + 4 * len(par) + (vp + 7) // 8 + 2 * (lay.values - vp)
        assert meta["uplink_bits_per_param"] == pytest.approx(8 * payload / lay.values)
        assert 8 * ((vp + 7) // 8) / vp < 1.01  # the conv and dense weights: one bit each
    trained, _ = load_any_checkpoint(ckpt)
    start = fed.template.state_dict()
    moved = [k for k in conv_keys if k in trained.state_dict() and not torch.equal(trained.state_dict()[k], start[k])]
    assert moved, "the conv weights were trained"
    if model.startswith("cnv"):
        net, _ = load_checkpoint(ckpt)
        assert not any(isinstance(m, RotatedBinaryConv2d) for m in net.modules())  # rotation folded away
        assert_reference_equals_torch(net, load_split("test", rgb).images)


def test_resume_is_bit_identical_on_a_conv_model(tmp_path, rgb):
    """A 3-round run equals round 1 saved as a run directory's round state, then resumed (EF memories of the
    conv tensors included)."""
    from fedxnor.train.federation_loop import _save_state, run_round

    cfg = tiny(rgb, algo="efsign", model="cnv-small", rounds=3, partition="dir0.3")
    straight = train_federated(cfg, tmp_path / "a", progress=False)
    fed = Federation(cfg)
    memories: dict = {}
    state, row = run_round(fed, fed.initial_state(), 0, memories)
    assert memories and any(m.ndim == 4 for mem in memories.values() for m in mem)
    (tmp_path / "b").mkdir()
    row.update(uplink_bytes_cum=row["uplink_bytes"], downlink_bytes_cum=row["downlink_bytes"])
    _save_state(tmp_path / "b" / "round_state.pt", fed.cfg, 1, state, memories, [row])
    resumed = train_federated(cfg, tmp_path / "b", progress=False, resume=True)
    a = torch.load(straight, weights_only=True)["state_dict"]
    b = torch.load(resumed, weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fedbnn_rotation_on_conv_weights_folds_exactly():
    cfg = shaped_config(get_config("cnv-small"), (12, 12, 3))
    torch.manual_seed(0)
    rotated = add_rotation(BNN(cfg))
    convs = [m for m in rotated.convs if isinstance(m, RotatedBinaryConv2d)]
    assert len(convs) == 3
    with torch.no_grad():
        for m in convs:  # a non-trivial rotation of the M x (C·k·k) matrix
            assert m.rot_in.shape[0] * m.rot_in.shape[1] == m.in_c * m.k * m.k
            m.rot_out.normal_(0, 0.3)
            m.rot_in.normal_(0, 0.3)
        r = convs[1].rotated()
        assert not torch.equal(r, convs[1].weight)
        # rotations are orthogonal: the matrix's Frobenius norm is kept
        assert torch.allclose(r.norm(), convs[1].weight.norm(), rtol=1e-4)
    rotated.eval()
    plain = fold_rotation(rotated)
    plain.eval()
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (32, 12, 12, 3)).astype(np.uint8))
    with torch.no_grad():
        assert torch.equal(rotated(x), plain(x))
    for a, b in zip(convs, plain.convs):
        assert torch.equal(a.weight_bits(), b.weight_bits())
