"""cocotb regressions of the generated RTL against the bit-exact reference, on Icarus and Verilator.

Every test compares every class and every hidden layer's activation bits (the debug
stream) with equality. Builds are cached per design for the session.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sim_helpers import make_export, random_config

from fedxnor.export.manifest import load_export
from fedxnor.export.reference import Reference
from fedxnor.sim.faults import shift_threshold
from fedxnor.sim.runner import verilator_fst_available
from fedxnor.sim.verify import verify_export


def check(result, n):
    assert result["images"] == n
    assert result["activations_checked"]
    assert result["mismatches"] == 0, result["first_mismatch"]
    assert result["cycles"] > 0


# ------------------------------------------------------------- random configurations

ICARUS_CASES = [(11, 8, "batch"), (12, 1, "cycle"), (13, 8, "cycle"), (14, 1, "batch"), (15, 8, "batch"),
                (16, 1, "batch")]


@pytest.mark.parametrize("seed,bits,mode", ICARUS_CASES)
def test_random_config_icarus(tmp_path, sim_cache, seed, bits, mode):
    export, x = make_export(tmp_path, seed, bits)
    r = verify_export(export, sim="icarus", inputs=x, mode=mode, stall_in=0.25, stall_out=0.25, seed=seed,
                      build_root=sim_cache, progress=False)
    check(r, len(x))


@pytest.mark.parametrize("seed,bits", [(21, 8), (22, 1)])
def test_random_config_verilator(tmp_path, sim_cache, seed, bits):
    export, x = make_export(tmp_path, seed, bits)
    for mode in ("batch", "cycle"):
        r = verify_export(export, sim="verilator", inputs=x, mode=mode, stall_in=0.3, stall_out=0.3, seed=seed,
                          build_root=sim_cache, progress=False)
        check(r, len(x))


def test_random_configs_cover_the_corners():
    """The configurations above include thresholds 0 and N+1, inverted rows, padded words, B = 1 and 8."""
    seen = {"t_lo": False, "t_hi": False, "inverted": False, "padded": False}
    for seed, bits, _ in ICARUS_CASES:
        net, folds, _ = random_config(seed, bits)
        for layer, fold in zip(net.layers, folds):
            seen["padded"] |= layer.fan_in % fold.simd != 0
            if layer.is_output:
                continue
            lo, hi = layer.acc_range
            seen["t_lo"] |= bool((layer.thresholds == lo).any())
            seen["t_hi"] |= bool((layer.thresholds == hi + 1).any())
            seen["inverted"] |= bool(layer.inverted.any())
    assert all(seen.values()), seen


def test_stalls_change_cycles_not_results(tmp_path, sim_cache):
    export, x = make_export(tmp_path, 11, 8)
    free = verify_export(export, sim="icarus", inputs=x, build_root=sim_cache, progress=False)
    stalled = verify_export(export, sim="icarus", inputs=x, stall_in=0.6, stall_out=0.6, seed=3,
                            build_root=sim_cache, progress=False)
    check(free, len(x))
    check(stalled, len(x))
    assert stalled["cycles"] > free["cycles"]


# ------------------------------------------------------------- trained mlp-small, real test images

def test_trained_mlp_small_icarus_40_images(trained_export, sim_cache):
    """Icarus simulates mlp-small at a few thousand cycles/s: 40 images here, 200 on Verilator below."""
    r = verify_export(trained_export, sim="icarus", images=40, build_root=sim_cache, progress=False,
                      stall_in=0.1, stall_out=0.1, seed=1)
    check(r, 40)


def test_trained_mlp_small_verilator_200_images(trained_export, sim_cache):
    r = verify_export(trained_export, sim="verilator", images=200, build_root=sim_cache, progress=False,
                      stall_in=0.2, stall_out=0.2, seed=2)
    check(r, 200)
    assert r["cycles_per_image"] > 0


def test_trained_mlp_small_cycle_level_drivers(trained_export, sim_cache):
    r = verify_export(trained_export, sim="verilator", images=12, mode="cycle", stall_in=0.3, stall_out=0.3,
                      build_root=sim_cache, progress=False)
    check(r, 12)


# ------------------------------------------------------------- a broken design is caught

def first_tie(export_dir: Path, layer: int, x: np.ndarray) -> tuple[int, int]:
    """(neuron, image): the earliest image where some neuron's accumulator equals its threshold,
    and the lowest such neuron. Moving that threshold up by one flips the neuron's bit there first."""
    ref = Reference(export_dir)
    net = ref.export.network
    h = x
    for layer_obj in net.layers[:layer]:
        h = layer_obj.forward(h)
    acc = net.layers[layer].accumulate(h)
    ties = acc == net.layers[layer].thresholds[None, :]
    assert ties.any()
    image = int(np.argmax(ties.any(axis=1)))
    return int(np.argmax(ties[image])), image


