"""Weight ROM tiles (NetworkTop weight_tiles, Device.weight_tiles on ECP5): a deep weight ROM built as single-block
tiles, each read into its own register, then the tile mux. Same results, same activation bits and the same cycle of
every result as the one-ROM build; the planner's build options turn them on for ECP5 only."""

from __future__ import annotations

import pytest
from amaranth.back import rtlil
from hw_helpers import run_images
from test_top import check_against_reference, make_export

from fedxnor.contract.cost import best_tile_shape, rom_tiles
from fedxnor.contract.devices import get_device
from fedxnor.export.manifest import Folding
from fedxnor.hw.plan.plan import build_options
from fedxnor.hw.top import NetworkTop


@pytest.mark.parametrize("tile_depth", [64, 128])
def test_tiled_weight_roms_keep_every_bit_and_every_cycle(tmp_path, rng, tile_depth):
    """Layer 0: 400 words of 10 bits in 7 or 4 tiles (the last one part-full, 16 words: a LUT ROM)."""
    ex = make_export(tmp_path, rng, [200, 40, 4], [Folding(2, 10), Folding(2, 8)], 2)
    assert ex.layers[0].weight_depth == 400
    x = rng.integers(0, 4, (5, 200))
    plain = NetworkTop(ex, debug=True, read_regs=True)
    tiled = NetworkTop(ex, debug=True, read_regs=True, weight_tiles=((10, tile_depth),))
    text = rtlil.convert(tiled)
    assert f"w_tile{-(-400 // tile_depth) - 1}" in text and f"w_tile{-(-400 // tile_depth)}" not in text
    assert "w_tile" not in rtlil.convert(plain)
    a, b = run_images(plain, x), run_images(tiled, x)
    check_against_reference(tiled, ex, x, b)  # classes and every hidden activation bit
    assert [c - b.first_offer for c in b.result_cycles] == [c - a.first_offer for c in a.result_cycles]


def test_tiles_need_the_second_weight_register(tmp_path, rng):
    """Without in_reg (no read_regs, no conv front) there is no register to spare: the ROM stays whole."""
    ex = make_export(tmp_path, rng, [200, 40, 4], [Folding(2, 10), Folding(2, 8)], 2)
    assert "w_tile" not in rtlil.convert(NetworkTop(ex, weight_tiles=((10, 64),)))


def test_build_options_tile_on_ecp5_only():
    from fedxnor.contract.dense import Dense

    specs = [Dense(784, 64), Dense(64, 10, is_output=True)]
    assert build_options("ecp5-85", specs)["weight_tiles"] == get_device("ecp5-85").bram_configs
    assert build_options("ecp5-85", specs)["read_regs"] is True
    assert build_options("up5k", specs) == {"read_regs": False, "weight_roms": "auto", "weight_tiles": ()}


@pytest.mark.parametrize("width, depth", [(64, 3136), (24, 768), (12, 2000), (4, 9216), (1, 40000), (72, 512)])
def test_a_tile_is_one_block_column_and_the_tiles_are_what_the_cost_model_counts(width, depth):
    dev = get_device("ecp5-85")
    w, d = best_tile_shape(width, depth, dev.bram_configs)
    assert (w, d) in dev.bram_configs
    assert -(-depth // d) * -(-width // w) == rom_tiles(width, depth, dev)
