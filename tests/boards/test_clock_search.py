"""boards/clock_search.py: the clocks a board build tries and the attempt it keeps."""

import pytest

from fedxnor.boards.clock_search import chosen, next_clock_mhz


def a(clock, fmax):
    return {"clock_mhz": clock, "fmax_mhz": fmax}


def test_met_at_first_stops():
    assert next_clock_mhz([a(70, 73)], retries_left=2, refine=True) is None


def test_miss_lowers_below_the_slowest_placement():
    target, why = next_clock_mhz([a(72, 70), a(69, 68)], retries_left=1, refine=True)
    assert target == pytest.approx(68 * 0.97)
    assert "68.0 MHz < clock 69.00" in why


def test_miss_without_retries_stops():
    assert next_clock_mhz([a(72, 70)], retries_left=0, refine=True) is None


def test_met_with_slack_after_a_miss_tries_between():
    # the ULX3S conv build: 69.76 MHz at 71.88, then 75.63 at 66.67
    target, _ = next_clock_mhz([a(71.88, 69.76), a(66.67, 75.63)], retries_left=1, refine=True)
    assert 66.67 * 1.02 <= target < 71.88
    assert target == pytest.approx((66.67 + 71.88) / 2)


def test_between_is_capped_by_the_met_fmax():
    target, _ = next_clock_mhz([a(80, 60), a(58, 62)], retries_left=1, refine=True)
    assert target == pytest.approx((58 + 62) / 2)


@pytest.mark.parametrize("attempts, refine", [
    ([a(71.88, 69.76), a(66.67, 75.63)], False),  # already refined once
    ([a(71.88, 69.76), a(66.67, 67.5)], True),  # met with little slack
    ([a(66.67, 75.63)], True),  # nothing missed above it
    ([a(70.0, 69.0), a(69.5, 71.9)], True),  # the clock between is hardly higher
])
def test_no_refinement(attempts, refine):
    assert next_clock_mhz(attempts, retries_left=1, refine=refine) is None


def test_keeps_the_fastest_met_attempt():
    assert chosen([a(71.88, 69.76), a(66.67, 75.63), a(69.3, 70.1)]) == 2
    assert chosen([a(71.88, 69.76), a(66.67, 75.63), a(69.3, 68.0)]) == 1
    assert chosen([a(72, 70), a(68, 66)]) == 1  # none met: the last
