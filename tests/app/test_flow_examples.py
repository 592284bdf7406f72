"""The documented flow configurations (docs/examples/*.toml) load, and pass the flow's whole-configuration check
before any training: values, data, model, export folding and fit on the board (fedxnor/app/flow_check.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedxnor.app.config import load_config

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "docs" / "examples").glob("*.toml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_config_is_valid(path, tmp_path):
    from fedxnor.app.flow import Context, preflight

    cfg = load_config(path, overrides={"out": str(tmp_path / "run")})
    preflight(Context(cfg, tmp_path / "run", progress=False), list(cfg["stages"]))


def test_the_conv_example_is_there():
    assert any(load_config(p)["train"]["model"].startswith("cnv") for p in EXAMPLES)
