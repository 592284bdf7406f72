"""The resource model: LUTs, flip-flops and block RAM of the gateware, part by part, per FPGA family.

A layer kind prices itself with these parts (`Dense.cost`); the solver (hw/plan/) only
adds up what the kinds report. MODELS says where the coefficients come from.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from fedxnor.contract import structure as hwc
from fedxnor.contract.bits import bits_for
from fedxnor.contract.devices import Device, get_device
from fedxnor.contract.structure import image_buffer_depth, rom_in_logic


@dataclass(frozen=True)
class ResourceModel:
    """LUT/FF model of hw/top.py's accelerator, part by part (docs/accelerator.md), per family.

    Per layer with (P, L), accumulator width A (as hw/array.py keeps it):
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
    # conv and max-pool parts (hw/linebuffer.py, hw/vectorbuffer.py, hw/convlayer.py, hw/pool.py), fitted on iCE40
    # part by part like the rest (see CONV_FIT); the ECP5 model scales them with `flatten` as it does the others
    line: float = 70.0  # WindowTaps' counters and address arithmetic, LUTs
    line_bit: float = 2.0  # ... per bit of a line-buffer word (C·B): the padding mux and the output register
    ff_line: float = 30.0
    ff_line_bit: float = 2.0
    conv_array: float = 0.75  # a conv layer's array (array_cost) synthesizes to 0.48..0.84 (median 0.75) of the LUTs
    # the dense fit gives it (its ROMs are shallow: M/P x k·k·C/L words)
    vec_bit: float = 1.05  # VectorBuffer (a window, the flattened map): LUTs per stored bit (0.8..1.5 measured)
    vec_fixed: float = 10.0  # ... and beside them
    ff_vec_fixed: float = 8.0  # FFs beside the stored bits and the L-bit read register
    # a VectorBuffer in RAM (hw/mapbuffer.py): counters, flags, write enable, and per bit of the RAM word its read
    # (the r:1 part select, and the AND with which memory_libmap gives the merged read register its init value 0);
    # fitted on synth_ice40 of 9 buffers (RAM words of 16..48 bits, 1..32 parts): within -8..+10 LUTs, FFs exact
    vram_fixed: float = 12.0
    vram_bit: float = 1.35
    collect: float = 25.0  # the ActivationBuffer that collects one output pixel's M bits: LUTs + collect_bit per bit
    collect_bit: float = 1.5
    ff_collect: float = 8.0  # FFs beside its 2 x M bits
    conv_glue: float = 9.0  # ConvLayer's bank toggles and busy
    pool_bit: float = 3.0  # MaxPoolUnit's OR register, LUTs per channel (plus 2 FFs per channel)
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
    """What one folded layer costs and how it times: the solver reads only this."""

    cycles: int  # T: tokens (array cycles) per image
    luts: float
    ffs: float
    bram: int
    rom_bits: int  # weight + threshold bits this layer stores
    drain: int = 0  # contract/cycles.py: D = R + P + DRAIN_FIXED (hidden), R + P + CREDIT_FIXED (output)
    own: int = 0  # the least II this layer allows alone: T, the intake's W*B, ceil((T + D) / 2) for the output
    spram: int = 0  # SB_SPRAM256KA cells of its weights (a layer in SPRAM, hw/weightstore.py)


