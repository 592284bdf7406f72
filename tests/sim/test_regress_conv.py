"""cocotb regressions of a conv network's RTL (conv on 8-bit pixels with padding, max-pool, a binary conv,
dense layers) against the reference, on Icarus and Verilator: every class and every feature-map and hidden bit
(the tagged debug stream, contract/beats.py) compared with equality, with stalls on every stream, in batch and
cycle mode; a conv threshold moved by one is caught at its layer, pixel and channel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fxconvnets import random_conv_network

from fedxnor.contract.conv import Conv
from fedxnor.contract.dense import Dense
from fedxnor.contract.folding import Folding
from fedxnor.contract.pool import MaxPool
from fedxnor.export.manifest import load_export, write_export
from fedxnor.export.reference import Reference
from fedxnor.sim.faults import shift_threshold
from fedxnor.sim.verify import verify_export

SPECS = [Conv(8, 8, 2, 4, 3, 1, 1, 8, "unsigned"), MaxPool(8, 8, 4, 2, 2), Conv(4, 4, 4, 6, 3, 1, 0),
         Dense(24, 8), Dense(8, 5, is_output=True)]
FOLDS = [Folding(2, 7), None, Folding(3, 12), Folding(4, 10), Folding(1, 8)]  # L = 7, 10: padded last words


@pytest.fixture(scope="module")
def conv_export(tmp_path_factory) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(3)
    net = random_conv_network(SPECS, rng)
    out = write_export(net, tmp_path_factory.mktemp("cnv") / "export", FOLDS,
                       input_spec={"shape": [8, 8, 2], "encoding": "pixels"})
    x = rng.integers(0, 256, (24, SPECS[0].in_size))
    x[0], x[1] = 0, 255  # all padding-like and all-max images
    return out, x


def check(r, n):
    assert r["images"] == n and r["activations_checked"]
    assert r["mismatches"] == 0, r["first_mismatch"]
    assert r["mismatching_images_per_layer"] == [0, 0, 0, 0]


@pytest.mark.parametrize("mode,n", [("batch", 24), ("cycle", 6)])
def test_conv_network_icarus(conv_export, sim_cache, mode, n):
    export, x = conv_export
    r = verify_export(export, sim="icarus", inputs=x[:n], mode=mode, stall_in=0.3, stall_out=0.3, seed=4,
                      build_root=sim_cache, progress=False)
    check(r, n)


def test_conv_network_verilator(conv_export, sim_cache):
    export, x = conv_export
    r = verify_export(export, sim="verilator", inputs=x, stall_in=0.25, stall_out=0.25, seed=9, build_root=sim_cache,
                      progress=False)
    check(r, len(x))


def test_conv_threshold_off_by_one_is_caught_at_its_pixel_and_channel(tmp_path, conv_export, sim_cache):
    """Channel c's threshold of the binary conv (layer 2) moved up by one: the first divergence is the first image
    with a tie in that layer, at neuron pixel·C + c of its NHWC map."""
    export, x = conv_export
    net = load_export(export).network
    h = x
    for layer in net.layers[:2]:
        h = layer.forward(h)
    acc = net.layers[2].accumulate(h)  # (images, pixels·C), NHWC
    ties = acc == np.tile(net.layers[2].thresholds, SPECS[2].out_h * SPECS[2].out_w)[None, :]
    assert ties.any()
    image = int(np.argmax(ties.any(axis=1)))
    neuron = int(np.argmax(ties[image]))
    channel = neuron % SPECS[2].out_c
    broken = shift_threshold(export, tmp_path / "broken", layer=2, neuron=channel, delta=1)
    r = verify_export(broken, sim="icarus", inputs=x[: image + 2], reference_dir=export, build_root=sim_cache,
                      progress=False)
    first = r["first_mismatch"]
    assert (first["image"], first["layer"], first["neuron"], first["expected"], first["got"]) == (image, 2, neuron, 1, 0)
    assert r["mismatching_images_per_layer"][:2] == [0, 0]
    assert Reference(export).run(x[:1]).activations[2].shape == (1, SPECS[2].out_size)
