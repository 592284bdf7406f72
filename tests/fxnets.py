"""Random integer networks for tests (no torch). A module of its own, not conftest: several
conftest.py files exist, and `from conftest import ...` would depend on which one was imported last."""

from __future__ import annotations

import numpy as np

from fedxnor.contract.network import IntLayer, IntNetwork


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
