"""Checks of a training run against its data, before any work: `fedxnor train` and the flow call these.

They read the IDX set (fedxnor/datasets.py refuses a bad one), shape the model for its images
(the input size comes from the data) and split the clients' data exactly as training will,
so a run that cannot work fails with one line before a directory or a model exists.
"""

from __future__ import annotations

from pathlib import Path

from fedxnor.datasets import load_pair
from fedxnor.errors import FedxnorError


def check_central_data(cfg, data_dir: Path | str | None):
    """The BNN config central training will build (CentralConfig cfg), or a FedxnorError."""
    from fedxnor.train.central import central_model_config

    train, test = load_pair(data_dir)
    train = train.take(cfg.train_limit)
    test.take(cfg.test_limit)
    if len(train) < 2:
        raise FedxnorError(f"{len(train)} training sample: BatchNorm needs at least 2; use more training data")
    return central_model_config(cfg.model, train.image_shape, cfg.hidden)


def check_federated_data(cfg):
    """The model config a federation (FederatedConfig cfg) will build, after splitting its clients' data."""
    from fedxnor.train.models import shaped_config
    from fedxnor.train.partition import make_partition
    from fedxnor.train.validate import parse_hidden

    cfg = cfg.resolved()
    train, test = load_pair(cfg.data_dir or None)
    train = train.take(cfg.train_limit or None)
    test.take(cfg.test_limit or None)
    n_hold = int(len(train) * cfg.holdout) if cfg.algo == "fedhybnn" else 0  # as train/federated.py's Federation
    if cfg.algo == "fedhybnn" and n_hold < 2:
        raise FedxnorError(f"fedhybnn holds out {cfg.holdout:.3f} of {len(train)} training samples for its VAE: "
                           "fewer than 2; use more training data")
    make_partition(train.labels[: len(train) - n_hold], cfg.clients, cfg.partition, cfg.seed, cfg.min_per_client)
    return shaped_config(cfg.model_config, train.image_shape, parse_hidden(cfg.hidden))


def layer_sizes(model_cfg) -> list[tuple[int, int]]:
    """(fan_in, fan_out) per layer of a BNN config: what the export's folding must fit."""
    s = model_cfg.sizes
    return [(s[i], s[i + 1]) for i in range(len(s) - 1)]
