"""`fedxnor build` checks every argument before any work: exit 2, one line, nothing in --out, no synthesis started."""

from __future__ import annotations

import math
from pathlib import Path
from unittest import mock

import pytest
from board_helpers import small_export
from cli_helpers import assert_refused, files_under, run_cli
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fedxnor.boards.buildargs import BAUD_RANGE, CLOCK_RANGE_MHZ
from fedxnor.errors import FedxnorError

REACHED = "reached the tools"  # what the stand-in for the synthesis says: the arguments were all accepted


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return small_export(tmp_path_factory.mktemp("refuse"), 21, [50, 16, 12, 10], [(4, 16), (4, 8), (2, 6)], 8)


def no_synthesis():
    """run_flow (elaboration, Yosys, nextpnr) replaced by an error that says it was reached."""
    def reached(*a, **k):
        raise FedxnorError(REACHED)

    return mock.patch("fedxnor.boards.build.run_flow", reached)


def build(export, out: Path, *extra) -> object:
    with no_synthesis():
        return run_cli(["build", export.directory, "--board", "icebreaker", "--out", out, "--json", *extra])


def beside(out: Path) -> list[str]:
    """Everything in --out's parent: a refused build leaves no temporary directory there."""
    return sorted(p.name for p in out.parent.iterdir())


@pytest.mark.parametrize("extra,names", [
    (["--clock-mhz", "0"], "--clock-mhz 0"),
    (["--clock-mhz", "-12"], "--clock-mhz -12"),
    (["--clock-mhz", "nan"], "--clock-mhz nan"),
    (["--clock-mhz", "inf"], "--clock-mhz inf"),
    (["--clock-mhz", "1e9"], "--clock-mhz 1e+09"),
    (["--clock-mhz", "15.9"], "16..275 MHz"),
    (["--baud", "0"], "--baud 0"),
    (["--baud", "-115200"], "--baud -115200"),
    (["--baud", "12000001"], "300..12000000"),
    (["--baud", "8500000"], "within 2 %"),  # in range, but a 36 MHz clock cannot divide down to it
    (["--seeds", "-1"], "--seeds -1"),
    (["--seeds", "1", "1"], "--seeds 1 1"),
    (["--seeds", "99999999999999999999"], "0..2147483647"),
    (["--seeds", *map(str, range(17))], "1..16"),
    (["--seeds", "one"], "--seeds"),
    (["--weight-roms", "bram"], "--weight-roms"),
])
def test_bad_build_arguments_are_refused_before_any_work(export, tmp_path, extra, names):
    out = tmp_path / "out"
    run = build(export, out, *extra)
    assert_refused(run, code=2, nothing_in=out)
    assert names in run.err and REACHED not in run.err
    assert beside(out) == []


def test_bad_board_and_export_and_out_are_refused(export, tmp_path):
    out = tmp_path / "out"
    with no_synthesis():
        assert_refused(run_cli(["build", export.directory, "--board", "pynq", "--out", out]), nothing_in=out)
        run = run_cli(["build", tmp_path / "missing", "--board", "icebreaker", "--out", out])
        assert_refused(run, nothing_in=out)
        assert "no such export directory" in run.err
        (tmp_path / "empty").mkdir()
        run = run_cli(["build", tmp_path / "empty", "--board", "icebreaker", "--out", out])
        assert_refused(run, nothing_in=out)
        assert "manifest" in run.err
    for bad_out, says in ((export.directory, "overlaps the export"), (export.directory / "bits", "overlaps the export")):
        before = files_under(export.directory)
        assert_refused(build(export, bad_out), nothing_in=export.directory, before=before)
        assert says in build(export, bad_out).err
    (tmp_path / "a-file").write_text("mine")
    run = build(export, tmp_path / "a-file")
    assert_refused(run)
    assert "is a file" in run.err and (tmp_path / "a-file").read_text() == "mine"
    # a directory holding the user's own files is never replaced by a build
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    run = build(export, mine)
    assert_refused(run, nothing_in=mine, before=[mine / "notes.txt"])
    assert "notes.txt" in run.err
    # nor is a directory of that name beside it, where a failed build would keep its logs
    (tmp_path / "out2.failed").mkdir()
    (tmp_path / "out2.failed" / "thesis.tex").write_text("keep")
    run = build(export, tmp_path / "out2")
    assert_refused(run, nothing_in=tmp_path / "out2")
    assert "out2.failed exists" in run.err


def test_a_tool_variable_that_names_no_executable_is_refused(export, tmp_path, monkeypatch):
    monkeypatch.setenv("NEXTPNR_ICE40", str(tmp_path / "no-nextpnr"))
    out = tmp_path / "out"
    run = build(export, out)
    assert_refused(run, nothing_in=out)
    assert "NEXTPNR_ICE40=" in run.err and beside(out) == []


@pytest.mark.timeout(120)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mhz=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-20, 300), st.integers(-10, 500)))
def test_clock_is_accepted_exactly_in_the_pll_range(export, tmp_path, mhz):
    out = tmp_path / "out"
    run = build(export, out, "--clock-mhz", repr(float(mhz)))
    lo, hi = CLOCK_RANGE_MHZ["ice40"]
    ok = math.isfinite(mhz) and lo <= mhz <= hi
    event("accepted" if ok else "refused")
    assert_refused(run, code=2, nothing_in=out)
    assert (REACHED in run.err) == ok, run.err
    assert beside(out) == []


@pytest.mark.timeout(120)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(baud=st.one_of(st.integers(-10**7, 2 * 10**7), st.sampled_from([0, 1, 299, 300, 9600, 115200, 921600, 3_000_000])))
def test_baud_is_accepted_when_the_clock_makes_it(export, tmp_path, baud):
    out = tmp_path / "out"
    run = build(export, out, "--baud", str(baud))
    clock = 36e6  # the iCEBreaker's goal
    div = round(clock / baud) if baud > 0 else 0
    ok = BAUD_RANGE[0] <= baud <= BAUD_RANGE[1] and div >= 4 and abs(clock / div - baud) / baud <= 0.02
    event("accepted" if ok else "refused")
    assert_refused(run, code=2, nothing_in=out)
    assert (REACHED in run.err) == ok, run.err
    assert beside(out) == []
