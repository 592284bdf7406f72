"""An integer network: layers of a kind with their parameters (weight bits, thresholds), and the chain rules.

IntLayer is a layer specification (contract/dense.py, conv.py, pool.py) plus what training gave it: weight
bits (1 = +1, rows already inverted for negative BN scales), one threshold per neuron or output channel
(None for the output layer and for max-pool) and the rows that were inverted. IntNetwork checks that the
layers chain: each takes what the one before gives (sizes; a map is flattened NHWC), only the first takes
multi-bit inputs, only the last is the (dense) output layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedxnor.contract.dense import Dense
from fedxnor.errors import FedxnorError


@dataclass(frozen=True)
class IntLayer:
    """One layer in integer form.

    weights: (M, K) uint8 bits, 1 = +1, rows already inverted for negative BN scales (None for a kind without
    weights: max-pool). thresholds: (M,) int64, out = (acc >= T), one per neuron or output channel; None for the
    output layer and for kinds without weights. input_bits, encoding: how the input is read (contract/matrix.py);
    inverted: (M,) bool, the rows that were inverted to fold a negative BN scale. spec: the layer's specification
    (contract/dense.py, conv.py, pool.py; default: Dense of the weights' shape). With a spec, input_bits and
    encoding are the spec's; giving others (not the defaults) is an error.
    """

    weights: np.ndarray | None
    thresholds: np.ndarray | None
    input_bits: int = 1
    encoding: str = "bipolar"
    inverted: np.ndarray | None = field(default=None)
    spec: Any = None

    def __post_init__(self) -> None:
        spec = self.spec
        if spec is not None and (self.input_bits, self.encoding) not in ((1, "bipolar"), (spec.input_bits, spec.encoding)):
            raise FedxnorError(f"the layer reads {self.input_bits}-bit {self.encoding} inputs but its {spec.kind} "
                               f"specification says {spec.input_bits}-bit {spec.encoding}")
        if spec is not None and not spec.has_weights:
            if self.weights is not None or self.thresholds is not None:
                raise FedxnorError(f"a {spec.kind} layer has no weights or thresholds")
            object.__setattr__(self, "input_bits", spec.input_bits)
            object.__setattr__(self, "encoding", spec.encoding)
            object.__setattr__(self, "inverted", np.zeros(0, bool))
            return
        w = np.asarray(self.weights)
        if w.ndim != 2 or w.size == 0:
            raise FedxnorError(f"layer weights must be a non-empty (fan_out, fan_in) matrix, got shape {w.shape}")
        if not np.isin(w, (0, 1)).all():
            raise FedxnorError("layer weights must be bits (1 = +1, 0 = -1)")
        object.__setattr__(self, "weights", w.astype(np.uint8))
        spec = spec or Dense(int(w.shape[1]), int(w.shape[0]), self.input_bits, self.encoding,
                             is_output=self.thresholds is None)
        if (spec.fan_out, spec.fan_in) != w.shape or spec.is_output != (self.thresholds is None):
            what = "no thresholds (the output layer)" if spec.is_output else f"{spec.fan_out} thresholds"
            raise FedxnorError(f"weights of shape {w.shape} and {'no' if self.thresholds is None else 'some'} thresholds "
                               f"do not fit the {spec.kind} layer's {spec.fan_out} x {spec.fan_in} matrix and {what}")
        object.__setattr__(self, "spec", spec)
        object.__setattr__(self, "input_bits", spec.input_bits)
        object.__setattr__(self, "encoding", spec.encoding)
        if self.thresholds is not None:
            t = np.asarray(self.thresholds, dtype=np.int64).reshape(-1)
            if t.shape != (spec.fan_out,):
                raise FedxnorError(f"need {spec.fan_out} thresholds, got {t.shape[0]}")
            lo, hi = spec.acc_range
            if (t < lo).any() or (t > hi + 1).any():
                raise FedxnorError(f"thresholds must lie in [{lo}, {hi + 1}] for this layer")
            object.__setattr__(self, "thresholds", t)
        inv = np.zeros(spec.fan_out, bool) if self.inverted is None else np.asarray(self.inverted, bool).reshape(-1)
        if inv.shape != (spec.fan_out,):
            raise FedxnorError(f"need one inverted flag per weight row ({spec.fan_out}), got {inv.shape[0]}")
        object.__setattr__(self, "inverted", inv)

    # the layer's shape is its specification's
    fan_out = property(lambda self: self.spec.fan_out)
    fan_in = property(lambda self: self.spec.fan_in)
    in_size = property(lambda self: self.spec.in_size)
    out_size = property(lambda self: self.spec.out_size)
    is_output = property(lambda self: self.spec.is_output)

    @property
    def max_input(self) -> int:
        return (1 << self.input_bits) - 1

    @property
    def acc_range(self) -> tuple[int, int]:
        return self.spec.acc_range

    def accumulate(self, x: np.ndarray) -> np.ndarray:
        return self.spec.accumulate(self.weights, x)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Output bits (batch, out_size), NHWC for maps, of a hidden layer, or accumulators of the output layer."""
        return self.spec.forward(self.weights, self.thresholds, x)


def shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def check_chain(specs: list[Any]) -> str | None:
    """Why these layer specifications do not form a network, or None. Layer i takes layer i - 1's output,
    flattened NHWC when it is a map: sizes must agree. Only the first layer may take unsigned inputs; the last
    layer, and only it, is the dense output layer."""
    if not specs:
        return "a network needs at least one layer"
    last = len(specs) - 1
    for i, spec in enumerate(specs):
        if i == last and spec.kind != "dense":
            return f"layer {i}: the output layer must be dense (its scores give the class), not {spec.kind}"
        if spec.is_output != (i == last):
            return f"layer {i}: only the last layer may (and must) have no thresholds"
        if i > 0:
            prev = specs[i - 1]
            if spec.encoding != "bipolar":
                return f"layer {i}: only the first layer may take unsigned multi-bit inputs"
            if spec.kind == prev.kind == "dense" and spec.fan_in != prev.fan_out:
                return f"layer {i} has fan-in {spec.fan_in} but layer {i - 1} has fan-out {prev.fan_out}"
            if spec.in_size != prev.out_size:
                return (f"layer {i} ({spec.kind}) takes {spec.in_size} inputs ({shape_text(spec.in_shape)}) but layer "
                        f"{i - 1} ({prev.kind}) gives {prev.out_size} ({shape_text(prev.out_shape)})")
    return None


def hardware_error(specs: list[Any]) -> str | None:
    """Why the accelerator (hw/, sim/, boards/) cannot run these layers, or None: every kind must be one it
    builds (`in_hardware`), and feature-map layers (conv, max-pool) form its front, before every dense layer,
    starting with a conv (hw/convfront.py)."""
    for i, spec in enumerate(specs):
        if not getattr(spec, "in_hardware", False):
            return (f"layer {i} is a {spec.kind} layer, which the accelerator does not build; the hardware flow (verilog, "
                    "plan, verify, board) cannot run this network, use 'fedxnor reference' for it")
    kinds = [spec.kind for spec in specs]
    front = next((i for i, k in enumerate(kinds) if k == "dense"), len(kinds))
    if any(k != "dense" for k in kinds[front:]):
        late = next(i for i in range(front, len(kinds)) if kinds[i] != "dense")
        return (f"layer {late} is a {kinds[late]} layer after a dense one: the accelerator runs conv and max-pool layers "
                "before the fully connected ones only")
    if front and kinds[0] != "conv":
        return "the network's first layer is a max-pool: the accelerator's first map layer must be a convolution"
    return None


def check_hardware(specs: list[Any]) -> None:
    """One-line FedxnorError (exit 2) for a network the accelerator cannot run yet."""
    err = hardware_error(list(specs))
    if err:
        raise FedxnorError(err)


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
        """(per-hidden-layer activation bits, (batch, out_size) each, NHWC-flattened for feature maps; output
        scores; classes) for a batch."""
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
