"""The flip-flop after each ECP5 block-RAM read moves into the RAM's output register (boards/ecp5_outreg.py):
on netlists Yosys synthesized from the accelerator's own rows, and through nextpnr-ecp5 to a configuration."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog
from fxnets import random_network
from tool_paths import NEXTPNR_ECP5, YOSYS

from fedxnor.boards.ecp5_outreg import absorb_ram_output_registers
from fedxnor.boards.pnr_seeds import RAM_OUTREG_FLAG, SUMMARY
from fedxnor.boards.pnr_seeds import main as pnr_seeds_main
from fedxnor.contract.cost import best_tile_shape, rom_tiles
from fedxnor.contract.devices import get_device
from fedxnor.export.manifest import Folding, load_export, write_export
from fedxnor.hw.array import ArrayShape, ProcessingRow


def synth_row(tmp_path: Path, in_reg: bool, fold: Folding | None = None, tile_depth: int | None = None,
              hidden: int = 64) -> dict:
    """synth_ecp5 of one processing row of a 784-`hidden`-10 network (folded 8x72: its 72-bit weight words span two
    DP16KD)."""
    net = random_network(np.random.default_rng(0), [784, hidden, 10])
    ex = load_export(write_export(net, tmp_path / "exp", [fold or Folding(8, 72), Folding(2, 64)]))
    shape = ArrayShape(ex.layers[0], in_reg=in_reg, tile_depth=tile_depth)
    row = ProcessingRow(shape, 0, ex.weight_words[0][0], ex.threshold_words[0][0])
    (tmp_path / "row.v").write_text(verilog.convert(row, name="row"))
    # YoWASP's WebAssembly sandbox sees the working directory: relative names
    subprocess.run([YOSYS, "-q", "-p", "read_verilog row.v; synth_ecp5 -abc9 -top row; write_json row.json"],
                   check=True, capture_output=True, text=True, cwd=tmp_path)
    return json.loads((tmp_path / "row.json").read_text())


@pytest.fixture(scope="module")
def registered(tmp_path_factory) -> tuple[Path, dict]:
    d = tmp_path_factory.mktemp("outreg")
    return d, synth_row(d, in_reg=True)


def cells_of(netlist: dict, kind: str) -> dict[str, dict]:
    return {n: c for n, c in netlist["modules"]["row"]["cells"].items() if c["type"] == kind}


def used_ram_outputs(netlist: dict) -> dict[int, str]:
    """{net bit: the RAM driving it} for every DP16KD data output that drives a cell."""
    loads = {b for c in netlist["modules"]["row"]["cells"].values() for p, bits in c["connections"].items()
             if c["port_directions"].get(p) == "input" for b in bits}
    return {bits[0]: n for n, c in cells_of(netlist, "DP16KD").items() for p, bits in c["connections"].items()
            if p.startswith("DO") and bits[0] in loads}


def test_each_flip_flop_after_a_ram_moves_into_it(registered):
    _, before = registered
    after = copy.deepcopy(before)
    rams, ffs = cells_of(before, "DP16KD"), cells_of(before, "TRELLIS_FF")
    assert len(rams) == 2
    # the flip-flops each RAM output drives (w_near, hw/array.py) and the nets they drive
    reg = {n: ff for n, ff in ffs.items() if ff["connections"]["DI"][0] in used_ram_outputs(before)}
    assert len(reg) == 72  # 72 lanes, one register each

    assert absorb_ram_output_registers(after) == 72
    assert set(cells_of(after, "TRELLIS_FF")) == set(ffs) - set(reg)
    for ram in cells_of(after, "DP16KD").values():
        assert (ram["parameters"]["REGMODE_A"], ram["parameters"]["REGMODE_B"]) == ("OUTREG", "OUTREG")
        assert ram["connections"]["OCEA"] == ram["connections"]["OCEB"] == ["1"]
    # each RAM output now drives what its flip-flop's output drove, with the same clock
    driven = {bits[0] for c in cells_of(after, "DP16KD").values() for p, bits in c["connections"].items()
              if p.startswith("DO")}
    assert {ff["connections"]["Q"][0] for ff in reg.values()} <= driven
    assert {ff["connections"]["CLK"][0] for ff in reg.values()} == {
        r["connections"]["CLKB"][0] for r in rams.values()}


def test_a_deep_rom_in_tiles_reads_every_block_through_its_output_register(tmp_path):
    """784-128-10 folded 1x72: 1,408 words of 72 bits, 36x512 blocks 2 wide and 3 deep (best_tile_shape). Whole,
    Yosys cascades them in depth and muxes their unregistered outputs in LUTs before w_near, so no register can
    move; in 512-deep tiles (hw/array.py, ECP5's weight_tiles) each block's 36 outputs feed their own register, and
    all 216 move into the blocks."""
    ex_depth, tile = 1408, best_tile_shape(72, 1408, get_device("ecp5-85").bram_configs)
    assert tile == (36, 512)
    whole = synth_row(tmp_path / "whole", in_reg=True, fold=Folding(1, 72), hidden=128)
    assert len(weight_rams(whole)) == 6 and absorb_ram_output_registers(whole) == 0
    tiled = synth_row(tmp_path / "tiled", in_reg=True, fold=Folding(1, 72), hidden=128, tile_depth=tile[1])
    assert len(weight_rams(tiled)) == 6 == rom_tiles(72, ex_depth, get_device("ecp5-85"))
    assert absorb_ram_output_registers(tiled) == 216
    assert all(r["parameters"]["REGMODE_B"] == "OUTREG" for r in weight_rams(tiled).values())


def weight_rams(netlist: dict) -> dict[str, dict]:
    """The DP16KD of the weight ROM (the threshold ROM `trom` is read into the compare, not a register)."""
    return {n: c for n, c in cells_of(netlist, "DP16KD").items() if not n.startswith("trom")}


def test_a_flip_flop_with_an_enable_stays_outside(registered):
    _, before = registered
    netlist = copy.deepcopy(before)
    outputs = used_ram_outputs(netlist)
    ffs = cells_of(netlist, "TRELLIS_FF")
    gated = next(ff for ff in ffs.values() if ff["connections"]["DI"][0] in outputs)
    gated["parameters"]["CEMUX"] = "CE"
    gated["connections"]["CE"] = [next(iter(netlist["modules"]["row"]["ports"]["rst"]["bits"]))]
    ram = outputs[gated["connections"]["DI"][0]]
    assert absorb_ram_output_registers(netlist) == 36  # the other RAM's 36 only
    assert cells_of(netlist, "DP16KD")[ram]["parameters"]["REGMODE_B"] == "NOREG"
    assert gated in cells_of(netlist, "TRELLIS_FF").values()


def test_a_ram_read_into_logic_is_left_alone(tmp_path):
    netlist = synth_row(tmp_path, in_reg=False)  # the RAM feeds the lanes' XNOR directly
    before = copy.deepcopy(netlist)
    assert absorb_ram_output_registers(netlist) == 0
    assert netlist == before


def test_nextpnr_places_the_rams_with_their_output_registers(registered, monkeypatch):
    d, netlist = registered
    monkeypatch.chdir(d)
    argv = ["--25k", "--package", "CABGA256", "--speed", "6", "--json", "row.json", "--textcfg", "row.config",
            "--report", "row_report.json", "--log", "row.tim", "--freq", "100", "--quiet", "--timing-allow-fail",
            "--lpf-allow-unconstrained"]
    assert pnr_seeds_main([NEXTPNR_ECP5, "1", "1", RAM_OUTREG_FLAG, *argv]) == 0
    assert json.loads(Path(SUMMARY).read_text())["ram_output_registers"] == 72
    assert json.loads(Path("row.json").read_text()) == netlist  # Yosys' netlist is kept; nextpnr read a copy
    config = Path("row.config").read_text()
    assert config.count("REGMODE_A OUTREG") == config.count("REGMODE_B OUTREG") == 2
    assert "NOREG" not in config
