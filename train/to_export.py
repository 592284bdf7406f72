"""The torch -> integer bridge: a checkpoint becomes an export directory, and agreement with torch eval is
proven on the test images before anything is written. Training owns it, so export/ never imports torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fedxnor.contract.folding import Folding
from fedxnor.contract.network import IntNetwork
from fedxnor.datasets import load_split
from fedxnor.errors import FedxnorError
from fedxnor.export.manifest import INPUTS_FILE, LABELS_FILE, PREDICTIONS_FILE, write_export
from fedxnor.export.recorded_data import check_image_shape
from fedxnor.train.checkpoint import load_checkpoint, sha256_file


def parse_foldings(network: IntNetwork, pe: list[int] | None, simd: list[int] | None) -> list[Folding | None]:
    """--pe/--simd give one value per layer with weights, or one value for every one; defaults per layer otherwise."""
    return foldings_from_values([layer.spec for layer in network.layers], pe, simd)


def foldings_from_values(specs, pe: list[int] | None, simd: list[int] | None,
                         names: tuple[str, str] = ("--pe", "--simd")) -> list[Folding | None]:
    """Per-layer foldings from a list of P values and one of L values (one value, or one per layer with weights;
    defaults: 1 and min(32, K)), each legal for its layer. A layer without weights (max-pool) folds nothing: None.
    The flow checks its TOML with this before training."""
    weighted = [s for s in specs if getattr(s, "has_weights", True)]
    n = len(weighted)
    what_layers = "layer" if n == len(specs) else "layer with weights"

    def expand(values: list[int] | None, what: str, default) -> list[int]:
        if not values:
            return [default(s) for s in weighted]
        if len(values) == 1:
            return list(values) * n
        if len(values) != n:
            raise FedxnorError(f"{what} takes one value or one per {what_layers} ({n}), got {len(values)}")
        return list(values)

    folds = iter([Folding(p, q) for p, q in zip(expand(pe, names[0], lambda s: 1),
                                                 expand(simd, names[1], lambda s: min(32, s.fan_in)))])
    out: list[Folding | None] = []
    for i, spec in enumerate(specs):
        fold = next(folds) if getattr(spec, "has_weights", True) else None
        if fold is not None:
            spec.check_folding(fold, f"layer {i}", (f"{names[0]} ", f"{names[1]} "))
        out.append(fold)
    return out


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
        extra = {INPUTS_FILE: bits.astype(np.uint8).tobytes(), LABELS_FILE: labels.astype(np.uint8).tobytes()}
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
