"""The boards fedxnor builds for: amaranth-boards platform, device resources, clock, PLL settings.

The device's resources (LUT4s, FFs, block RAMs, SPRAM, DSP) are held once, in
fedxnor.contract.devices.DEVICES, which the folding solver budgets against; a Board
names its device there (`plan_device`) and adds what is the board's own: platform,
oscillator, PLL target, baud rate.
"""

from __future__ import annotations

from dataclasses import dataclass

from fedxnor.contract.devices import DEVICES, Device
from fedxnor.contract.folding import Folding
from fedxnor.errors import FedxnorError


@dataclass(frozen=True)
class Board:
    name: str
    platform: str  # amaranth_boards module:class
    device: str  # the part's name, as the vendor writes it
    plan_device: str  # the device the folding solver budgets against (contract/devices.py)
    clk_hz: float  # the board's oscillator
    target_mhz: float  # PLL target (the Fmax goal); lowered to the post-route Fmax when that is less
    baud: int = 115200
    # nextpnr seeds placed and routed per build (two at a time), the fastest kept (boards/pnr_seeds.py):
    # the placement's luck moves Fmax by ~14 MHz on the ULX3S sfc and ~10% on a nearly full UP5K
    pnr_seeds: tuple[int, ...] = (1, 2)

    @property
    def resources(self) -> Device:
        """The device's resources, from the one table the folding solver also uses."""
        return DEVICES[self.plan_device]

    @property
    def family(self) -> str:  # ice40 | ecp5
        return self.resources.family

    def make_platform(self):
        import importlib

        module, cls = self.platform.split(":")
        return getattr(importlib.import_module(module), cls)()


BOARDS: dict[str, Board] = {
    b.name: b
    for b in (
        Board("icebreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform", "iCE40UP5K", "up5k", 12e6,
              target_mhz=36.0),
        Board("ice40-hx8k", "amaranth_boards.ice40_hx8k_b_evn:ICE40HX8KBEVNPlatform", "iCE40HX8K", "hx8k", 12e6,
              target_mhz=80.0),
        Board("ulx3s-85f", "amaranth_boards.ulx3s:ULX3S_85F_Platform", "LFE5U-85F", "ecp5-85", 25e6, target_mhz=120.0),
    )
}


def get_board(name: str) -> Board:
    if name not in BOARDS:
        raise FedxnorError(f"unknown board {name!r}: choose one of {', '.join(BOARDS)}")
    return BOARDS[name]


# ------------------------------------------------------------------ PLL settings


@dataclass(frozen=True)
class ICE40PLL:
    divr: int
    divf: int
    divq: int
    filter_range: int
    fout_hz: float


@dataclass(frozen=True)
class ECP5PLL:
    clki_div: int
    clkfb_div: int
    clkop_div: int
    clkop_cphase: int
    fout_hz: float


def ice40_pll(fin_hz: float, target_hz: float) -> ICE40PLL:
    """The fastest SB_PLL40 (SIMPLE feedback) output not above target_hz, as icepll searches it."""
    best = None
    fin = fin_hz / 1e6
    for divr in range(16):
        fpfd = fin / (divr + 1)
        if not 10 <= fpfd <= 133:
            continue
        for divf in range(128):
            fvco = fpfd * (divf + 1)
            if not 533 <= fvco <= 1066:
                continue
            for divq in range(1, 7):
                fout = fvco / (1 << divq)
                if fout * 1e6 <= target_hz + 1 and (best is None or fout > best[0]):
                    best = (fout, divr, divf, divq, fpfd)
    if best is None:
        raise FedxnorError(f"no iCE40 PLL setting reaches {target_hz / 1e6:.1f} MHz or less from {fin} MHz; pick >= 16 MHz")
    fout, divr, divf, divq, fpfd = best
    fr = 1 if fpfd < 17 else 2 if fpfd < 26 else 3 if fpfd < 44 else 4 if fpfd < 66 else 5 if fpfd < 101 else 6
    return ICE40PLL(divr, divf, divq, fr, fout * 1e6)


def ecp5_pll(fin_hz: float, target_hz: float) -> ECP5PLL:
    """The fastest EHXPLLL CLKOP output not above target_hz, as ecppll searches it."""
    best = None
    fin = fin_hz / 1e6
    for clki in range(1, 129):
        fpfd = fin / clki
        if not 3.125 <= fpfd <= 400:
            continue
        for fb in range(1, 81):
            fout = fpfd * fb
            if fout * 1e6 > target_hz + 1 or (best is not None and fout <= best[0]):
                continue
            for op in range(1, 129):
                fvco = fout * op
                if 400 <= fvco <= 800:
                    best = (fout, clki, fb, op)
                    break
    if best is None:
        raise FedxnorError(f"no ECP5 PLL setting reaches {target_hz / 1e6:.1f} MHz or less from {fin} MHz")
    fout, clki, fb, op = best
    return ECP5PLL(clki, fb, op, (op - 1) // 2, fout * 1e6)


def foldings_for_board(export, board: str) -> list[Folding]:
    """The solver's foldings for the FPGA of a named board (layer 0 in SPRAM on the UP5K when block RAM is too small)."""
    from fedxnor.hw.plan.solver import solve_foldings

    return solve_foldings(export, get_board(board).plan_device, spram=True)
