"""The folding solver (hw/plan/): its answers are valid exports, fit the device, and are optimal under its model."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from fxnets import random_network
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedxnor.contract import cycles
from fedxnor.contract.cost import LC_FIT, MODELS, logic_cells, rom_tiles
from fedxnor.contract.dense import Dense as LayerShape
from fedxnor.contract.devices import DEVICES, Device
from fedxnor.errors import FedxnorError
from fedxnor.export.manifest import Folding, load_export, write_export
from fedxnor.export.reference import Reference
from fedxnor.hw.plan.fit import check_fit
from fedxnor.hw.plan.plan import plan_for
from fedxnor.hw.plan.plan import specs_of as shapes_of
from fedxnor.hw.plan.refold import refold_export
from fedxnor.hw.plan.solver import solve, solve_foldings

MLP_SMALL = [LayerShape(784, 64, 8, "unsigned", name="fc0"), LayerShape(64, 64, name="fc1"),
             LayerShape(64, 10, is_output=True, name="fc2")]


def shapes_from_sizes(sizes: list[int], bits: int) -> list[LayerShape]:
    out = []
    for i in range(len(sizes) - 1):
        first = i == 0
        out.append(LayerShape(sizes[i], sizes[i + 1], bits if first else 1, "unsigned" if first else "bipolar",
                              is_output=i == len(sizes) - 2))
    return out


def tiny_device(luts: int, bram: int, family: str = "ice40", lcs: int = 0, top_lcs: int = 0) -> Device:
    base = DEVICES["up5k" if family == "ice40" else "ecp5-25"]
    return Device(f"tiny-{family}", family, luts=luts, ffs=luts, bram=bram, bram_bits=base.bram_bits,
                  bram_configs=base.bram_configs, lcs=lcs, top_lcs=top_lcs)


sizes_st = st.lists(st.integers(1, 12), min_size=2, max_size=4)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=sizes_st, bits=st.sampled_from([1, 2, 8]), device=st.sampled_from(sorted(DEVICES)),
       seed=st.integers(0, 2**16))
def test_every_answer_is_a_valid_export_that_fits(tmp_path_factory, sizes, bits, device, seed):
    net = random_network(np.random.default_rng(seed), sizes, input_bits=bits)
    plan = solve(net, device)
    dev = DEVICES[device]
    assert plan.luts <= 0.85 * dev.luts and plan.ffs <= 0.85 * dev.ffs and plan.bram <= dev.bram
    assert not dev.lcs or plan.lcs <= 0.9 * dev.lcs  # packed iCE40 logic cells, board top included
    out = write_export(net, tmp_path_factory.mktemp("e") / "x", list(plan.foldings))
    exp = load_export(out)
    assert [Folding(i.pe, i.simd) for i in exp.layers] == list(plan.foldings)
    assert solve_foldings(exp, device) == list(plan.foldings)  # same shapes, same answer


def _brute_force(shapes, device, share=1.0):
    """(min II, min LUTs at that II) over every folding the manifest accepts; None if nothing fits."""
    model = MODELS[device.family]
    per_layer = []
    for i, s in enumerate(shapes):
        costs = [s.cost(f, device, model, first=i == 0) for f in s.candidate_foldings()]
        per_layer.append([np.array([getattr(c, k) for c in costs]) for k in ("cycles", "luts", "ffs", "bram", "own")]
                         + [np.array([c.cycles + c.drain for c in costs])])
    grids = [np.broadcast_arrays(*np.ix_(*[p[k] for p in per_layer])) for k in range(6)]
    # contract/cycles.py: II = max(own terms, ceil((T_l + D_l + T_{l+1}) / 2) for neighbours)
    ii = np.maximum.reduce(grids[4])
    for a, b in zip(grids[5][:-1], grids[0][1:]):
        ii = np.maximum(ii, -(-(a + b) // 2))
    luts = model.fixed * model.flatten + sum(grids[1])
    ffs = model.ff_fixed + sum(grids[2])
    bram = sum(grids[3])
    ok = (luts <= device.luts * share) & (ffs <= device.ffs * share) & (bram <= device.bram)
    if device.lcs:
        ok &= luts + ffs + device.top_lcs <= device.lcs * share
    if not ok.any():
        return None
    best_ii = ii[ok].min()
    return int(best_ii), float(luts[ok & (ii == best_ii)].min())


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(1, 10), min_size=2, max_size=4), bits=st.sampled_from([1, 3]),
       luts=st.integers(200, 900), bram=st.integers(0, 4), family=st.sampled_from(["ice40", "ecp5"]),
       cells=st.sampled_from([None, 0.6, 1.2]))
def test_ii_is_the_smallest_that_fits_and_luts_the_fewest(sizes, bits, luts, bram, family, cells):
    """Exhaustive check: no assignment of (P, L) with a smaller II fits the budget; at that II
    nothing has fewer LUTs. So no layer can be made faster without breaking the budget,
    except layers that are not the bottleneck, whose speed would not change the II."""
    shapes = shapes_from_sizes(sizes, bits)
    # cells: an iCE40-like device whose logic cells (LUTs + FFs + a board top of 50) bind before LUTs alone
    dev = tiny_device(luts, bram, family, *((round(cells * luts), 50) if cells else ()))
    want = _brute_force(shapes, dev)
    if want is None:
        with pytest.raises(FedxnorError):
            solve(shapes, dev, max_lut_share=1.0, max_lc_share=1.0)
        return
    plan = solve(shapes, dev, max_lut_share=1.0, max_lc_share=1.0)
    assert plan.cycles_per_inference == want[0]
    assert plan.luts == pytest.approx(want[1])
    assert plan.luts <= dev.luts and plan.ffs <= dev.ffs and plan.bram <= dev.bram
    # No single layer can be refolded to lower the II within the budget.
    for i, s in enumerate(shapes):
        for g in s.candidate_foldings():
            trial = list(plan.foldings)
            trial[i] = g
            other = plan_for(shapes, trial, dev, max_lut_share=1.0)
            if other.cycles_per_inference < plan.cycles_per_inference:
                assert not (other.luts <= dev.luts and other.ffs <= dev.ffs and other.bram <= dev.bram
                            and other.luts + other.ffs + dev.top_lcs <= (dev.lcs or float("inf")))


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 40), min_size=2, max_size=5), bits=st.sampled_from([1, 8]),
       device=st.sampled_from(["up5k", "ecp5-85"]), data=st.data())
def test_layer_timing_terms_rebuild_the_cycle_model(sizes, bits, device, data):
    """The solver's per-layer (own, drain) terms give exactly contract/cycles.py's cycles per inference (ECP5: with the
    read_regs registers and the registered start's idle cycle)."""
    dev = DEVICES[device]
    shapes = shapes_from_sizes(sizes, bits)
    folds = [data.draw(st.sampled_from(s.candidate_foldings())) for s in shapes]
    costs = [s.cost(f, dev, first=i == 0) for i, (s, f) in enumerate(zip(shapes, folds))]
    ii = max(c.own for c in costs)
    for a, b in zip(costs[:-1], costs[1:]):
        ii = max(ii, -(-(a.cycles + a.drain + b.cycles) // 2))
    assert ii == cycles.cycles_per_inference(cycles.placed(shapes, folds), read_regs=dev.read_regs)


def test_target_cycles_gives_the_cheapest_plan_meeting_it():
    fast = solve(MLP_SMALL, "up5k")
    slow = solve(MLP_SMALL, "up5k", target_cycles=4 * fast.cycles_per_inference)
    assert slow.cycles_per_inference <= 4 * fast.cycles_per_inference and slow.luts < fast.luts
    with pytest.raises(FedxnorError, match="reaches 10 cycles"):
        solve(MLP_SMALL, "up5k", target_cycles=10)


def test_mlp_small_fits_every_device_and_bigger_devices_are_faster():
    iis = {d: solve(MLP_SMALL, d).cycles_per_inference for d in DEVICES}
    assert iis["ecp5-85"] <= iis["ecp5-25"] <= iis["up5k"]
    assert iis["ecp5-25"] <= iis["hx8k"]


def test_big_networks_solve_quickly():
    """The flow folds every board's model before building: seconds, not minutes (sfc: 4 layers, 334 kbit)."""
    import time

    sfc = shapes_from_sizes([784, 256, 256, 256, 10], 8)
    t0 = time.monotonic()
    plan = solve(sfc, "ecp5-85")
    assert time.monotonic() - t0 < 30
    assert plan.bram <= 208 and plan.cycles_per_inference <= 256


def test_block_ram_error_names_the_count():
    big = [LayerShape(784, 256, 8, "unsigned"), LayerShape(256, 10, is_output=True)]  # 49 tiles of weights
    with pytest.raises(FedxnorError, match=r"network weights need \d+ block RAMs, up5k has 30") as e:
        solve_foldings(big, "up5k")
    assert "\n" not in str(e.value)


def test_lut_error_names_the_budget():
    with pytest.raises(FedxnorError, match=r"needs at least \d+ LUTs, up5k allows 53"):
        solve_foldings(MLP_SMALL, "up5k", max_lut_share=0.01)



def test_rom_tiles_follow_the_tile_shapes():
    up5k, ecp5 = DEVICES["up5k"], DEVICES["ecp5-85"]
    assert rom_tiles(16, 256, up5k) == 1
    assert rom_tiles(32, 128, up5k) == 2
    assert rom_tiles(1, 4096, up5k) == 2  # 2x2048 tiles, one bit wasted in each
    assert rom_tiles(36, 512, ecp5) == 1
    assert rom_tiles(112, 448, up5k) == 14  # 7 tiles wide x 2 deep
    assert up5k.bram_bandwidth_bits == 480


def test_check_fit_uses_the_exports_foldings(tmp_path, rng):
    net = random_network(rng, [784, 64, 10])
    exp = load_export(write_export(net, tmp_path / "e", [Folding(64, 784), Folding(1, 64)]))
    with pytest.raises(FedxnorError, match=r"folding 64x784, 1x64 needs \d+ block RAMs, up5k has 30"):
        check_fit(exp, "up5k")
    check_fit(exp, "ecp5-85", foldings=solve_foldings(exp, "ecp5-85"))
    check_fit(shapes_of(exp), "up5k")  # some folding fits


def test_refold_round_trip_keeps_everything_but_the_folding(tmp_path, rng):
    net = random_network(rng, [20, 12, 6, 3], input_bits=8)
    src = write_export(net, tmp_path / "src", [Folding(3, 7), Folding(2, 5), Folding(1, 6)],
                       source={"model": "toy", "checkpoint_sha256": "abc"},
                       input_spec={"shape": [4, 5], "encoding": "pixels"},
                       extra_files={"torch_predictions.u8": bytes([1, 2, 0]), "test_inputs.u8": bytes(range(60))},
                       names=["a", "b", "c"])
    dst = refold_export(src, tmp_path / "dst", [Folding(12, 20), Folding(6, 1), Folding(3, 4)])
    a, b = load_export(src), load_export(dst)
    assert [(i.pe, i.simd) for i in b.layers] == [(12, 20), (6, 1), (3, 4)]
    for key in ("source", "input", "num_classes"):
        assert a.manifest[key] == b.manifest[key]
    assert [i.name for i in b.layers] == ["a", "b", "c"]
    assert set(b.manifest["files"]) == {"torch_predictions.u8", "test_inputs.u8"}
    for name in b.manifest["files"]:
        assert (dst / name).read_bytes() == (src / name).read_bytes()
    x = rng.integers(0, 256, (64, 20))
    ra, rb = Reference(a).run(x), Reference(b).run(x)
    for la, lb in zip(ra.activations, rb.activations):
        assert np.array_equal(la, lb)
    assert np.array_equal(ra.scores, rb.scores)
    json.loads((dst / "manifest.json").read_text())


def test_refold_rejects_bad_foldings_and_same_directory(tmp_path, rng):
    src = write_export(random_network(rng, [10, 4, 3]), tmp_path / "src")
    with pytest.raises(FedxnorError, match="P=3 does not divide fan-out 4"):
        refold_export(src, tmp_path / "dst", [Folding(3, 2), Folding(1, 1)])
    with pytest.raises(FedxnorError, match="one folding per layer"):
        refold_export(src, tmp_path / "dst", [Folding(1, 1)])
    with pytest.raises(FedxnorError, match="new directory"):
        refold_export(src, src, [Folding(1, 1), Folding(1, 1)])
    assert not (tmp_path / "dst").exists()


def test_candidates_cover_what_the_manifest_accepts():
    s = LayerShape(12, 6)
    got = set(s.candidate_foldings())
    want = {Folding(p, q) for p, q in itertools.product(range(1, 7), range(1, 13)) if 6 % p == 0}
    assert got == want


def test_logic_cell_model_predicts_routed_ice40_builds():
    """Recorded iCEBreaker builds (nextpnr-ice40 ICESTORM_LC of accelerator + UART link + PLL) against
    the model: at most 250 cells over, never under, so the solver's 90% target leaves the routed design room."""
    for device, folds, luts, ffs, routed in LC_FIT["points"]:
        parsed = [Folding(*map(int, f.split("x"))) for f in folds.split()]
        plan = plan_for(MLP_SMALL, parsed, device)
        assert (round(plan.luts), round(plan.ffs)) == pytest.approx((luts, ffs), abs=2)  # the model they were fitted on
        assert 0 <= logic_cells(device, luts, ffs) - routed <= 250, folds  # never below the routed count
    assert logic_cells("ecp5-85", 1000, 1000) == 0  # ECP5 counts TRELLIS_COMB and TRELLIS_FF apart
