"""An integer network: layers of a kind with their parameters (weight bits, thresholds), and the chain rules.

IntLayer is a layer specification (contract/dense.py, ...) plus what training gave it: weight bits
(1 = +1, rows already inverted for negative BN scales), one threshold per neuron (None for the output
layer) and the rows that were inverted. IntNetwork checks that the layers chain: each takes what the one
before gives, only the first takes multi-bit inputs, only the last is the output layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedxnor.contract.dense import Dense
from fedxnor.errors import FedxnorError


@dataclass(frozen=True)
class IntLayer:
    """One binary layer in integer form.

    weights: (M, N) uint8 bits, 1 = +1, rows already inverted for negative BN scales.
    thresholds: (M,) int64, out = (acc >= T); None for the output layer.
    input_bits, encoding: how the input is read (contract/dense.py); inverted: (M,) bool, the rows that were
    inverted to fold a negative BN scale. spec: the layer's specification (default: Dense of the weights' shape).
    """

    weights: np.ndarray
    thresholds: np.ndarray | None
    input_bits: int = 1
    encoding: str = "bipolar"
    inverted: np.ndarray | None = field(default=None)
    spec: Any = None

    def __post_init__(self) -> None:
        w = np.asarray(self.weights)
        if w.ndim != 2 or w.size == 0:
            raise FedxnorError(f"layer weights must be a non-empty (fan_out, fan_in) matrix, got shape {w.shape}")
        if not np.isin(w, (0, 1)).all():
            raise FedxnorError("layer weights must be bits (1 = +1, 0 = -1)")
        object.__setattr__(self, "weights", w.astype(np.uint8))
        spec = self.spec or Dense(int(w.shape[1]), int(w.shape[0]), self.input_bits, self.encoding,
                                  is_output=self.thresholds is None)
        if (spec.fan_out, spec.fan_in) != w.shape or spec.is_output != (self.thresholds is None):
            raise FedxnorError(f"weights of shape {w.shape} do not fit the layer's {spec.fan_out} x {spec.fan_in}")
        object.__setattr__(self, "spec", spec)
        if self.thresholds is not None:
            t = np.asarray(self.thresholds, dtype=np.int64).reshape(-1)
            if t.shape != (spec.fan_out,):
                raise FedxnorError(f"need {spec.fan_out} thresholds, got {t.shape[0]}")
            lo, hi = spec.acc_range
            if (t < lo).any() or (t > hi + 1).any():
                raise FedxnorError(f"thresholds must lie in [{lo}, {hi + 1}] for this layer")
            object.__setattr__(self, "thresholds", t)
        inv = np.zeros(spec.fan_out, bool) if self.inverted is None else np.asarray(self.inverted, bool)
        object.__setattr__(self, "inverted", inv)

    @property
    def fan_out(self) -> int:
        return self.spec.fan_out

    @property
    def fan_in(self) -> int:
        return self.spec.fan_in

    @property
    def is_output(self) -> bool:
        return self.thresholds is None

    @property
    def max_input(self) -> int:
        return (1 << self.input_bits) - 1

    @property
    def acc_range(self) -> tuple[int, int]:
        return self.spec.acc_range

    def accumulate(self, x: np.ndarray) -> np.ndarray:
        return self.spec.accumulate(self.weights, x)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Output bits (batch, M) of a hidden layer, or accumulators of the output layer."""
        return self.spec.forward(self.weights, self.thresholds, x)


def check_chain(specs: list[Any]) -> str | None:
    """Why these layer specifications do not form a network, or None."""
    if not specs:
        return "a network needs at least one layer"
    for i, spec in enumerate(specs):
        if spec.is_output != (i == len(specs) - 1):
            return f"layer {i}: only the last layer may (and must) have no thresholds"
        if i > 0:
            if spec.encoding != "bipolar":
                return f"layer {i}: only the first layer may take unsigned multi-bit inputs"
            if spec.fan_in != specs[i - 1].fan_out:
                return f"layer {i} has fan-in {spec.fan_in} but layer {i - 1} has fan-out {specs[i - 1].fan_out}"
    return None


@dataclass(frozen=True)
class IntNetwork:
    """A chain of IntLayers; the last one is the output layer."""

    layers: tuple[IntLayer, ...]

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        object.__setattr__(self, "layers", layers)
        err = check_chain([la.spec for la in layers])
        if err:
            raise FedxnorError(err)

    def run(self, x: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """(per-hidden-layer activation bits, output scores, classes) for a batch."""
        acts: list[np.ndarray] = []
        h = np.asarray(x)
        for layer in self.layers[:-1]:
            h = layer.forward(h)
            acts.append(h)
        scores = self.layers[-1].forward(h)
        return acts, scores, argmax_lowest(scores)


def argmax_lowest(scores: np.ndarray) -> np.ndarray:
    """Row-wise argmax with ties going to the lowest index (numpy's own rule, made explicit)."""
    scores = np.asarray(scores)
    best = scores.max(axis=1, keepdims=True)
    return np.argmax(scores == best, axis=1).astype(np.int64)
