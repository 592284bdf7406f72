"""The integer network: what training hands to the exporter, and what hardware computes.

This module is numpy-only. A layer is a matrix of weight bits plus, for every
layer but the output, one integer threshold per neuron. See docs/datapath.md.

Bits: 1 means +1 and 0 means -1, for weights and for bipolar activations.

Accumulator ("acc") of one neuron, by the encoding of the layer's input:

* ``bipolar`` (1-bit activations, all layers after the first):
  acc = popcount(XNOR(a, w)), in [0, N]. The ±1 dot product is 2*acc - N.
* ``unsigned`` (B-bit unsigned inputs, e.g. 8-bit pixels, only the first layer):
  acc = sum_b 2^b (2 popcount(x_b AND w) - popcount(x_b)) = sum_i w_i x_i with
  w_i in {-1, +1}, in [-N(2^B-1), N(2^B-1)].

A hidden neuron outputs bit (acc >= T). The output layer outputs the class
argmax(acc), ties going to the lowest index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from fedxnor.errors import FedxnorError

Encoding = Literal["bipolar", "unsigned"]


@dataclass(frozen=True)
class IntLayer:
    """One binary layer in integer form.

    weights: (M, N) uint8 bits, 1 = +1, rows already inverted for negative BN scales.
    thresholds: (M,) int64, out = (acc >= T); None for the output layer.
    input_bits: B, the width of one input element (1 for bipolar inputs).
    encoding: how the input is read, see the module docstring.
    inverted: (M,) bool, the rows that were inverted to fold a negative BN scale.
    """

    weights: np.ndarray
    thresholds: np.ndarray | None
    input_bits: int = 1
    encoding: Encoding = "bipolar"
    inverted: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        w = np.asarray(self.weights)
        if w.ndim != 2 or w.size == 0:
            raise FedxnorError(f"layer weights must be a non-empty (fan_out, fan_in) matrix, got shape {w.shape}")
        if not np.isin(w, (0, 1)).all():
            raise FedxnorError("layer weights must be bits (1 = +1, 0 = -1)")
        object.__setattr__(self, "weights", w.astype(np.uint8))
        if self.encoding not in ("bipolar", "unsigned"):
            raise FedxnorError(f"unknown input encoding {self.encoding!r}: use 'bipolar' or 'unsigned'")
        if self.encoding == "bipolar" and self.input_bits != 1:
            raise FedxnorError("a bipolar layer takes 1-bit inputs")
        if not 1 <= self.input_bits <= 16:
            raise FedxnorError(f"input_bits must be in 1..16, got {self.input_bits}")
        if self.thresholds is not None:
            t = np.asarray(self.thresholds, dtype=np.int64).reshape(-1)
            if t.shape != (self.fan_out,):
                raise FedxnorError(f"need {self.fan_out} thresholds, got {t.shape[0]}")
            lo, hi = self.acc_range
            if (t < lo).any() or (t > hi + 1).any():
                raise FedxnorError(f"thresholds must lie in [{lo}, {hi + 1}] for this layer")
            object.__setattr__(self, "thresholds", t)
        inv = np.zeros(self.fan_out, bool) if self.inverted is None else np.asarray(self.inverted, bool)
        object.__setattr__(self, "inverted", inv)

    @property
    def fan_out(self) -> int:
        return int(self.weights.shape[0])

    @property
    def fan_in(self) -> int:
        return int(self.weights.shape[1])

    @property
    def is_output(self) -> bool:
        return self.thresholds is None

    @property
    def max_input(self) -> int:
        return (1 << self.input_bits) - 1

    @property
    def acc_range(self) -> tuple[int, int]:
        """Smallest and largest accumulator value this layer can produce."""
        if self.encoding == "bipolar":
            return 0, self.fan_in
        m = self.fan_in * self.max_input
        return -m, m

    def accumulate(self, x: np.ndarray) -> np.ndarray:
        """Accumulators for a batch of inputs x (batch, N) -> (batch, M), int64.

        Float64 matrix products are exact here (every value is far below 2^53)
        and fast; the result is converted back to integers.
        """
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.fan_in:
            raise FedxnorError(f"layer expects inputs of width {self.fan_in}, got shape {x.shape}")
        w = self.weights.astype(np.float64)
        if self.encoding == "bipolar":
            a = x.astype(np.float64)
            p = a @ w.T + (1.0 - a) @ (1.0 - w).T  # XNOR popcount
        else:
            a = x.astype(np.float64)
            p = a @ (2.0 * w - 1.0).T  # sum_i (±1)_i x_i
        return np.rint(p).astype(np.int64)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Output bits (batch, M) of a hidden layer, or accumulators of the output layer."""
        acc = self.accumulate(x)
        if self.is_output:
            return acc
        return (acc >= self.thresholds[None, :]).astype(np.uint8)


