"""`fedxnor train` refuses every bad value up front: exit 2, one line naming the flag, no traceback, no run
directory. Values come from train/validate.py's LIMITS, so a limit that changes is fuzzed as it is.

Cases: 150 (numbers out of range, NaN, inf, text) + 60 (unknown choices) + 40 (hidden widths) = 250.
"""

from __future__ import annotations

import math
import re
import tempfile
from pathlib import Path

import pytest
from cli_helpers import assert_refused, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedxnor.train.validate import LIMITS, MAX_HIDDEN_LAYERS

FUZZ = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
CENTRAL_FLAGS = ["seed", "epochs", "lr", "batch", "train_limit", "test_limit"]
FEDERATED_FLAGS = ["seed", "rounds", "clients", "per_round", "local_epochs", "lr", "momentum", "prox_mu", "logit_adjust",
                   "batch", "train_limit", "test_limit"]
TEXT = ["nan", "NaN", "inf", "-inf", "abc", "", " ", "1e999", "-1e999", "0x10", "1,5", "one"]


def out_of_range(name: str) -> st.SearchStrategy[str]:
    lim = LIMITS[name]
    if lim.kind is int:
        nums = st.one_of(st.integers(max_value=int(lim.lo) - 1), st.integers(min_value=int(lim.hi) + 1),
                         st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: f != math.floor(f)))
    else:
        nums = st.one_of(st.floats(max_value=lim.lo, exclude_max=not lim.lo_open, allow_nan=False),
                         st.floats(min_value=lim.hi, exclude_min=not lim.hi_open, allow_nan=False),
                         st.integers(min_value=10**20))
    return st.one_of(nums.map(repr if lim.kind is float else str), st.sampled_from(TEXT))


@st.composite
def bad_value(draw):
    algo = draw(st.sampled_from(["central", "fedavg", "fedbnn"]))
    name = draw(st.sampled_from(CENTRAL_FLAGS if algo == "central" else FEDERATED_FLAGS))
    return algo, name, draw(out_of_range(name))


def refused(argv: list[str]) -> str:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "run"
        run = run_cli(["train", *argv, "--out", out, "--quiet"])
        assert_refused(run, nothing_in=Path(d))
        return run.err


@settings(max_examples=150, **FUZZ)
@given(bad_value())
def test_bad_numbers_refused(case):
    algo, name, value = case
    flag = "--" + name.replace("_", "-")
    err = refused(["--algo", algo, f"{flag}={value}"])
    assert flag in err  # names the flag (argparse's own refusals name it too)


@settings(max_examples=60, **FUZZ)
@given(st.sampled_from(["--algo", "--model", "--codec", "--partition", "--lr-schedule", "--optimizer"]),
       st.text(max_size=12))
def test_unknown_choices_refused(flag, value):
    valid = {"--algo": r"central|fedavg|fedbnn|fedbat|fedhybnn|signsgd|efsign", "--codec": r"|fp32|sign|efsign|fedbat",
             "--partition": r"iid|dir\d+(\.\d+)?|cls\d+", "--lr-schedule": r"constant|cosine", "--optimizer": r"sgd|adam",
             "--model": r"mlp|mlp-small|mlp-bin|mlp-160|sfc|hybnn-head|fp-mlp|fp-mlp-small|fp-sfc|fp-hybnn-head"}
    if re.fullmatch(valid[flag], value) or "\x00" in value:
        value = value + "?"
    algo = [] if flag == "--algo" else ["--algo", "fedavg"]
    refused([*algo, f"{flag}={value}"])


@settings(max_examples=40, **FUZZ)
@given(st.one_of(st.lists(st.integers(1, 64), min_size=MAX_HIDDEN_LAYERS + 1, max_size=MAX_HIDDEN_LAYERS + 3),
                 st.lists(st.integers(1, 64), max_size=3).flatmap(
                     lambda ok: st.integers(max_value=0).map(lambda bad: [*ok, bad])),
                 st.lists(st.integers(min_value=LIMITS["hidden"].hi + 1), min_size=1, max_size=2)),
       st.sampled_from(["central", "fedavg"]))
def test_bad_hidden_widths_refused(widths, algo):
    err = refused(["--algo", algo, "--hidden", *map(str, widths)])
    assert "--hidden" in err


@pytest.mark.parametrize("argv,message", [
    (["--lr", "-1"], "--lr -1.0 is out of range"),
    (["--lr", "nan"], "--lr nan is not finite"),
    (["--seed", "-1"], "--seed -1 is out of range"),
    (["--batch", "0"], "--batch 0 is out of range"),
    (["--train-limit", "-5"], "--train-limit -5 is out of range"),
    (["--test-limit", "0"], "--test-limit 0 is out of range"),
    (["--algo", "fedavg", "--momentum", "nan"], "--momentum nan is not finite"),
    (["--algo", "fedavg", "--prox-mu", "inf"], "--prox-mu inf is not finite"),
    (["--algo", "fedavg", "--rounds", "99999999999999999999"], "is out of range: give an integer in 1..100,000"),
    (["--algo", "fedavg", "--clients", "5", "--per-round", "6"], "--per-round 6 exceeds --clients 5"),
    (["--algo", "fedavg", "--clients", "50", "--train-limit", "100"], "cannot give 50 clients 10 each"),
    (["--model", "hybnn-head"], "train it with --algo fedhybnn"),
    (["--model", "fp-mlp"], "central training takes a BNN model"),
])
def test_named_refusals(argv, message):
    assert message in refused(argv)


def test_out_naming_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    run = run_cli(["train", "--out", f, "--quiet"])
    assert_refused(run, nothing_in=tmp_path, before=[f])
    assert "is a file" in run.err
