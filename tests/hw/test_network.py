"""The accelerator generated from an exported mlp-small checkpoint, in the Amaranth simulator:
classes and every hidden activation bit equal the bit-exact reference on Fashion-MNIST test images,
and the simulated cycles per inference match contract/cycles.py's model."""

from __future__ import annotations

import numpy as np
import pytest
from hw_helpers import decode_debug, run_images

from fedxnor.contract import cycles
from fedxnor.export.manifest import Folding, load_export, write_export
from fedxnor.export.reference import Reference
from fedxnor.hw.top import NetworkTop
from fedxnor.train.to_export import export_checkpoint

# A folding that keeps the simulation short: layer 0 is the bottleneck at 128 cycles per image.
SIM_PE, SIM_SIMD = [16, 16, 10], [196, 64, 64]


@pytest.fixture(scope="module")
def mlp_small_export(small_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("hw_export") / "exp"
    export_checkpoint(small_checkpoint, out, pe=SIM_PE, simd=SIM_SIMD, check_images=500)
    return load_export(out)


def refold(ex, tmp_path, pe, simd):
    folds = [Folding(p, s) for p, s in zip(pe, simd)]
    return load_export(write_export(ex.network, tmp_path / "refold", folds, input_spec=ex.manifest["input"]))


def classify_and_check(ex, images, **stalls):
    ref = Reference(ex)
    x = ref.prepare(images)
    want = ref.run(x)
    top = NetworkTop(ex, debug=True)
    log = run_images(top, x, **stalls)
    assert log.classes == want.classes.tolist()
    acts = decode_debug(top, log.debug, len(x))
    for layer, a in enumerate(acts):
        assert np.array_equal(a, want.activations[layer]), f"hidden layer {layer}"
    return log


def test_mlp_small_matches_reference(mlp_small_export, fashion_test):
    assert [la.fan_out for la in mlp_small_export.layers] == [64, 64, 10]
    assert mlp_small_export.input_bits == 8
    classify_and_check(mlp_small_export, fashion_test.images[:12])


def test_mlp_small_with_stalls(mlp_small_export, fashion_test):
    r = np.random.default_rng(3)
    s = r.random((3, 8192)) < 0.3
    classify_and_check(mlp_small_export, fashion_test.images[100:104], in_stall=lambda c: s[0][c % 8192],
                       out_stall=lambda c: s[1][c % 8192], dbg_stall=lambda c: s[2][c % 8192])


@pytest.mark.slow
def test_mlp_small_200_images(mlp_small_export, fashion_test):
    """The issue's acceptance run: 200 Fashion-MNIST test images, every activation bit (~3 min)."""
    classify_and_check(mlp_small_export, fashion_test.images[:200])


@pytest.mark.parametrize("pe,simd", [
    (SIM_PE, SIM_SIMD),            # layer 0 bound
    ([32, 2, 1], [196, 8, 8]),     # hidden layer 1 bound
    ([16, 8, 1], [196, 32, 2]),    # output layer bound
    ([8, 8, 2], [112, 64, 64]),    # layer 0 bound, 7 words x 8 planes per neuron
])
def test_simulated_cycles_match_model(mlp_small_export, fashion_test, tmp_path, pe, simd):
    ex = refold(mlp_small_export, tmp_path, pe, simd)
    x = Reference(ex).prepare(fashion_test.images[:7])
    top = NetworkTop(ex, debug=False)
    log = run_images(top, x)
    rc = log.result_cycles
    simulated = (rc[-1] - rc[2]) / (len(rc) - 3)  # steady state: skip the pipeline fill
    model = cycles.cycles_per_inference(ex.layers)
    assert abs(simulated - model) <= 0.05 * model, (simulated, model)
    assert rc[0] - log.first_offer == cycles.latency_cycles(ex.layers)
