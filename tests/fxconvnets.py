"""Random integer conv networks for tests (no torch): image -> conv -> [maxpool] -> [conv] -> [dense] -> dense.
A module of its own beside fxnets.py (see there why not conftest)."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from fedxnor.contract.conv import Conv
from fedxnor.contract.dense import Dense
from fedxnor.contract.folding import Folding
from fedxnor.contract.network import IntLayer, IntNetwork
from fedxnor.contract.pool import MaxPool


def fits(h: int, w: int, k: int, pad: int) -> bool:
    return h + 2 * pad >= k and w + 2 * pad >= k


@st.composite
def conv_net_specs(draw) -> dict[str, Any]:
    """Layer specifications, one legal folding per weighted layer (None for pools), a seed, the input bits."""
    h, w, c = draw(st.integers(3, 9)), draw(st.integers(3, 9)), draw(st.integers(1, 4))
    bits = draw(st.sampled_from([1, 8]))
    k = draw(st.integers(1, 3))
    pad = draw(st.integers(0, min(1, k - 1)))
    specs: list[Any] = [Conv(h, w, c, draw(st.integers(1, 6)), k, draw(st.integers(1, 2)), pad, bits, "unsigned")]
    if draw(st.booleans()):
        pk = draw(st.integers(1, 2))
        h, w, c = specs[-1].out_shape
        if h >= pk and w >= pk:
            specs.append(MaxPool(h, w, c, pk, draw(st.integers(1, 2))))
    if draw(st.booleans()):
        h, w, c = specs[-1].out_shape
        k = draw(st.integers(1, 3))
        pad = draw(st.integers(0, min(1, k - 1)))
        if fits(h, w, k, pad):
            specs.append(Conv(h, w, c, draw(st.integers(1, 9)), k, draw(st.integers(1, 2)), pad))
    if draw(st.booleans()):
        specs.append(Dense(specs[-1].out_size, draw(st.integers(2, 6))))
    specs.append(Dense(specs[-1].out_size, draw(st.integers(2, 5)), is_output=True))
    folds = [draw(st.sampled_from(s.candidate_foldings())) if s.has_weights else None for s in specs]
    return {"specs": specs, "folds": folds, "seed": draw(st.integers(0, 2**16)), "bits": bits}


def random_conv_network(specs: list[Any], rng: np.random.Generator) -> IntNetwork:
    """Random weights; thresholds anywhere in [lo, hi + 1], the constants lo and hi + 1 included; random inverted rows."""
    layers = []
    for spec in specs:
        if not spec.has_weights:
            layers.append(IntLayer(None, None, spec=spec))
            continue
        w = rng.integers(0, 2, (spec.fan_out, spec.fan_in), dtype=np.uint8)
        if spec.is_output:
            layers.append(IntLayer(w, None, spec=spec))
            continue
        lo, hi = spec.acc_range
        mid, spread = (lo + hi) // 2, max(1, (hi - lo) // 6)
        t = np.clip(rng.integers(mid - spread, mid + spread + 1, spec.fan_out), lo, hi + 1)
        t[rng.random(spec.fan_out) < 0.15] = lo
        t[rng.random(spec.fan_out) < 0.15] = hi + 1
        layers.append(IntLayer(w, t, inverted=rng.random(spec.fan_out) < 0.3, spec=spec))
    return IntNetwork(tuple(layers))


def default_folds(specs: list[Any]) -> list[Folding | None]:
    return [Folding(1, min(8, s.fan_in)) if s.has_weights else None for s in specs]
