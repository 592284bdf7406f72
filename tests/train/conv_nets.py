"""Small conv BNNs with random weights and BatchNorm statistics (negative, zero and tie-making scales) for the
torch == reference tests, and a small generated 3-channel IDX set."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from fedxnor.train.models import BNN, BNNConfig, shaped_config


def conv_config(input_shape, convs, hidden=(6,), input_encoding="pixels", input_bits=8) -> BNNConfig:
    base = BNNConfig("cnv-test", (1, *hidden, 10), input_bits=input_bits, input_encoding=input_encoding,
                     input_shape=tuple(input_shape), convs=tuple(tuple(b) for b in convs))
    return replace(shaped_config(base, tuple(input_shape), tuple(hidden)), name="cnv-test")


@torch.no_grad()
def randomize(model: BNN, seed: int) -> BNN:
    """Random ±1 weights and BatchNorm statistics spread over each layer's dot-product range: integer means
    with scale 1 and bias 0 (y = 0 exactly at a reachable x: sign(0) = +1 ties), negative scales (inverted
    rows) and zero scales with a negative, zero or positive bias (constant outputs)."""
    g = torch.Generator().manual_seed(seed)
    first = model.config.input_bits if model.config.input_encoding == "pixels" else 1
    norms = [*model.conv_norms, *model.norms]
    fan_ins = [c.fan_in for c in model.convs] + [lin.fan_in for lin in model.hidden]
    for layer in [*model.convs, *model.binary_linears()]:
        layer.weight.copy_(torch.rand(layer.weight.shape, generator=g) * 2 - 1)
    for i, (norm, k) in enumerate(zip(norms, fan_ins)):
        bn, m = norm.bn, norm.bn.num_features
        span = k * ((1 << first) - 1) if i == 0 else k
        spread = max(1, span // 4) if i == 0 else span
        bn.running_mean.copy_(torch.randint(-spread, spread + 1, (m,), generator=g).float())
        bn.running_var.copy_(torch.rand(m, generator=g) * spread + 0.5)
        bn.weight.copy_(torch.randn(m, generator=g))
        bn.bias.copy_(torch.randn(m, generator=g) * 0.5)
        kind = torch.randint(0, 4, (m,), generator=g)
        tie = kind == 0  # y = x - mean exactly
        bn.running_var[tie] = 1.0 - bn.eps
        bn.weight[tie] = 1.0
        bn.bias[tie] = 0.0
        bn.weight[kind == 1] = -bn.weight[kind == 1].abs()  # inverted rows
        zero = kind == 2
        bn.weight[zero] = 0.0
        bn.bias[zero] = torch.tensor([-1.0, 0.0, 1.0])[torch.randint(0, 3, (int(zero.sum()),), generator=g)]
    model.eval()
    return model


def torch_eval(model: BNN, images: np.ndarray):
    """(classes, hidden activation bits per integer layer) of torch eval."""
    with torch.no_grad():
        scores, acts = model(torch.from_numpy(images), return_activations=True)
    return torch.argmax(scores, 1).numpy(), [(a.numpy() > 0).astype(np.uint8) for a in acts], scores


def assert_reference_equals_torch(model: BNN, images: np.ndarray) -> None:
    """The integer network (train's bridge) reproduces torch eval on every image: classes, every hidden bit,
    and the scores as ±1 dot products (torch's scores are them times one positive scale)."""
    net = model.to_int_network()
    x = images.reshape(len(images), -1).astype(np.int64)
    if model.config.input_encoding == "pixels-binarized":  # the exporter's input bits (train/to_export.py)
        x = (x >= model.config.binarize_threshold).astype(np.int64)
    acts, scores, classes = net.run(x)
    t_classes, t_acts, t_scores = torch_eval(model, images)
    assert len(acts) == len(t_acts)
    for i, (a, t) in enumerate(zip(acts, t_acts)):
        assert np.array_equal(a, t), f"hidden layer {i} ({net.layers[i].spec.kind})"
    assert np.array_equal(classes, t_classes)
    out = net.layers[-1]
    dots = scores if out.encoding == "unsigned" else 2 * scores - out.fan_in
    with torch.no_grad():
        expect = model.out.linear(torch.from_numpy(acts[-1] * 2.0 - 1).float()) if acts else None
    if expect is not None:
        assert np.array_equal(dots, expect.numpy().astype(np.int64))
    assert np.array_equal(np.argmax(t_scores.numpy(), 1), classes)


def rgb_set(directory: Path, shape=(12, 12, 3), n_train: int = 240, n_test: int = 60, seed: int = 0) -> Path:
    """A 4-D IDX set of H x W x C images: each class lights its own random half of the values, plus noise."""
    from idx_files import learnable_set

    return learnable_set(directory, shape, n_train, n_test, seed)