def rom_tiles(width: int, depth: int, device: Device) -> int:
    """Block RAM tiles for a width x depth ROM: the best single tile shape, tiled in width and depth."""
    w, d = best_tile_shape(width, depth, device.bram_configs)
    return -(-width // w) * -(-depth // d)


def best_tile_shape(width: int, depth: int, configs: tuple[tuple[int, int], ...]) -> tuple[int, int]:
    """The (width, depth) block RAM shape that stores a width x depth ROM in the fewest tiles (the deepest on a
    tie). A weight ROM tiled in depth by it (hw/array.py) takes exactly rom_tiles blocks."""
    return min(configs, key=lambda c: (-(-width // c[0]) * -(-depth // c[1]), -c[1]))


def rom_cost(width: int, depth: int, device: Device, model: ResourceModel, *, weights: bool = True) -> tuple[int, float]:
    """(block RAM tiles, LUTs) of one ROM; `weights`: a weight ROM, which Device.weight_roms may put in LUTs."""
    bits = width * depth
    tiles = rom_tiles(width, depth, device)
    if depth <= 2:  # each data bit is a constant or one address bit: next to free in logic
        return 0, 0.0
    if ((weights and rom_in_logic(device.weight_roms, depth)) or bits <= model.force_logic_bits
            or bits * model.logic_cost_rom <= model.tile_cost * tiles + model.logic_margin):
        return 0, bits / model.lut_rom_bits_per_lut
    return tiles, 0.0


def image_buffer_cost(lanes: int, words: int, input_bits: int, device: Device,
                      model: ResourceModel) -> tuple[int, float, float]:
    """(block RAM tiles, LUTs, FFs) of the image buffer of a first layer reading `lanes` inputs per word."""
    depth = image_buffer_depth(words, input_bits)
    tiles = rom_tiles(lanes, depth, device)
    luts = model.intake_bit * lanes * input_bits
    ffs = model.ff_intake_lane * lanes
    if lanes * depth * model.logic_cost_ram <= model.tile_cost * tiles:  # a tiny RAM stays in FFs
        return 0, luts + lanes * depth / 2, ffs + lanes * depth
    return tiles, luts, ffs


def activation_buffer_cost(bits: int, model: ResourceModel) -> tuple[int, float, float]:
    """(block RAM tiles, LUTs, FFs) of an activation buffer holding `bits` per bank: 2 banks in FFs."""
    return 0, model.act_bit * 2 * bits, model.ff_act_bit * 2 * bits


def ram_cost(width: int, depth: int, device: Device, model: ResourceModel) -> tuple[int, float, float]:
    """(block RAM tiles, LUTs, FFs) of a RAM with one write and one read port (a line buffer): memory_libmap keeps
    it in flip-flops when bits * logic_cost_ram is at most the tiles' cost (then a depth:1 read mux per bit and a
    write decode, about a LUT per bit), on ECP5 in distributed RAM when its cells cost less (seen: every line
    buffer below ~1.5 Kbit), else it takes block RAM tiles of the best shape."""
    bits = width * depth
    tiles = rom_tiles(width, depth, device)
    if device.family == "ecp5":  # distributed RAM (TRELLIS_DPR16X4, 16 x 4 bits, cost 4 each) when cheaper
        cells = -(-width // 4) * -(-depth // 16)
        if 4 * cells < model.tile_cost * tiles:  # a tie goes to block RAM (seen: 16 x 128 and 32 x 64 bits)
            return 0, 2.0 * cells + width * (-(-depth // 16) - 1), 0.0  # a slice's two LUTs each, a depth mux
    if bits * model.logic_cost_ram <= model.tile_cost * tiles:
        return 0, float(bits), float(bits)
    return tiles, 0.0, 0.0


def line_buffer_cost(rows: int, width: int, word_bits: int, device: Device,
                     model: ResourceModel) -> tuple[int, float, float]:
    """(block RAM tiles, LUTs, FFs) of hw/linebuffer.py's WindowTaps: `rows` x `width` pixels of `word_bits` (C·B)
    in one RAM, its intake and tap counters, the padding mux."""
    tiles, luts, ffs = ram_cost(word_bits, rows * width, device, model)
    return (tiles, luts + model.line + model.line_bit * word_bits,
            ffs + model.ff_line + model.ff_line_bit * word_bits)


def vector_buffer_cost(pieces: int, width: int, lanes: int, bits: int, device: Device,
                       model: ResourceModel, *, split: bool = False) -> tuple[int, float, float]:
    """(block RAM tiles, LUTs, FFs) of hw/vectorbuffer.py's VectorBuffer, in the storage it picks
    (contract/structure.py vector_ram_width). Flip-flops: 2 banks of B planes of ceil(T·C / L) L-bit words, written
    a piece at a time, read through one word mux into an L-bit register. RAM (hw/mapbuffer.py): 2 banks x rows x Wm
    bits (ram_cost: block RAM, or flip-flops / distributed RAM when memory_libmap finds them cheaper), the packer's
    C·(n − 1) flip-flops, the r:1 part select after the read, the counters; split (the flattened map), a piece
    written as h = C / Wm words: an h:1 mux on the write data instead of the packer."""
    wm = hwc.vector_ram_width(pieces, width, lanes, bits, split=split)
    if wm:
        rows = hwc.vector_ram_rows(pieces, width, wm)
        tiles, luts, ffs = ram_cost(wm, 2 * rows, device, model)
        h = hwc.vector_piece_cycles(width, wm)
        if h > 1:
            return (tiles, luts + model.vram_fixed + model.vram_bit * wm + (h - 1) * wm,
                    ffs + bits_for(2 * rows) + bits_for(wm // lanes) + 4)  # row, part select, part, bank, full
        counters = bits_for(wm // width) + bits_for(rows) + bits_for(wm // lanes) + 3  # slot, row, part, bank, full
        read_reg = wm if tiles == 0 else 0  # in a block RAM the read register is the RAM's own
        return (tiles, luts + model.vram_fixed + model.vram_bit * wm,
                ffs + width * (wm // width - 1) + counters + read_reg)
    stored = 2 * bits * -(-(pieces * width) // lanes) * lanes
    return 0, model.vec_bit * stored + model.vec_fixed, stored + lanes + model.ff_vec_fixed


def collector_cost(bits: int, model: ResourceModel) -> tuple[int, float, float]:
    """(block RAM tiles, LUTs, FFs) of the ActivationBuffer a conv layer collects one output pixel's M bits in."""
    return 0, model.collect + model.collect_bit * bits, 2 * bits + model.ff_collect


@dataclass(frozen=True)
class ArrayCost:
    """What one M x K matrix folded onto P rows x L lanes costs without its input buffer: sequencer, rows,
    lane groups, weight and threshold ROMs (hw/sequencer.py, hw/array.py). LUTs before `flatten`."""

    luts: float
    ffs: float
    bram: int
    rom_bits: int
    spram: int  # SB_SPRAM256KA cells of its weights (spram=True)
    groups: int  # lane groups: P, + 1 for an unsigned layer's popcount of x_b
    read_regs_ffs: int  # with Device.read_regs: the weight and chunk registers of every row, the ROM address copies


def array_cost(spec: Any, fold: Any, device: Device, model: ResourceModel, *, spram: bool = False) -> ArrayCost:
    """The array part every matrix kind shares (contract/matrix.py's M = fan_out, K = fan_in); `spec` is the kind
    (Dense, Conv), `fold` its Folding. spram: the weights in SPRAM (no block RAM or ROM logic; a 14-bit address mux
    per row)."""
    p, lanes = fold.pe, fold.simd
    depth = spec.weight_depth(fold)
    aw = spec.acc_width
    if spram:
        tiles, rom_luts, cells = 0, 14.0 * p, p * hwc.spram_cells(lanes, depth)
    else:
        tiles, rom_luts = rom_cost(lanes, depth, device, model)
        tiles, rom_luts, cells = tiles * p, rom_luts * p, 0
    # read_regs: a weight ROM of LUTs reads through an address register per ROM_BITS_PER_ADDRESS word bits
    address_copy_ffs = (p * hwc.slice_count(lanes, hwc.ROM_BITS_PER_ADDRESS) * bits_for(depth)
                        if device.read_regs and not (spram or tiles) else 0)
    rom_bits = p * lanes * depth
    if not spec.is_output:
        tw = spec.acc_width  # the threshold width holds [lo, hi + 1], as the accumulator does
        t_tiles, t_luts = rom_cost(tw, spec.fan_out // p, device, model, weights=False)
        tiles += t_tiles * p
        rom_luts += t_luts * p
        rom_bits += tw * spec.fan_out
    groups = p + (1 if spec.encoding != "bipolar" else 0)  # + the pcx popcount of x_b (unsigned or signed planes)
    levels = hwc.tree_levels(lanes)
    late_ffs = levels * (8 + max(1, (spec.fan_out // p - 1).bit_length()) + lanes.bit_length())
    luts = model.layer + p * (model.row + model.row_bit * aw) + groups * lanes * model.lane + rom_luts
    ffs = model.ff_layer + p * (lanes + model.ff_row + aw) + groups * lanes * model.ff_lane + late_ffs
    regs = 3 * groups * lanes + lanes + address_copy_ffs  # a, w and the RAM-side w of every row, the lagging chunk
    return ArrayCost(luts, ffs, tiles, rom_bits, cells, groups, regs)


def weight_register_ffs(spec: Any, fold: Any, device: Device, model: ResourceModel, *, spram: bool = False) -> int:
    """FFs of the registers a conv network's fully connected layer puts between its weights and its lanes on every
    device (hw/top.py: SystolicArray in_reg, WEIGHT_REG_CYCLES): array_cost's read_regs_ffs as if the device had
    read registers (the weight and chunk registers of every row, a LUT ROM's address copies), without the input
    buffer's read stage, which a conv network's tail does not get."""
    return array_cost(spec, fold, replace(device, read_regs=True), model, spram=spram).read_regs_ffs


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


def packed_cells(luts: float, ffs: float, top_lcs: float) -> float:
    """LC_FIT's rule: packed iCE40 logic cells of `luts` and `ffs` (model figures) beside a top of `top_lcs`."""
    return LC_FIT["per_lut"] * luts + LC_FIT["per_ff"] * ffs + top_lcs


def logic_cells(device: str | Device, luts: float, ffs: float) -> float:
    """Predicted packed logic cells of a board build whose accelerator has `luts` and `ffs` (model figures)."""
    dev = get_device(device)
    if not dev.lcs:
        return 0.0
    return packed_cells(luts, ffs, dev.top_lcs)


def column_window_cost(k: int, padded_w: int, word_bits: int, vector_bits: int, lanes: int,
                       device: Device, model: ResourceModel, *, groups: int = 1, planes: int = 1) -> tuple[int, float, float]:
    """(block RAM tiles, LUTs, FFs) of hw/colwindow.py's ColumnWindow: a column memory of W + 2·pad words of
    (k − 1)·C·B bits, the window register's k − 1 columns of k·C·B bits, two hold banks of the window's B planes
    (`vector_bits` = groups·B·ceil(K / L)·L each) read through one word mux, the walker's counters; and the registers
    that put the window a cycle behind the walker (WINDOW_LAG): the new column (k·C·B bits), a copy of the walker's
    go per SELECT_BITS window bits and of each bank's load per SELECT_BITS bits of a plane, the banks' ready flags; the
    column memory's registered read address, write address and go (one per SELECT_BITS bits of its word). Not
    yet fitted to synthesis: the line buffer's and vector buffer's coefficients, which price the same kinds of parts."""
    tiles, luts, ffs = ram_cost((k - 1) * word_bits, padded_w, device, model) if k > 1 else (0, 0.0, 0.0)
    register = (k - 1) * k * word_bits
    stored = 2 * vector_bits
    luts += model.line + model.line_bit * word_bits + model.vec_bit * stored + model.vec_fixed
    copies = (hwc.slice_count(register, hwc.SELECT_BITS) if register else 0) + 2 * groups * hwc.slice_count(
        max(1, vector_bits // (groups * planes)), hwc.SELECT_BITS)
    ffs += model.ff_line + register + stored + lanes + model.ff_vec_fixed + k * word_bits + copies + 2 * groups
    if k > 1:  # the column memory driven by registers: its read address, go a cycle late per slice, the late write's address
        address = bits_for(padded_w)
        lag = address if padded_w >= hwc.COLUMN_WRITE_LAG_MIN_WIDTH else 0
        ffs += address + hwc.slice_count((k - 1) * word_bits, hwc.SELECT_BITS) + lag
    return tiles, luts, ffs


def pixel_collector_cost(bits: int, pe: int, slots: int, model: ResourceModel) -> tuple[int, float, float]:
    """(block RAM tiles, LUTs, FFs) of hw/collector.py's PixelCollector: S slots of M bits in FFs, each row's
    slot-select enables (P·S), the S:1 output mux (about half a LUT4 per input bit), the row pointers and counts."""
    ptr = bits_for(slots) + bits_for(max(1, bits // pe))
    luts = model.collect + 0.5 * bits * slots + pe * slots + 2 * pe
    ffs = bits * slots + pe * ptr + 3 * bits_for(slots + 1) + model.ff_collect
    return 0, luts, ffs
