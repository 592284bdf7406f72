"""Writable weight stores (hw/weightstore.py): a layer whose weights are written through the top's `wload`
port at run time computes what its ROM twin computes, with the same cycles, and maps to SB_SPRAM256KA on a UP5K."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator
from fxnets import random_network
from hw_helpers import decode_debug
from tool_paths import YOSYS

from fedxnor.contract import cycles
from fedxnor.contract.dense import Dense as LayerShape
from fedxnor.contract.devices import DEVICES
from fedxnor.errors import FedxnorError
from fedxnor.export.manifest import Folding, load_export, write_export
from fedxnor.export.reference import Reference
from fedxnor.hw.plan.fit import check_fit
from fedxnor.hw.plan.solver import solve, solve_foldings
from fedxnor.hw.top import NetworkTop
from fedxnor.hw.weightstore import WeightStore, writable_images


def make_export(tmp_path, seed, sizes, folds, bits=8):
    net = random_network(np.random.default_rng(seed), sizes, input_bits=bits)
    return load_export(write_export(net, tmp_path / f"exp{seed}", [Folding(p, s) for p, s in folds]))


def run_loaded(top: NetworkTop, writes: list[tuple[int, int, int]], x: np.ndarray, max_cycles: int = 400_000):
    """Write (row, addr, word) through `wload`, one per cycle, then stream images; returns
    (classes, result cycles, first offer cycle, debug words)."""
    p = top.ports
    beats = [b for img in x for b in p.beats.image_beats(img)]
    out = {"classes": [], "rc": [], "first": None, "debug": []}
    sim = Simulator(top)
    sim.add_clock(1e-8)

    async def bench(ctx):
        for row, addr, word in writes:
            ctx.set(top.wload, {"en": 1, "row": row, "addr": addr, "data": word})
            await ctx.tick()
        ctx.set(top.wload.en, 0)
        await ctx.tick()
        i, cyc, offered = 0, 0, False
        ctx.set(top.result.ready, 1)
        if top.debug_port:
            ctx.set(top.debug.ready, 1)
        while len(out["classes"]) < len(x) and cyc < max_cycles:
            if not offered and i < len(beats):
                ctx.set(top.image.payload, beats[i])
                offered = True
                if out["first"] is None:
                    out["first"] = cyc
            ctx.set(top.image.valid, offered)
            if top.debug_port and ctx.get(top.debug.valid):
                out["debug"].append(ctx.get(top.debug.payload))
            if offered and ctx.get(top.image.ready):
                i, offered = i + 1, False
            if ctx.get(top.result.valid):
                out["classes"].append(ctx.get(top.result.payload))
                out["rc"].append(cyc)
            await ctx.tick()
            cyc += 1

    sim.add_testbench(bench)
    sim.run()
    return out


def weight_writes(top: NetworkTop, export, garbage: np.random.Generator | None = None) -> list[tuple[int, int, int]]:
    writes = []
    for w in top.weight_images:
        words = export.weight_words[w.layer][w.pe]
        if garbage is not None:  # a first pass of wrong words, overwritten by the right ones below
            writes += [(w.index, a, int(garbage.integers(0, 1 << w.width))) for a in range(len(words))]
    for w in top.weight_images:
        writes += [(w.index, a, v) for a, v in enumerate(export.weight_words[w.layer][w.pe])]
    return writes


@pytest.mark.parametrize("sizes,folds,bits,stored", [
    ([50, 16, 12, 10], [(4, 16), (4, 8), (2, 6)], 8, {0: "spram"}),       # the iCEBreaker shape: layer 0 written
    ([20, 8, 6, 5], [(2, 6), (3, 4), (1, 6)], 3, {0: "ram", 2: "spram"}),  # two layers, the output layer too
])
def test_written_weights_match_reference_and_cycle_model(tmp_path, sizes, folds, bits, stored):
    ex = make_export(tmp_path, 5, sizes, folds, bits)
    x = np.random.default_rng(6).integers(0, 1 << bits, (7, sizes[0]))
    top = NetworkTop(ex, debug=True, weight_store=stored)
    assert [(w.layer, w.pe) for w in top.weight_images] == [(i, p) for i in stored for p in range(folds[i][0])]
    out = run_loaded(top, weight_writes(top, ex, np.random.default_rng(7)), x)
    ref = Reference(ex).run(x)
    assert out["classes"] == ref.classes.tolist()
    for layer, acts in enumerate(decode_debug(top, out["debug"], len(x))):
        assert np.array_equal(acts, ref.activations[layer])
    # without debug back-pressure: simulated latency and II equal contract/cycles.py, as for ROM weights
    plain = NetworkTop(ex, weight_store=stored)
    out = run_loaded(plain, weight_writes(plain, ex), x)
    assert out["classes"] == ref.classes.tolist()
    rc = out["rc"]
    assert rc[0] - out["first"] == cycles.latency_cycles(ex.layers)
    assert (rc[-1] - rc[2]) / (len(rc) - 3) == pytest.approx(cycles.initiation_interval(ex.layers), rel=0.05)


def test_unwritten_store_is_not_the_model(tmp_path):
    """Nothing comes from the bitstream: without the writes the answers are those of all-zero weights."""
    ex = make_export(tmp_path, 8, [30, 12, 10], [(4, 10), (2, 12)], 8)
    x = np.random.default_rng(9).integers(0, 256, (12, 30))
    out = run_loaded(NetworkTop(ex, weight_store={0: "spram"}), [], x)
    net = ex.network
    zero = type(net)((type(net.layers[0])(np.zeros_like(net.layers[0].weights), net.layers[0].thresholds,
                                           input_bits=8, encoding="unsigned"),) + net.layers[1:])
    assert out["classes"] == zero.run(x.astype(np.int64))[2].tolist()


def test_writable_images_name_the_manifest_files(tmp_path):
    ex = make_export(tmp_path, 10, [40, 8, 10], [(4, 16), (1, 8)], 8)
    imgs = writable_images(ex, {0: "spram"})
    for w in imgs:
        ref = ex.manifest["layers"][0]["weight_images"][w.pe]
        data = (ex.directory / w.file).read_bytes()
        assert w.file == ref["file"] and w.sha256 == ref["sha256"] and w.nbytes == len(data)
        assert w.width == 16 and w.depth == 2 * 3
    with pytest.raises(FedxnorError, match="layer 5"):
        writable_images(ex, {5: "spram"})
    with pytest.raises(FedxnorError, match="kind"):
        writable_images(ex, {0: "flash"})


def synth_cells(text: str, top: str, tmp_path: Path) -> dict[str, int]:
    (tmp_path / f"{top}.v").write_text(text)
    subprocess.run([YOSYS, "-q", "-p", f"read_verilog {top}.v; synth_ice40 -device u -top {top}; "
                    f"tee -q -o {top}.stat stat"], check=True, capture_output=True, text=True, cwd=tmp_path)
    stat = (tmp_path / f"{top}.stat").read_text()
    return {name: int(n) for n, name in re.findall(r"^\s+(\d+)\s+(SB_\w+)", stat, re.M)}


class _UP5K:
    device = "iCE40UP5K"


@pytest.mark.parametrize("width,cells", [(16, 1), (20, 2)])
def test_store_is_spram_on_up5k_and_memory_elsewhere(tmp_path, width, cells):
    # the mlp layer 0 row at P = 4, L = 16: 64 neurons x 49 words
    on_up5k = verilog.convert(WeightStore(width, 3136), name="ws", platform=_UP5K(), emit_src=False)
    got = synth_cells(on_up5k, "ws", tmp_path)
    assert got.get("SB_SPRAM256KA") == cells and "SB_RAM40_4K" not in got
    generic = verilog.convert(WeightStore(width, 3136), name="ws2", emit_src=False)
    assert "SB_SPRAM256KA" not in generic
    with pytest.raises(FedxnorError, match="SB_SPRAM256KA"):
        verilog.convert(WeightStore(16, 20000), name="ws3", platform=_UP5K())


MLP = [LayerShape(784, 256, 8, "unsigned", name="fc0"), LayerShape(256, 256, name="fc1"),
       LayerShape(256, 10, is_output=True, name="fc2")]
MLP_SMALL = [LayerShape(784, 64, 8, "unsigned"), LayerShape(64, 64), LayerShape(64, 10, is_output=True)]
N160 = [LayerShape(784, 160, 8, "unsigned"), LayerShape(160, 10, is_output=True)]  # 127 kbit: too much for EBR


def test_solver_puts_layer0_in_spram_only_when_block_ram_is_too_small():
    with pytest.raises(FedxnorError, match="block RAMs"):
        solve(N160, "up5k")
    plan = solve(N160, "up5k", spram=True)
    assert plan.weight_store == (0,) and plan.store_map == {0: "spram"}
    assert 0 < plan.spram <= 4 and plan.bram <= 30 - DEVICES["up5k"].loader_bram
    assert plan.layer_costs[0].spram == plan.spram and plan.lcs <= plan.budget.lcs
    assert plan.to_dict(N160)["weight_store"] == [0]
    # a model that fits in block RAM gets the same plan as without SPRAM
    assert solve(MLP_SMALL, "up5k", spram=True) == solve(MLP_SMALL, "up5k")
    with pytest.raises(FedxnorError, match="block RAMs"):  # no SPRAM on the HX8K
        solve(N160, "hx8k", spram=True)
    # mlp: SPRAM holds its first layer, but the logic (activation buffers, loader) does not fit the UP5K
    with pytest.raises(FedxnorError, match=r"block RAMs.*with layer 0's weights in SPRAM.*logic cells") as e:
        solve(MLP, "up5k", spram=True)
    assert "\n" not in str(e.value)


def test_check_fit_returns_the_weight_store():
    fold = solve_foldings(N160, "up5k", spram=True)
    assert check_fit(N160, "up5k", foldings=fold, spram=True) == {0: "spram"}
    with pytest.raises(FedxnorError, match="block RAMs"):
        check_fit(N160, "up5k", foldings=fold)
    small = solve_foldings(MLP_SMALL, "up5k")
    assert check_fit(MLP_SMALL, "up5k", foldings=small, spram=True) == {}
    # rows deeper than one SPRAM (1 x 4 lanes: 160 x 196 words) cannot go there
    with pytest.raises(FedxnorError, match="block RAMs") as e:
        check_fit(N160, "up5k", foldings=[Folding(1, 4), Folding(1, 1)], spram=True)
    assert "\n" not in str(e.value)
    # too wide for four SPRAMs: 8 rows x 16 lanes
    assert N160[0].spram_cells(Folding(8, 16)) == 8
    with pytest.raises(FedxnorError, match="SPRAM"):
        check_fit(N160, "up5k", foldings=[Folding(8, 16), Folding(1, 1)], spram=True)
