"""Every `fedxnor build` argument checked before any work: one FedxnorError line (exit 2), nothing written.

check_build_args() runs before the fit check and long before synthesis: the
board, the PLL target (--clock-mhz), the UART rate (--baud), the nextpnr seeds,
the weight-ROM placement, the output directory (and its `.failed` sibling, where
a failed build's logs are kept) and the export directory itself. 0 is never
"the default" and NaN never a number.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedxnor.boards.frames import BAUD_RANGE
from fedxnor.boards.platforms import BOARDS, Board, get_board
from fedxnor.boards.uart import divisor_for
from fedxnor.errors import FedxnorError

# the PLL output ranges of the data sheets (iCE40 SB_PLL40: 16-275 MHz; ECP5 EHXPLLL CLKOP: 3.125-400 MHz)
CLOCK_RANGE_MHZ = {"ice40": (16.0, 275.0), "ecp5": (3.125, 400.0)}
SEED_RANGE = (0, 2**31 - 1)  # nextpnr takes a signed 32-bit seed
MAX_SEEDS = 16  # each seed is a whole place and route
WEIGHT_ROMS = ("auto", "logic", "shallow")
FAILED_SUFFIX = ".failed"  # OUT.failed/: the build directory of the last failed build, logs included
# what a build directory holds (and the flow's stage record): only such a directory is replaced whole
BUILD_ENTRIES = {"build", "report.json", "stage.json", "error.txt"} | {f"{b}.{e}" for b in BOARDS for e in ("bin", "bit")}


@dataclass(frozen=True)
class BuildArgs:
    board: Board
    out: Path
    baud: int
    target_mhz: float | None  # None: the board's goal
    weight_roms: str
    seeds: tuple[int, ...] | None  # None: the board's


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _whole(value: Any) -> bool:
    return _number(value) and math.isfinite(value) and value == int(value)


def check_clock(board: Board, mhz: Any) -> float | None:
    if mhz is None:
        return None
    lo, hi = CLOCK_RANGE_MHZ[board.family]
    if not _number(mhz) or not math.isfinite(mhz) or not lo <= mhz <= hi:
        shown = f"{mhz:g}" if _number(mhz) else repr(mhz)
        raise FedxnorError(f"--clock-mhz {shown}: choose {lo:g}..{hi:g} MHz for {board.name} (its PLL's output range), "
                           f"or leave it out for the board's goal of {board.target_mhz:g} MHz")
    return float(mhz)


def check_baud(board: Board, baud: Any, clock_mhz: float) -> int:
    if baud is None:
        return board.baud
    if not _whole(baud) or not BAUD_RANGE[0] <= baud <= BAUD_RANGE[1]:
        raise FedxnorError(f"--baud {baud}: choose a baud rate in {BAUD_RANGE[0]}..{BAUD_RANGE[1]} "
                           f"(default {board.baud})")
    try:
        divisor_for(clock_mhz * 1e6, int(baud))
    except ValueError as e:
        raise FedxnorError(f"--baud {baud}: {e}; choose a rate at most a quarter of the clock that the clock "
                           f"divides within 2 %, e.g. {board.baud}") from None
    return int(baud)


def check_seeds(seeds: Any) -> tuple[int, ...] | None:
    if seeds is None:
        return None
    seeds = list(seeds)
    bad = not seeds or len(seeds) > MAX_SEEDS or len(set(seeds)) != len(seeds) or \
        any(not _whole(s) or not SEED_RANGE[0] <= s <= SEED_RANGE[1] for s in seeds)
    if bad:
        raise FedxnorError(f"--seeds {' '.join(map(str, seeds))}: give 1..{MAX_SEEDS} different integers in "
                           f"{SEED_RANGE[0]}..{SEED_RANGE[1]}, e.g. --seeds 1 2")
    return tuple(int(s) for s in seeds)


def failed_dir(out: Path) -> Path:
    return Path(out).with_name(Path(out).name + FAILED_SUFFIX)


def is_failed_dir(path: Path) -> bool:
    """A directory a failed build left (tryN/ and the seed stand-in), which a later build may replace."""
    return path.is_dir() and all(re.fullmatch(r"try\d+|nextpnr-seeds\.sh", p.name) for p in path.iterdir())


def check_out(out: Any, export_dir: Path) -> Path:
    """An output directory a build may replace whole: new, empty, or a previous build's."""
    if out is None or str(out).strip() == "":
        raise FedxnorError("--out is empty: name the output directory, e.g. --out build/icebreaker")
    out = Path(out)
    where = Path(os.path.abspath(out))
    exp = Path(os.path.abspath(export_dir))
    if where == exp or exp.is_relative_to(where) or where.is_relative_to(exp):
        raise FedxnorError(f"--out {out} overlaps the export directory {export_dir}; choose a directory outside it, "
                           "e.g. --out build/BOARD")
    if where.exists() and not where.is_dir():
        raise FedxnorError(f"--out {out} is a file; name a directory (it is created)")
    if where.is_dir():
        foreign = sorted(p.name for p in where.iterdir() if p.name not in BUILD_ENTRIES)
        if foreign:
            raise FedxnorError(f"--out {out} holds files a build did not write ({', '.join(foreign[:3])}); the build "
                               "replaces the whole directory, so choose a new or empty one")
    failed = failed_dir(where)
    if failed.exists() and not is_failed_dir(failed):
        raise FedxnorError(f"{failed} exists and is not a failed build's log directory; remove it or choose another --out")
    parent = where.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise FedxnorError(f"--out {out}: cannot create it in {parent} (not a writable directory); choose another --out")
    return out


def check_build_args(export_dir: Any, board: Any, out_dir: Any, *, baud: Any = None, target_mhz: Any = None,
                     weight_roms: Any = None, seeds: Any = None) -> BuildArgs:
    """Every argument of build_board, before anything is read, elaborated or written."""
    b = get_board(board)
    target = check_clock(b, target_mhz)
    rate = check_baud(b, baud, target or b.target_mhz)
    seed_list = check_seeds(seeds)
    if weight_roms is not None and weight_roms not in WEIGHT_ROMS:
        raise FedxnorError(f"--weight-roms {weight_roms}: choose one of {', '.join(WEIGHT_ROMS)}")
    out = check_out(out_dir, Path(export_dir))
    return BuildArgs(b, out, rate, target, weight_roms or b.resources.weight_roms, seed_list)

