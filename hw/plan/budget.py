"""What the solver may spend on a device: LUTs, flip-flops, block RAM and (iCE40) packed logic cells."""

from __future__ import annotations

from dataclasses import dataclass

from fedxnor.contract.cost import packed_cells
from fedxnor.contract.devices import Device
from fedxnor.errors import FedxnorError

DEFAULT_LC_SHARE = 0.9  # the solver's target: routed designs land within ~200 cells of the model


@dataclass(frozen=True)
class Budget:
    luts: float
    ffs: float
    bram: int
    lcs: float = float("inf")  # packed logic cells (iCE40), board top included
    top_lcs: float = 0.0

    def lc(self, luts: float, ffs: float) -> float:
        return packed_cells(luts, ffs, self.top_lcs)

    def fits(self, luts: float, ffs: float, bram: int) -> bool:
        return luts <= self.luts and ffs <= self.ffs and bram <= self.bram and self.lc(luts, ffs) <= self.lcs


def budget_for(device: Device, max_lut_share: float, max_lc_share: float = DEFAULT_LC_SHARE,
               loader: bool = False) -> Budget:
    """LUTs and FFs up to max_lut_share of the device, logic cells (iCE40, board top included) up to
    max_lc_share (room for place and route and the model's error), every block RAM; with `loader` (a layer
    in SPRAM) less the weight loader's logic cells and block RAMs."""
    if not 0 < max_lut_share <= 1:
        raise FedxnorError(f"max_lut_share must be in (0, 1], got {max_lut_share}")
    if not 0 < max_lc_share <= 1:
        raise FedxnorError(f"max_lc_share must be in (0, 1], got {max_lc_share}")
    lcs = device.lcs * max_lc_share if device.lcs else float("inf")
    return Budget(luts=device.luts * max_lut_share, ffs=device.ffs * max_lut_share,
                  bram=device.bram - (device.loader_bram if loader else 0), lcs=lcs,
                  top_lcs=float(device.top_lcs + (device.loader_lcs if loader else 0)))
