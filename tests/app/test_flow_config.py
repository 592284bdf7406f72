"""The flow's TOML is checked as a whole before any work: a bad value anywhere is exit 2, one line naming
the key, no traceback, no run directory (the train stage never starts).

Cases: 150 (a bad value at a known key) + 60 (unknown keys and tables) + 40 (unknown stages, models,
algorithms, partitions, boards) = 250, plus the named cases below.
"""

from __future__ import annotations

import datetime
import math
import tempfile
from pathlib import Path

import pytest
from cli_helpers import assert_refused, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedxnor.app.config import BOUNDED, DEFAULTS, OPTIONAL, ZERO_MEANS_DEFAULT
from fedxnor.train.validate import LIMITS

FUZZ = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, datetime.datetime):
        return v.isoformat()
    return str(v)


def refused_toml(key: str, value_text: str, extra: str = "") -> str:
    """Write `key = value` (dotted key: its table) into a flow TOML, run it, assert a clean refusal."""
    with tempfile.TemporaryDirectory() as d:
        run_dir = Path(d) / "run"
        table, _, name = key.rpartition(".")
        body = f"out = {toml_value(str(run_dir))}\n" + extra
        body += f"[{table}]\n{name} = {value_text}\n" if table else f"{name} = {value_text}\n"
        cfg = Path(d) / "flow.toml"
        cfg.write_text(body)
        run = run_cli(["flow", "--config", cfg])
        assert_refused(run, nothing_in=run_dir)
        return run.err


def _bounded_bad(key: str) -> st.SearchStrategy:
    lim = LIMITS[BOUNDED[key]]
    zero_ok = key in ZERO_MEANS_DEFAULT
    if lim.kind is int:
        low = st.integers(max_value=int(lim.lo) - 1).filter(lambda v: not (zero_ok and v == 0))
        return st.one_of(low, st.integers(min_value=int(lim.hi) + 1, max_value=10**30))
    return st.one_of(st.just(math.nan), st.just(math.inf), st.just(-math.inf),
                     st.floats(max_value=lim.lo, exclude_max=not lim.lo_open, allow_nan=False)
                     .filter(lambda v: not (zero_ok and v == 0)),
                     st.floats(min_value=lim.hi, exclude_min=not lim.hi_open, allow_nan=False))


def _wrong_type(want) -> st.SearchStrategy:
    anything = st.one_of(st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False), st.text(max_size=5),
                         st.lists(st.integers(0, 3), max_size=2), st.just({"a": 1}),
                         st.just(datetime.datetime(1979, 5, 27, 7, 32, tzinfo=datetime.UTC)))

    def wrong(v) -> bool:
        if isinstance(want, float):
            return isinstance(v, bool) or not isinstance(v, (int, float))
        if isinstance(want, list):
            return not isinstance(v, list)
        return type(v) is not type(want)

    return anything.filter(wrong)


def _keys() -> list[str]:
    keys = []
    for k, v in DEFAULTS.items():
        keys += [f"{k}.{kk}" for kk in v] if isinstance(v, dict) else [k]
    return keys + list(OPTIONAL)


def _default_of(key: str):
    table, _, name = key.rpartition(".")
    return (DEFAULTS[table] if table else DEFAULTS).get(name, 1.0)


@st.composite
def bad_entry(draw):
    key = draw(st.sampled_from(_keys()))
    options = [_wrong_type(_default_of(key))]
    if key in BOUNDED:
        options.append(_bounded_bad(key))
    if key in ("train.hidden", "export.pe", "export.simd"):
        options.append(st.lists(st.integers(max_value=0), min_size=1, max_size=3))
        options.append(st.lists(st.integers(min_value=70_000, max_value=10**20), min_size=1, max_size=2))
    return key, draw(st.one_of(*options))


@settings(max_examples=150, **FUZZ)
@given(bad_entry())
def test_bad_values_refused_before_work(entry):
    key, value = entry
    err = refused_toml(key, toml_value(value))
    assert key.rpartition(".")[2] in err or "not valid TOML" in err, err


@settings(max_examples=60, **FUZZ)
@given(st.sampled_from(["", "train.", "export.", "reference.", "verify.", "build."]),
       st.from_regex(r"[a-z_]{1,12}", fullmatch=True), st.integers(0, 3))
def test_unknown_keys_refused(table, name, value):
    key = table + name
    if key in _keys() or (not table and name in DEFAULTS):
        name += "_x"
    err = refused_toml(table + name, str(value))
    assert "unknown key" in err


@settings(max_examples=40, **FUZZ)
@given(st.sampled_from(["stages", "train.model", "train.algo", "train.partition", "train.codec", "build.board",
                        "verify.sim", "export.fold"]), st.text(min_size=1, max_size=10))
def test_unknown_names_refused(key, name):
    known = {"stages": DEFAULTS["stages"], "train.model": ["mlp", "mlp-small", "mlp-bin", "mlp-160", "sfc", "hybnn-head"],
             "train.algo": ["central", "fedavg", "fedbnn", "fedbat", "fedhybnn", "signsgd", "efsign"],
             "train.partition": ["iid", "dir0.3", "cls3"], "train.codec": ["", "fp32", "sign", "efsign", "fedbat"],
             "build.board": ["icebreaker", "ice40-hx8k", "ulx3s-85f"], "verify.sim": ["verilator", "icarus"],
             "export.fold": ["board", "manual"]}[key]
    if name in known or name.startswith("fp-"):
        name += "?"
    refused_toml(key, toml_value([name] if key == "stages" else name))


