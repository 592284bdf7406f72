"""Shared fixtures: random integer networks (no torch) and small trained checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedxnor.export.network import IntLayer, IntNetwork

FASHION = Path("/usr/share/datasets/fashion-mnist")


def random_network(rng: np.random.Generator, sizes: list[int], input_bits: int = 8) -> IntNetwork:
    """A random IntNetwork with thresholds anywhere in [lo, hi + 1], constants included."""
    layers = []
    for i in range(len(sizes) - 1):
        n, m = sizes[i], sizes[i + 1]
        enc, bits = ("unsigned", input_bits) if i == 0 else ("bipolar", 1)
        w = rng.integers(0, 2, (m, n), dtype=np.uint8)
        if i == len(sizes) - 2:
            layers.append(IntLayer(w, None, input_bits=bits, encoding=enc))
            continue
        probe = IntLayer(w, None, input_bits=bits, encoding=enc)
        lo, hi = probe.acc_range
        mid, spread = (lo + hi) // 2, max(1, (hi - lo) // 8)
        t = rng.integers(mid - spread, mid + spread + 1, m)
        t[rng.random(m) < 0.1] = lo
        t[rng.random(m) < 0.1] = hi + 1
        layers.append(IntLayer(w, np.clip(t, lo, hi + 1), input_bits=bits, encoding=enc,
                               inverted=rng.random(m) < 0.3))
    return IntNetwork(tuple(layers))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def fashion_test():
    from fedxnor.train.data import load_split

    return load_split("test")


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory) -> Path:
    """mlp-small trained briefly on 5,000 images (a few seconds)."""
    from fedxnor.train.central import CentralConfig, train_central

    out = tmp_path_factory.mktemp("mlp_small")
    return train_central(CentralConfig(model="mlp-small", epochs=1, train_limit=5000, seed=0), out, progress=False)