@dataclass(frozen=True)
class IntNetwork:
    """A chain of IntLayers; the last one is the output layer."""

    layers: tuple[IntLayer, ...]

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        object.__setattr__(self, "layers", layers)
        if not layers:
            raise FedxnorError("a network needs at least one layer")
        for i, layer in enumerate(layers):
            last = i == len(layers) - 1
            if layer.is_output != last:
                raise FedxnorError(f"layer {i}: only the last layer may (and must) have no thresholds")
            if i > 0:
                if layer.encoding != "bipolar":
                    raise FedxnorError(f"layer {i}: only the first layer may take unsigned multi-bit inputs")
                if layer.fan_in != layers[i - 1].fan_out:
                    raise FedxnorError(
                        f"layer {i} has fan-in {layer.fan_in} but layer {i - 1} has fan-out {layers[i - 1].fan_out}"
                    )

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


def fold_thresholds(
    shift: np.ndarray,
    scale: np.ndarray,
    bias: np.ndarray,
    acc_to_x: tuple[int, int],
    acc_range: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Fold "BatchNorm then sign" into one integer compare per neuron, exactly.

    Training's eval path computes, in float32 and one correctly rounded op at a
    time, y = (x - shift) * scale + bias and outputs +1 when y >= 0. Here x is the
    ±1 dot product, an integer: x = k * acc + c with (k, c) = acc_to_x.

    Each of those ops is monotone in x, so y is monotone: non-decreasing for
    scale > 0, non-increasing for scale < 0, constant for scale == 0. A binary
    search over the integer accumulator range, evaluating exactly the same float32
    ops, finds where the output flips. No formula with float ties is involved.

    Returns (thresholds, inverted): out = (acc' >= T) where acc' is the accumulator
    of the row, inverted (acc' = the accumulator of the negated weight row) where
    `inverted` is True.
    """
    shift = np.asarray(shift, np.float32)
    scale = np.asarray(scale, np.float32)
    bias = np.asarray(bias, np.float32)
    if not (np.isfinite(shift).all() and np.isfinite(scale).all() and np.isfinite(bias).all()):
        raise FedxnorError("BatchNorm statistics contain NaN or Inf: the checkpoint is broken, retrain it")
    k, c = acc_to_x
    lo, hi = acc_range
    m = shift.shape[0]

    def fires(acc: np.ndarray) -> np.ndarray:
        x = (k * acc + c).astype(np.float32)
        y = (x - shift) * scale + bias
        return y >= np.float32(0)

    inverted = scale < 0
    # Search for the first acc where the (possibly flipped) output is 1.
    # Non-decreasing case: smallest acc with fires(acc). Non-increasing: largest acc
    # with fires(acc), then mapped to the inverted row's accumulator.
    lo_a = np.full(m, lo, np.int64)
    hi_a = np.full(m, hi + 1, np.int64)  # hi + 1 means "never"
    for _ in range(int(hi - lo + 2).bit_length() + 1):
        mid = (lo_a + hi_a) // 2
        probe = np.clip(mid, lo, hi)
        f = fires(probe)
        # increasing: answer <= mid iff fires(mid); decreasing: first acc where it stops firing
        go_left = np.where(inverted, ~f, f)
        go_left &= mid <= hi
        hi_a = np.where(go_left, mid, hi_a)
        lo_a = np.where(go_left, lo_a, mid + 1)
        lo_a = np.minimum(lo_a, hi_a)
    first = hi_a  # increasing: first firing acc; decreasing: first non-firing acc
    t = first.copy()
    # Decreasing: fires for acc <= first - 1. The inverted row has acc' = mirror(acc).
    # bipolar: acc' = N - acc (lo=0, hi=N); unsigned: acc' = -acc. Both are lo + hi - acc.
    last_firing = first - 1
    t_inv = lo + hi - last_firing  # fires iff acc' >= lo + hi - last_firing
    t = np.where(inverted, t_inv, t)
    const = scale == 0
    t = np.where(const, np.where(bias >= 0, lo, hi + 1), t)
    t = np.clip(t, lo, hi + 1)
    return t.astype(np.int64), inverted & ~const
