"""Shared fixtures: random integer networks (no torch) and small trained checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fxnets import random_network  # noqa: F401 (re-exported for fixtures)

FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def fashion_test():
    from fedxnor.datasets import load_split

    return load_split("test")


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory) -> Path:
    """mlp-small trained briefly on 5,000 images (a few seconds)."""
    from fedxnor.train.central import CentralConfig, train_central

    out = tmp_path_factory.mktemp("mlp_small")
    return train_central(CentralConfig(model="mlp-small", epochs=1, train_limit=5000, seed=0), out, progress=False)


@pytest.fixture
def scratch():
    """A fresh directory per Hypothesis example (tmp_path is one per test, not per example): scratch() -> a path
    inside a new temporary directory, removed after the test."""
    import shutil
    import tempfile

    made = []

    def new() -> Path:
        made.append(Path(tempfile.mkdtemp(prefix="fxfuzz-")))
        return made[-1] / "case"

    yield new
    for d in made:
        shutil.rmtree(d, ignore_errors=True)