@pytest.mark.parametrize("key,value,message", [
    ("train.lr", "inf", "'train.lr' = inf is not finite"),
    ("train.lr", "nan", "'train.lr' = nan is not finite"),
    ("train.lr", "-0.1", "'train.lr' = -0.1 is out of range"),
    ("train.rounds", "99999999999999999999", "'train.rounds' = 99999999999999999999 is out of range"),
    ("seed", "-1", "'seed' = -1 is out of range"),
    ("build.clock_mhz", "-12", "'build.clock_mhz' = -12.0 is out of range"),
    ("build.clock_mhz", "nan", "'build.clock_mhz' = nan is not finite"),
    ("train.hidden", "[64, 0]", "'train.hidden' = 0 is out of range"),
    ("out", '""', "'out' is empty"),
])
def test_named_values(key, value, message):
    err = refused_toml(key, value) if key != "out" else _empty_out()
    assert message in err


def _empty_out() -> str:
    with tempfile.TemporaryDirectory() as d:
        cfg = Path(d) / "flow.toml"
        cfg.write_text('out = ""\n')
        run = run_cli(["flow", "--config", cfg])
        assert_refused(run, nothing_in=Path(d), before=[cfg])
        return run.err


@pytest.mark.parametrize("extra,message", [
    # a bad export folding is found before training, whether or not the build stage runs
    ("stages = ['train', 'export', 'reference']\n[export]\nfold = 'manual'\npe = [3]\n",
     "'export.pe' 3 does not divide fan-out 64"),
    ("stages = ['train', 'export']\n[export]\nsimd = [16, 16, 999]\n", "'export.simd' 999 must be in 1..64"),
    ("stages = ['train', 'export']\n[export]\npe = [1, 1]\n", "'export.pe' takes one value or one per layer (3)"),
    ("[export]\npe = [8]\n", "ignored with export.fold = 'board'"),
    # the layer sizes the folding is checked against come from train.hidden
    ("stages = ['train', 'export']\n[train]\nhidden = [48]\n[export]\npe = [32]\n", "'export.pe' 32 does not divide fan-out 48"),
    ("stages = ['train', 'export']\n[train]\nalgo = 'fedavg'\nmodel = 'fp-mlp-small'\n", "cannot be exported"),
    ("[train]\nhidden = [1024, 1024]\n", "does not fit build.board = 'icebreaker'"),
    ("[train]\nalgo = 'fedhybnn'\n", "fedhybnn goes with a model on latent bits"),
    ("[train]\nclients = 5000\nper_round = 10\ntrain_limit = 1000\n", "cannot give 5000 clients"),
    ("data = '/nonexistent/idx'\n", "no train-images-idx3-ubyte"),
    # a conv model whose conv front does not fit the board: refused before training, by the conv cost model
    ("[train]\nmodel = 'cnv-fmnist'\n", "does not fit build.board = 'icebreaker'"),
    ("stages = ['train', 'export']\n[train]\nmodel = 'cnv-small'\n[export]\nfold = 'manual'\npe = [3]\n",
     "'export.pe' 3 does not divide"),
])
def test_whole_config_checked_before_training(extra, message):
    table_part = extra if extra.startswith("[") else ""
    top = "" if table_part else extra
    with tempfile.TemporaryDirectory() as d:
        run_dir = Path(d) / "run"
        cfg = Path(d) / "flow.toml"
        cfg.write_text(f"out = {toml_value(str(run_dir))}\n" + top + table_part)
        run = run_cli(["flow", "--config", cfg])
        assert_refused(run, nothing_in=run_dir)
        assert message in run.err and ("config" in run.err or "flow.toml" in run.err)


def test_flow_on_other_image_size_with_hidden_widths(tmp_path):
    import json

    from idx_files import learnable_set

    data = learnable_set(tmp_path / "data", (10, 10), n_train=300, n_test=50)
    run_dir = tmp_path / "run"
    cfg = tmp_path / "flow.toml"
    cfg.write_text(f"out = {toml_value(str(run_dir))}\ndata = {toml_value(str(data))}\n"
                   "stages = ['train', 'export', 'reference']\n"
                   "[train]\nalgo = 'central'\nepochs = 1\nhidden = [16, 8]\n[export]\nfold = 'manual'\npe = [2]\nsimd = [8]\n")
    run = run_cli(["flow", "--config", cfg])
    assert run.code == 0, run.err
    layers = json.loads((run_dir / "export" / "stage.json").read_text())["summary"]["layers"]
    assert [(la["fan_in"], la["fan_out"]) for la in layers] == [(100, 16), (16, 8), (8, 10)]
    ref = json.loads((run_dir / "reference" / "stage.json").read_text())["summary"]
    assert ref["images"] == 50 and ref["agreement"] == 1.0