def assert_caught_at(r, export_dir: Path, layer: int, neuron: int, image: int) -> None:
    assert r["mismatches"] > 0
    first = r["first_mismatch"]
    assert (first["image"], first["layer"], first["neuron"], first["expected"], first["got"]) == (image, layer, neuron, 1, 0)
    assert all(v == 0 for v in r["mismatching_images_per_layer"][:layer]) and r["mismatching_images_per_layer"][layer] > 0
    assert f"image {image}: layer {layer} ({load_export(export_dir).layers[layer].name}) neuron {neuron}" in first["message"]


def test_threshold_off_by_one_is_caught_with_layer_and_neuron_icarus(tmp_path, trained_export, sim_cache, fashion_test):
    """The trained mlp-small with one layer-1 threshold moved up by one (T+1: a tie no longer fires)."""
    x = Reference(trained_export).prepare(fashion_test.images[:200])
    neuron, image = first_tie(trained_export, 1, x)
    x = x[: image + 3]  # Icarus is slow on mlp-small: simulate just past the fault
    broken = shift_threshold(trained_export, tmp_path / "broken", layer=1, neuron=neuron, delta=1)
    r = verify_export(broken, sim="icarus", inputs=x, reference_dir=trained_export, build_root=sim_cache, progress=False)
    assert_caught_at(r, trained_export, 1, neuron, image)


def test_threshold_off_by_one_is_caught_with_layer_and_neuron_verilator(tmp_path, sim_cache):
    """The same fault on a small random design (a Verilator build of mlp-small costs CI minutes)."""
    export, x = make_export(tmp_path, 22, 1)
    neuron, image = first_tie(export, 1, x)
    broken = shift_threshold(export, tmp_path / "broken", layer=1, neuron=neuron, delta=1)
    r = verify_export(broken, sim="verilator", inputs=x, reference_dir=export, build_root=sim_cache, progress=False,
                      stall_in=0.2, stall_out=0.2, seed=5)
    assert_caught_at(r, export, 1, neuron, image)


# ------------------------------------------------------------- the command

def run_cli(*args, cache: Path):
    import os

    env = dict(os.environ, FEDXNOR_SIM_CACHE=str(cache))
    return subprocess.run([sys.executable, "-m", "fedxnor", "verify", *map(str, args)], capture_output=True,
                          text=True, env=env)


def test_cli_json_and_exit_codes(tmp_path, trained_export, sim_cache):
    r = run_cli(trained_export, "--sim", "icarus", "--images", "12", "--json", cache=sim_cache)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert {"images", "mismatches", "cycles", "images_per_s"} <= out.keys()
    assert out["images"] == 12 and out["mismatches"] == 0 and out["cycles"] > 0 and out["images_per_s"] > 0
    # move neuron 3 of layer 0 just past image 5's accumulator: its bit flips on image 5 (maybe earlier)
    ref = Reference(trained_export)
    from fedxnor.datasets import load_split

    x = ref.prepare(load_split("test").images[:12])
    layer0 = ref.export.network.layers[0]
    acc, t = int(layer0.accumulate(x[5:6])[0, 3]), int(layer0.thresholds[3])
    delta = acc - t + 1 if acc >= t else acc - t
    broken = shift_threshold(trained_export, tmp_path / "broken", layer=0, neuron=3, delta=delta)
    r = run_cli(broken, "--sim", "icarus", "--images", "12", "--json", "--reference", trained_export, cache=sim_cache)
    out = json.loads(r.stdout)
    assert r.returncode == 1 and out["mismatches"] >= 1
    assert out["first_mismatch"]["layer"] == 0 and out["first_mismatch"]["neuron"] == 3
    assert out["first_mismatch"]["image"] <= 5
    r = run_cli(tmp_path / "nope", "--sim", "icarus", cache=sim_cache)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


def test_waves_on_request(tmp_path, sim_cache):
    export, x = make_export(tmp_path, 16, 1)
    for sim in ("icarus", "verilator"):
        r = verify_export(export, sim=sim, inputs=x[:4], waves=True, build_root=sim_cache, progress=False,
                          run_dir=tmp_path / f"run_{sim}")
        check(r, 4)
        fst = sim == "icarus" or verilator_fst_available()
        assert r["waves"] and r["waves"].endswith(".fst" if fst else ".vcd") and Path(r["waves"]).stat().st_size > 100
