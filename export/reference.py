"""Bit-exact reference: what the hardware must compute, from the exported files alone.

It reads only an export directory (through load_export, which validates it) and
computes per-layer activation bits (every bit of every hidden feature map, NHWC),
output scores and classes with integers.
Two implementations agree by test: a fast one on matrix products (exact in
float64) and a literal one that walks the packed ROM words with XNOR/AND and
popcount, bit plane by bit plane, as the accelerator does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedxnor.contract.bits import to_signed
from fedxnor.contract.matrix import input_range
from fedxnor.contract.network import argmax_lowest
from fedxnor.errors import FedxnorError
from fedxnor.export.manifest import Export, load_export


@dataclass(frozen=True)
class ReferenceResult:
    activations: list[np.ndarray]  # per hidden layer: (batch, out_size) bits, NHWC-flattened for feature maps
    scores: np.ndarray  # (batch, classes) output-layer accumulators
    classes: np.ndarray  # (batch,) argmax, ties to the lowest index


def image_shape_error(got: tuple[int, ...], want: tuple[int, ...]) -> str | None:
    """Why images of per-image shape `got` are not the model's input of shape `want`, or None. Trailing sizes of 1
    are the same image ((28, 28) and (28, 28, 1)); a flat vector of the right size is taken as NHWC-flattened, and
    a model with a flat input takes any image of its size (a dense first layer flattens it row-major)."""
    def core(shape: tuple[int, ...]) -> tuple[int, ...]:
        while len(shape) > 1 and shape[-1] == 1:
            shape = shape[:-1]
        return shape
    if len(got) == 1 or len(want) == 1 or core(got) == core(want):
        return None
    hint = "; images must be channels-last (N, H, W, C), e.g. numpy's x.transpose(0, 2, 3, 1) of NCHW" if \
        sorted(got) == sorted(want) else ""
    return f"images of shape {got} are not the model's input {want}{hint}"


def prepare_inputs(export: Export, images: np.ndarray) -> np.ndarray:
    """Turn dataset samples into the first layer's integer inputs, as the manifest says: (batch, in_size),
    NHWC-flattened for (H, W, C) images (index (y·W + x)·C + c, docs/datapath.md).

    encodings: "pixels" (unsigned B-bit values, B = input bits, used as they are),
    "pixels-binarized" (bit = pixel >= input.threshold), "bits" (already 0/1),
    "pixels-mapped" (value = input.map[pixel], e.g. Brevitas' signed 8-bit quantization of 2·pixel/255 − 1).
    """
    spec = export.manifest["input"]
    enc = spec.get("encoding", "raw")
    n = export.layers[0].in_size
    images = np.asarray(images)
    if images.ndim > 2:
        err = image_shape_error(tuple(images.shape[1:]), tuple(export.input_shape))
        if err:
            raise FedxnorError(err)
    x = images.reshape(len(images), -1)
    if x.shape[1] != n:
        raise FedxnorError(f"inputs have {x.shape[1]} values, the model's first layer takes {n}")
    if enc == "pixels-binarized":
        return (x >= int(spec["threshold"])).astype(np.int64)
    x = x.astype(np.int64)
    if enc == "pixels-mapped":
        if (x < 0).any() or (x > 255).any():
            raise FedxnorError("inputs must be 8-bit pixels (0..255): the model's input map takes pixels")
        return np.asarray(spec["map"], np.int64)[x]
    first = export.layers[0].spec
    lo, hi = input_range(first.input_bits, first.encoding)
    if (x < lo).any() or (x > hi).any():
        raise FedxnorError(f"inputs must be {first.encoding} {first.input_bits}-bit values ({lo}..{hi})")
    return x


class Reference:
    """The integer model of an export directory."""

    def __init__(self, export: Export | Path | str):
        self.export = export if isinstance(export, Export) else load_export(Path(export))

    def prepare(self, images: np.ndarray) -> np.ndarray:
        return prepare_inputs(self.export, images)

    def run(self, x: np.ndarray, batch: int = 2048) -> ReferenceResult:
        """Run prepared inputs (batch, in_size) through the network."""
        acts_parts: list[list[np.ndarray]] = []
        scores_parts = []
        for s in range(0, len(x), batch):
            acts, scores, _ = self.export.network.run(x[s : s + batch])
            acts_parts.append(acts)
            scores_parts.append(scores)
        nl = len(self.export.network.layers) - 1
        acts = [np.concatenate([a[i] for a in acts_parts]) for i in range(nl)]
        scores = np.concatenate(scores_parts)
        return ReferenceResult(acts, scores, argmax_lowest(scores))

    def classify(self, images: np.ndarray) -> ReferenceResult:
        return self.run(self.prepare(images))


def literal_accumulate(export: Export, layer_index: int, x: np.ndarray) -> np.ndarray:
    """Accumulators of one layer for ONE input vector, computed as the hardware does, from the ROM words read
    back from the export's files (the layer kind's walk: contract/dense.py literal_accumulate). Slow; it
    pins down the contract, and tests check the fast path against it."""
    info = export.layers[layer_index]
    return info.spec.literal_accumulate([list(w) for w in export.weight_words[layer_index]], info.fold, x)


def literal_layer(export: Export, layer_index: int, x: np.ndarray) -> np.ndarray:
    """Output of one layer for ONE input vector, computed in the hardware's order from the export's files: the bits
    (or, for the output layer, the scores) of a dense or conv layer from the ROM words and threshold ROMs; a
    max-pool's OR, window bit by window bit."""
    info = export.layers[layer_index]
    if not info.has_weights:
        return info.spec.literal_forward(x)
    acc = literal_accumulate(export, layer_index, x)
    if info.is_output:
        return acc
    t = literal_thresholds(export, layer_index)
    return (acc.reshape(-1, info.fan_out) >= t[None, :]).astype(np.uint8).reshape(-1)


def literal_thresholds(export: Export, layer_index: int) -> np.ndarray:
    """Thresholds decoded from the threshold ROM images (two's complement)."""
    info = export.layers[layer_index]
    out = np.zeros(info.fan_out, np.int64)
    for p, words in enumerate(export.threshold_words[layer_index]):
        out[p :: info.pe] = [to_signed(v, info.threshold_width) for v in words]
    return out
