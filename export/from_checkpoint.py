"""Checkpoint -> export directory, proving agreement with torch before anything is written.

This is the only module of export/ that imports torch (through train/).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fedxnor.errors import FedxnorError
from fedxnor.export.manifest import Folding, default_folding, write_export
from fedxnor.export.network import IntNetwork
from fedxnor.train.checkpoint import load_checkpoint, sha256_file
from fedxnor.train.data import load_split

PREDICTIONS_FILE = "torch_predictions.u8"


def parse_foldings(network: IntNetwork, pe: list[int] | None, simd: list[int] | None) -> list[Folding]:
    """--pe/--simd give one value per layer, or one value for every layer; defaults per layer otherwise."""
    n = len(network.layers)
    defaults = [default_folding(layer) for layer in network.layers]

    def expand(values: list[int] | None, what: str, field: str) -> list[int]:
        if not values:
            return [getattr(d, field) for d in defaults]
        if len(values) == 1:
            return values * n
        if len(values) != n:
            raise FedxnorError(f"--{what} takes one value or one per layer ({n}), got {len(values)}")
        return list(values)

    pes, simds = expand(pe, "pe", "pe"), expand(simd, "simd", "simd")
    for i, (layer, p, s) in enumerate(zip(network.layers, pes, simds)):
        if p < 1 or layer.fan_out % p:
            divisors = [d for d in range(1, layer.fan_out + 1) if layer.fan_out % d == 0]
            raise FedxnorError(f"layer {i}: --pe {p} does not divide fan-out {layer.fan_out}; use one of {divisors}")
        if not 1 <= s <= layer.fan_in:
            raise FedxnorError(f"layer {i}: --simd {s} must be in 1..{layer.fan_in} (the fan-in)")
    return [Folding(p, s) for p, s in zip(pes, simds)]


def export_checkpoint(
    checkpoint: Path,
    out_dir: Path,
    pe: list[int] | None = None,
    simd: list[int] | None = None,
    foldings: list[Folding] | None = None,
    data_dir: Path | None = None,
    check_images: int | None = None,
) -> dict:
    """Export a checkpoint; fail (writing nothing) unless the integer network reproduces
    torch's eval predictions on every checked test image. Returns a summary."""
    model, meta = load_checkpoint(checkpoint)
    network = model.to_int_network()
    foldings = foldings or parse_foldings(network, pe, simd)
    if model.config.input_encoding == "bits":
        raise FedxnorError("this checkpoint takes latent bits: export it with the HyBNN pipeline (fedxnor train --algo fedhybnn)")
    test = load_split("test", data_dir).take(check_images)
    torch_pred = model.predict(torch.from_numpy(test.images))
    x = test.images.reshape(len(test), -1).astype(np.int64)
    if model.config.input_encoding == "pixels-binarized":
        x = (x >= model.config.binarize_threshold).astype(np.int64)
    _, _, ref_pred = network.run(x)
    mismatches = int((ref_pred != torch_pred).sum())
    if mismatches:
        first = int(np.flatnonzero(ref_pred != torch_pred)[0])
        raise FedxnorError(
            f"integer network disagrees with torch eval on {mismatches} of {len(test)} test images "
            f"(first: image {first}); this is a fedxnor bug, please report it with the checkpoint"
        )
    source = {"checkpoint": str(Path(checkpoint).resolve()), "checkpoint_sha256": sha256_file(checkpoint),
              "model": model.config.name, "config": model.config.to_dict(), "train_meta": meta,
              "dataset": {"dir": str(data_dir) if data_dir else "/usr/share/datasets/fashion-mnist", "split": "test",
                          "images": len(test)}}
    write_export(network, Path(out_dir), foldings, source=source, input_spec=model.input_spec(),
                 extra_files={PREDICTIONS_FILE: torch_pred.astype(np.uint8).tobytes()})
    return {"out": str(out_dir), "layers": len(network.layers), "checked_images": len(test),
            "agreement": 1.0, "torch_accuracy": float((torch_pred == test.labels).mean())}
