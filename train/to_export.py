"""Checkpoint -> export directory, proving agreement with torch before anything is written.

This is the only module of export/ that imports torch (through train/).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fedxnor.contract.network import IntNetwork
from fedxnor.datasets import load_split
from fedxnor.errors import FedxnorError
from fedxnor.export.manifest import Folding, write_export
from fedxnor.export.recorded_data import check_image_shape
from fedxnor.train.checkpoint import load_checkpoint, sha256_file

PREDICTIONS_FILE = "torch_predictions.u8"


def parse_foldings(network: IntNetwork, pe: list[int] | None, simd: list[int] | None) -> list[Folding]:
    """--pe/--simd give one value per layer, or one value for every layer; defaults per layer otherwise."""
    return check_folding_values([(layer.fan_in, layer.fan_out) for layer in network.layers], pe, simd)


def check_folding_values(sizes: list[tuple[int, int]], pe: list[int] | None, simd: list[int] | None,
                         names: tuple[str, str] = ("--pe", "--simd")) -> list[Folding]:
    """The foldings of layers with (fan_in, fan_out) `sizes`; the flow checks its TOML with this before training."""
    n = len(sizes)
    defaults = [Folding(1, min(32, fan_in)) for fan_in, _ in sizes]  # export.manifest.default_folding

    def expand(values: list[int] | None, what: str, field: str) -> list[int]:
        if not values:
            return [getattr(d, field) for d in defaults]
        if len(values) == 1:
            return list(values) * n
        if len(values) != n:
            raise FedxnorError(f"{what} takes one value or one per layer ({n}), got {len(values)}")
        return list(values)

    pes, simds = expand(pe, names[0], "pe"), expand(simd, names[1], "simd")
    for i, ((fan_in, fan_out), p, s) in enumerate(zip(sizes, pes, simds)):
        if p < 1 or fan_out % p:
            divisors = [d for d in range(1, fan_out + 1) if fan_out % d == 0]
            raise FedxnorError(f"layer {i}: {names[0]} {p} does not divide fan-out {fan_out}; use one of {divisors}")
        if not 1 <= s <= fan_in:
            raise FedxnorError(f"layer {i}: {names[1]} {s} must be in 1..{fan_in} (the fan-in)")
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
    torch's eval predictions on every checked test image. Returns a summary.

    data_dir None: the data set the checkpoint records (its training run's --data), else Fashion-MNIST."""
    model, meta = load_checkpoint(checkpoint)
    recorded = meta.get("data_dir")
    if data_dir is None and isinstance(recorded, str) and recorded and "\x00" not in recorded:
        data_dir = Path(recorded)
    network = model.to_int_network()
    foldings = foldings or parse_foldings(network, pe, simd)
    extra: dict[str, bytes] = {}
    if model.config.input_encoding == "bits":
        # HyBNN: the FPGA runs the BNN head; the frozen float encoder runs on the host. The test images'
        # latent bits travel with the export, so the reference and RTL checks need no encoder.
        from fedxnor.train.checkpoint import encoded_test_inputs

        bits, labels = encoded_test_inputs(checkpoint, data_dir, check_images)
        torch_pred = model.predict(torch.from_numpy(bits))
        x = bits.reshape(len(bits), -1).astype(np.int64)
        extra = {"test_inputs.u8": bits.astype(np.uint8).tobytes(), "test_labels.u8": labels.astype(np.uint8).tobytes()}
    else:
        test = load_split("test", data_dir).take(check_images)
        check_image_shape(test.image_shape, model.config.input_shape, data_dir, f"model {model.config.name} of {checkpoint}")
        torch_pred = model.predict(torch.from_numpy(test.images))
        labels = test.labels
        x = test.images.reshape(len(test), -1).astype(np.int64)
        if model.config.input_encoding == "pixels-binarized":
            x = (x >= model.config.binarize_threshold).astype(np.int64)
    n_images = len(x)
    _, _, ref_pred = network.run(x)
    mismatches = int((ref_pred != torch_pred).sum())
    if mismatches:
        first = int(np.flatnonzero(ref_pred != torch_pred)[0])
        raise FedxnorError(
            f"integer network disagrees with torch eval on {mismatches} of {n_images} test images "
            f"(first: image {first}); this is a fedxnor bug, please report it with the checkpoint"
        )
    source = {"checkpoint": str(Path(checkpoint).resolve()), "checkpoint_sha256": sha256_file(checkpoint),
              "model": model.config.name, "config": model.config.to_dict(), "train_meta": meta,
              "dataset": {"dir": str(data_dir) if data_dir else "/usr/share/datasets/fashion-mnist", "split": "test",
                          "images": n_images, "inputs": "encoder latent bits" if extra else "pixels"}}
    write_export(network, Path(out_dir), foldings, source=source, input_spec=model.input_spec(),
                 extra_files={PREDICTIONS_FILE: torch_pred.astype(np.uint8).tobytes(), **extra})
    return {"out": str(out_dir), "layers": len(network.layers), "checked_images": n_images,
            "agreement": 1.0, "torch_accuracy": float((torch_pred == labels).mean())}
