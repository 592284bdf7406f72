"""Scoreboard: what the RTL produced against what the bit-exact reference says.

Every class is compared; when the debug stream was captured, so is every
hidden layer's activation bit of every image. Bit-exactness is equality: one
differing bit is a mismatch. The first mismatch (lowest image index, then the
earliest layer, then the lowest neuron) is reported with image index, layer,
neuron, expected and got, because the earliest divergence is where a bug is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Mismatch:
    image: int  # index of the image in the checked sequence
    layer: int  # layer index (the output layer for a class mismatch)
    layer_name: str
    neuron: int | None  # neuron of that layer; None for a class mismatch
    expected: int
    got: int
    kind: str  # "activation" or "class"

    def describe(self) -> str:
        if self.kind == "class":
            return (f"image {self.image}: class mismatch at output layer {self.layer} ({self.layer_name}): "
                    f"expected class {self.expected}, got {self.got}")
        return (f"image {self.image}: layer {self.layer} ({self.layer_name}) neuron {self.neuron}: "
                f"expected bit {self.expected}, got {self.got}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "message": self.describe()}


@dataclass(frozen=True)
class ScoreReport:
    images: int
    mismatches: int  # images with any differing class or activation bit
    class_mismatches: int
    activation_mismatches: int  # images with any differing activation bit
    activations_checked: bool
    first: Mismatch | None
    per_layer: list[int]  # per hidden layer: images whose bits differ there

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "mismatches": self.mismatches,
            "class_mismatches": self.class_mismatches,
            "activation_mismatches": self.activation_mismatches,
            "activations_checked": self.activations_checked,
            "mismatching_images_per_layer": self.per_layer,
            "first_mismatch": self.first.to_dict() if self.first else None,
        }


class Scoreboard:
    """Expected classes and activation bits for a sequence of images.

    expected_acts: one (images, fan_out) bit array per hidden layer, in layer order.
    layer_names: names of all layers (hidden ones, then the output layer).
    """

    def __init__(self, expected_classes: np.ndarray, expected_acts: list[np.ndarray], layer_names: list[str]):
        self.classes = np.asarray(expected_classes, np.int64)
        self.acts = [np.asarray(a, np.uint8) for a in expected_acts]
        self.names = list(layer_names)
        if len(self.names) != len(self.acts) + 1:
            raise ValueError("need one name per layer (hidden layers plus the output layer)")

    @classmethod
    def from_reference(cls, result, export) -> Scoreboard:
        """From a fedxnor.export.reference.ReferenceResult and the Export it came from."""
        return cls(result.classes, result.activations, [info.name for info in export.layers])

    def check(self, got_classes: np.ndarray, got_acts: list[np.ndarray] | None = None) -> ScoreReport:
        """Compare the RTL's outputs, image i against expectation i. Images the RTL did not
        produce (got shorter than expected) are not counted: the caller checks completeness."""
        got_classes = np.asarray(got_classes, np.int64).reshape(-1)
        n = len(got_classes)
        if n > len(self.classes):
            raise ValueError(f"got {n} classes for {len(self.classes)} expected images")
        bad_class = got_classes != self.classes[:n]
        bad_any = bad_class.copy()
        per_layer: list[int] = []
        first: Mismatch | None = None
        candidates: list[Mismatch] = []
        checked = got_acts is not None
        if checked:
            if len(got_acts) != len(self.acts):
                raise ValueError(f"got activations of {len(got_acts)} layers, the network has {len(self.acts)} hidden layers")
            bad_act = np.zeros(n, bool)
            for li, (exp, got) in enumerate(zip(self.acts, got_acts)):
                got = np.asarray(got, np.uint8).reshape(n, -1)
                if got.shape[1] != exp.shape[1]:
                    raise ValueError(f"layer {li}: got {got.shape[1]} activation bits, expected {exp.shape[1]}")
                diff = got != exp[:n]
                rows = diff.any(axis=1)
                per_layer.append(int(rows.sum()))
                bad_act |= rows
                if rows.any():
                    img = int(np.argmax(rows))
                    neuron = int(np.argmax(diff[img]))
                    candidates.append(Mismatch(img, li, self.names[li], neuron, int(exp[img, neuron]),
                                               int(got[img, neuron]), "activation"))
            bad_any |= bad_act
        else:
            bad_act = np.zeros(n, bool)
        if bad_class.any():
            img = int(np.argmax(bad_class))
            out = len(self.names) - 1
            candidates.append(Mismatch(img, out, self.names[out], None, int(self.classes[img]), int(got_classes[img]),
                                       "class"))
        if candidates:
            first = min(candidates, key=lambda m: (m.image, m.layer, m.neuron if m.neuron is not None else -1))
        return ScoreReport(
            images=n,
            mismatches=int(bad_any.sum()),
            class_mismatches=int(bad_class.sum()),
            activation_mismatches=int(bad_act.sum()),
            activations_checked=checked,
            first=first,
            per_layer=per_layer,
        )
