"""Training pools a conv block's BatchNorm outputs before the sign (train/models.py BNN.forward): the ±1 maps and
scores equal the contract's sign-then-OR order exactly, and the gradient reaches the window's largest value."""

from __future__ import annotations

import numpy as np
import torch
from conv_nets import conv_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedxnor.train.models import BNN


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(8, 11), st.integers(1, 6), st.sampled_from([2, 3]), st.integers(0, 1), st.integers(0, 10**6))
def test_training_forward_equals_sign_then_pool(size, channels, pool, pad, seed):
    torch.manual_seed(seed)
    model = BNN(conv_config((size, size), [(channels, 3, 1, pad, pool), (4, 1, 1, 0, 2)], (5,)))
    model.train()
    images = torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (8, size, size)).astype(np.uint8))
    with torch.no_grad():
        pooled_first = model(images)
        signs_first, _ = model(images, return_activations=True)  # the sign-then-pool path, also in train mode
    assert torch.equal(pooled_first, signs_first)


def test_gradient_reaches_the_window_max_not_the_first_tie():
    model = BNN(conv_config((2, 2), [(1, 1, 1, 0, 2)], ()))
    model.train()
    with torch.no_grad():
        model.convs[0].weight.fill_(1.0)
        model.out.linear.weight.fill_(1.0)
        model.conv_norms[0].bn.weight.fill_(0.1)  # |y| < 1: the straight-through gradient passes
    seen = {}

    def keep(module, inputs, y):
        y.retain_grad()
        seen["y"] = y

    model.conv_norms[0].bn.register_forward_hook(keep)
    # BN over 8 values (mean 12.5): in the second image 30, 20 and 40 all give +1, 30 first in raster order
    images = torch.tensor([[[0, 0], [0, 0]], [[10, 30], [20, 40]]], dtype=torch.uint8)
    model(images).sum().backward()
    g = seen["y"].grad[1, 0]
    assert g[1, 1] != 0 and g[0, 1] == 0 and g[1, 0] == 0  # 40 is the max; 30 (the first +1 in raster order) gets nothing
