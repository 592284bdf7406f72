"""The data set an export (or a checkpoint) was made from: `reference` and `verify` default to it.

A model trained with `--data DIR` on 10 x 10 images records DIR in its checkpoint and the export
records it in manifest["source"]["dataset"]["dir"], so the later commands need no `--data` and
never feed 28 x 28 Fashion-MNIST images into a 100-input network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fedxnor.errors import FedxnorError


def recorded_data_dir(manifest: dict[str, Any]) -> Path | None:
    """The IDX directory an export's manifest records (None: none recorded, i.e. the default data set)."""
    source = manifest.get("source")
    dataset = source.get("dataset") if isinstance(source, dict) else None
    d = dataset.get("dir") if isinstance(dataset, dict) else None
    return Path(d) if isinstance(d, str) and d and "\x00" not in d else None


def check_image_shape(images_shape: tuple[int, ...], want: tuple[int, ...], data_dir: Path | None, what: str) -> None:
    """Images of the size the model takes, or one line saying which data set to give."""
    if tuple(images_shape) != tuple(want) and not (len(want) == 1 and _prod(images_shape) == want[0]):
        got = " x ".join(map(str, images_shape))
        raise FedxnorError(f"{what} takes {' x '.join(map(str, want))} images but {data_dir or 'the default data set'} "
                           f"holds {got} images: pass --data with the data set the model was trained on")


def _prod(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def recorded_test_split(manifest: dict[str, Any], data_dir: Path | None, limit: int | None):
    """The test split of data_dir, else of the directory the export records, checked against its input shape."""
    from fedxnor.datasets import load_split

    given = data_dir is not None
    data_dir = Path(data_dir) if given else recorded_data_dir(manifest)
    try:
        test = load_split("test", data_dir).take(limit)
    except FedxnorError as e:
        if given or data_dir is None:
            raise
        raise FedxnorError(f"the export was made from data in {data_dir}, which cannot be read ({e}); "
                           "pass --data DIR with that data set") from None
    spec = manifest.get("input")
    shape = spec.get("shape") if isinstance(spec, dict) else None
    if isinstance(shape, list) and shape and all(type(d) is int for d in shape):
        check_image_shape(test.image_shape, tuple(shape), data_dir, "the export")
    return test


def check_labels(labels: np.ndarray, classes: int, data_dir: Path | None) -> None:
    """Labels the model can score: an accuracy against labels it cannot output is meaningless, not 0.0."""
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        where = f"--data {data_dir}" if data_dir else "the test data"
        raise FedxnorError(f"{where} has labels up to {int(labels.max())} but the model has {classes} classes "
                           f"(0..{classes - 1}); give the data the model was trained on with --data DIR")


def reference_inputs(ref, data_dir: Path | None, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The test inputs of an export: its own inputs file when it has one (e.g. HyBNN
    latents made by a frozen encoder), else the dataset's test split."""
    from fedxnor.export.manifest import INPUTS_FILE, LABELS_FILE

    inputs, labels = ref.export.extra_file(INPUTS_FILE), ref.export.extra_file(LABELS_FILE)
    if inputs is not None and labels is not None:  # load_export checked their sizes against each other and the model
        n_in = ref.export.layers[0].in_size  # values per image (NHWC-flattened for a map)
        x = np.frombuffer(inputs.read_bytes(), np.uint8).reshape(-1, n_in)
        y = np.frombuffer(labels.read_bytes(), np.uint8).astype(np.int64)
        return x[:limit], y[:limit]
    test = recorded_test_split(ref.export.manifest, data_dir, limit)
    return test.images, test.labels

