"""Central training's last step, reestimate_batchnorm (train/central.py): running statistics become the average of
one pass's batch statistics, nothing else in the model changes, and torch eval still equals the integer network
bit for bit afterwards (conv and dense BNNs of random shapes)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from conv_nets import assert_reference_equals_torch, conv_config, randomize
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedxnor.train.central import reestimate_batchnorm
from fedxnor.train.models import BNN, build_model


def test_one_batch_gives_its_own_statistics_and_restores_the_model():
    model = randomize(BNN(conv_config((8, 8), [(5, 3, 1, 1, 2)], (6,))), seed=1)
    statistics = ("running_mean", "running_var", "num_batches_tracked")
    weights = {k: v.clone() for k, v in model.state_dict().items() if not k.endswith(statistics)}
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (40, 8, 8)).astype(np.uint8))
    reestimate_batchnorm(model, images, batch=40)
    with torch.no_grad():
        acc = model.convs[0](model.prepare(images))
    bn = model.conv_norms[0].bn
    assert torch.allclose(bn.running_mean, acc.mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-3)
    assert torch.allclose(bn.running_var, acc.var(dim=(0, 2, 3), unbiased=True), rtol=1e-4, atol=1e-3)
    assert bn.momentum == 0.1 and not model.training  # randomize left it in eval: still in eval
    for k, v in model.state_dict().items():
        if k in weights:
            assert torch.equal(v, weights[k]), k


def test_the_average_is_over_batches_not_the_last_one():
    model = build_model("mlp-small")
    rng = np.random.default_rng(1)
    images = torch.from_numpy(np.concatenate([rng.integers(0, 50, (30, 28, 28)), rng.integers(200, 256, (30, 28, 28))])
                              .astype(np.uint8))
    reestimate_batchnorm(model, images, batch=30)
    with torch.no_grad():
        acc = model.hidden[0](model.prepare(images))
    expect = (acc[:30].mean(0) + acc[30:].mean(0)) / 2  # cumulative average of the two batch means
    assert torch.allclose(model.norms[0].bn.running_mean, expect, rtol=1e-4, atol=1e-2)
    assert model.training  # a fresh model is in train mode, and stays so


def test_fewer_than_two_images_change_nothing():
    model = randomize(BNN(conv_config((6, 6), [(3, 3, 1, 0, 0)], (4,))), seed=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    reestimate_batchnorm(model, torch.zeros((1, 6, 6), dtype=torch.uint8))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@st.composite
def conv_nets(draw):
    h, w = draw(st.integers(5, 10)), draw(st.integers(5, 10))
    c = draw(st.sampled_from([1, 3]))
    convs, size = [], min(h, w)
    for _ in range(draw(st.integers(1, 2))):
        k = draw(st.integers(1, min(3, size)))
        pad = draw(st.integers(0, 1 if k > 1 else 0))  # the contract wants pad < k
        out = size + 2 * pad - k + 1
        pool = draw(st.sampled_from([0, 2])) if out >= 2 else 0
        convs.append((draw(st.integers(1, 9)), k, 1, pad, pool))
        size = out // pool if pool else out
    return (h, w, c) if c > 1 else (h, w), convs, draw(st.sampled_from([(), (5,)])), draw(st.integers(0, 1000))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_nets())
def test_reference_equals_torch_after_reestimation(net):
    shape, convs, hidden, seed = net
    model = randomize(BNN(conv_config(shape, convs, hidden)), seed=seed)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (50, *shape)).astype(np.uint8)
    reestimate_batchnorm(model, torch.from_numpy(images), batch=16)  # ragged last batch of 2
    assert not model.training
    assert_reference_equals_torch(model, images)


def test_central_training_saves_the_reestimated_statistics(tmp_path):
    from fedxnor.datasets import load_pair
    from fedxnor.train.central import CentralConfig, evaluate, train_central
    from fedxnor.train.checkpoint import load_checkpoint

    cfg = CentralConfig(model="mlp-small", epochs=1, train_limit=600, test_limit=300, seed=0)
    model, meta = load_checkpoint(train_central(cfg, tmp_path / "on", progress=False))
    train, test = (d.take(n) for d, n in zip(load_pair(None), (600, 300)))
    assert meta["accuracy_before_bn_reestimate"] is not None and meta["test_accuracy"] == evaluate(model, test)
    saved = model.norms[0].bn.running_mean.clone()
    reestimate_batchnorm(model, torch.from_numpy(train.images))  # the same weights and images: the same statistics
    assert torch.allclose(model.norms[0].bn.running_mean, saved, rtol=1e-5, atol=1e-4)
    off, meta_off = load_checkpoint(train_central(replace(cfg, bn_reestimate=False), tmp_path / "off", progress=False))
    assert meta_off["accuracy_before_bn_reestimate"] is None
    assert not torch.allclose(off.norms[0].bn.running_mean, saved)  # training's running averages differ
