"""Which PLL clock a board build tries next, from the attempts so far (pure: tested without the tools).

A build starts at the board's target clock. When the routed Fmax misses it, the next attempt lowers the clock to
just below the slowest placement so far. nextpnr places for the clock it is given, so a lower target can route
well above that target (ULX3S conv: 69.8 MHz at a 71.9 MHz clock, then 75.6 MHz at 66.7): once an attempt meets
timing with that much slack, one more attempt tries a clock between the met and the missed one, and the build
keeps the fastest attempt that met timing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MARGIN = 0.97  # below the slowest placement so far: the next placement differs a little
SLACK = 1.03  # a met attempt this far above its clock is worth one attempt between
MIN_STEP = 1.02  # ... if the clock between is at least this far above the met clock


def met(attempt: dict[str, Any]) -> bool:
    return attempt["fmax_mhz"] >= attempt["clock_mhz"]


def next_clock_mhz(attempts: Sequence[dict[str, Any]], retries_left: int, refine: bool) -> tuple[float, str] | None:
    """(the next attempt's target clock in MHz, why) or None when the search is over.

    attempts: {'clock_mhz', 'fmax_mhz'} of every attempt so far, in order; retries_left: lowered-clock rebuilds still
    allowed after a miss; refine: whether the one attempt between a met and a missed clock is still allowed."""
    last = attempts[-1]
    if not met(last):
        if retries_left <= 0:
            return None
        target = min(a["fmax_mhz"] for a in attempts) * MARGIN
        return target, (f"routed Fmax {last['fmax_mhz']:.1f} MHz < clock {last['clock_mhz']:.2f} MHz; rebuilding with "
                        f"the PLL at <= {target:.1f} MHz")
    missed = [a["clock_mhz"] for a in attempts if not met(a) and a["clock_mhz"] > last["clock_mhz"]]
    if not refine or not missed or last["fmax_mhz"] < last["clock_mhz"] * SLACK:
        return None
    target = (last["clock_mhz"] + min(last["fmax_mhz"], min(missed))) / 2
    if target < last["clock_mhz"] * MIN_STEP:
        return None
    return target, (f"routed Fmax {last['fmax_mhz']:.1f} MHz at a {last['clock_mhz']:.2f} MHz clock, below the "
                    f"{min(missed):.2f} MHz that missed; one more build with the PLL at <= {target:.1f} MHz")


def chosen(attempts: Sequence[dict[str, Any]]) -> int:
    """Index of the attempt the build keeps: the fastest clock that met timing, else the last attempt."""
    ok = [i for i, a in enumerate(attempts) if met(a)]
    return max(ok, key=lambda i: (attempts[i]["clock_mhz"], i)) if ok else len(attempts) - 1
