"""Fixtures of the cocotb regressions: one build directory per test session (each design is
compiled once per simulator) and a trained mlp-small exported in the session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def sim_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("sim_builds")


@pytest.fixture(scope="session")
def trained_export(tmp_path_factory, small_checkpoint) -> Path:
    from fedxnor.train.to_export import export_checkpoint

    out = tmp_path_factory.mktemp("mlp_small_export") / "export"
    export_checkpoint(small_checkpoint, out, pe=[16, 8, 2], simd=[32, 16, 16], check_images=1000)
    return out
