"""Tutorial, part 5: watch a conv window in the waveform.

    python docs/tutorial/conv_window.py [--vcd conv.vcd] [--pad 1] [--stride 1]

Builds a tiny conv network (a 6 x 6 image of 8-bit pixels -> 3 x 3 conv, 4 channels -> 2 x 2 max-pool -> 5
classes), exports it, generates the accelerator and streams one image through it in the Amaranth simulator, one
pixel per beat. For every output pixel of the conv layer it prints the window the contract says the hardware
reads (contract.conv.Conv.window: (ky, kx) in raster order, 0 where the window leaves the image) and the
cycle at which the hardware's 4 output bits for that pixel left the layer (its debug beat, tagged layer 0),
then checks every feature-map bit and the class against the bit-exact reference.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from amaranth.sim import Simulator

from fedxnor.contract.conv import Conv
from fedxnor.contract.dense import Dense
from fedxnor.contract.folding import Folding
from fedxnor.contract.network import IntLayer, IntNetwork
from fedxnor.contract.pool import MaxPool
from fedxnor.export.manifest import load_export, write_export
from fedxnor.export.reference import Reference
from fedxnor.hw.top import NetworkTop


def tiny_network(conv: Conv, pool: MaxPool, out: Dense, seed: int) -> IntNetwork:
    rng = np.random.default_rng(seed)
    w = rng.integers(0, 2, (conv.out_c, conv.fan_in), dtype=np.uint8)  # columns in (ky, kx, c) order
    lo, hi = conv.acc_range
    t = rng.integers((lo + hi) // 2 - 150, (lo + hi) // 2 + 150, conv.out_c)
    return IntNetwork((IntLayer(w, t, spec=conv), IntLayer(None, None, spec=pool),
                       IntLayer(rng.integers(0, 2, (out.fan_out, out.fan_in), dtype=np.uint8), None, spec=out)))


def simulate(top: NetworkTop, image: np.ndarray, vcd: Path | None) -> tuple[list[tuple[int, int]], int]:
    """(cycle, payload) of every debug beat, and the class."""
    beats = top.ports.beats.image_beats(image)
    seen: list[tuple[int, int]] = []
    got: dict[str, int] = {}

    async def testbench(ctx):
        ctx.set(top.debug.ready, 1)
        ctx.set(top.result.ready, 1)
        cycle, i = 0, 0
        while "class" not in got or len(seen) < top.ports.dbg_beats:
            if i < len(beats):  # one pixel per beat, valid held until ready
                ctx.set(top.image.valid, 1)
                ctx.set(top.image.payload, beats[i])
            else:
                ctx.set(top.image.valid, 0)
            if i < len(beats) and ctx.get(top.image.ready):
                i += 1
            if ctx.get(top.debug.valid):
                seen.append((cycle, ctx.get(top.debug.payload)))
            if ctx.get(top.result.valid):
                got["class"] = ctx.get(top.result.payload)
            await ctx.tick()
            cycle += 1

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    if vcd:
        traces = [top.image.valid, top.image.payload, top.debug.valid, top.debug.payload, top.result.valid]
        with sim.write_vcd(str(vcd), gtkw_file=str(vcd.with_suffix(".gtkw")), traces=traces):
            sim.run()
    else:
        sim.run()
    return seen, got["class"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pad", type=int, default=1, choices=(0, 1, 2))
    ap.add_argument("--stride", type=int, default=1, choices=(1, 2))
    ap.add_argument("--vcd", type=Path, default=None, help="write a waveform (open it with GTKWave or Surfer)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    conv = Conv(6, 6, 1, 4, 3, args.stride, args.pad, 8, "unsigned", "conv0")
    oh, ow, oc = conv.out_shape
    pool = MaxPool(oh, ow, oc, 2, 2, "pool0")
    out = Dense(pool.out_size, 5, 1, "bipolar", True, "fc")
    net = tiny_network(conv, pool, out, args.seed)
    image = np.random.default_rng(args.seed).integers(0, 256, conv.in_size)
    with tempfile.TemporaryDirectory() as tmp:
        ex = load_export(write_export(net, Path(tmp) / "tiny", [Folding(2, 9), None, Folding(1, pool.out_size)],
                                      input_spec={"shape": [6, 6], "encoding": "pixels"}))
        top = NetworkTop(ex, debug=True)
        seen, cls = simulate(top, image, args.vcd)
        ref = Reference(ex).run(image[None, :])
        maps = top.ports.beats.split_debug([p for _, p in seen], 1)
    conv_cycles = [c for c, p in seen if top.ports.beats.beat_layer(p) == 0]
    print(f"image (6 x 6 pixels):\n{image.reshape(6, 6)}")
    for n, cycle in enumerate(conv_cycles):
        oy, ox = divmod(n, ow)
        window = np.array(conv.window(image, oy, ox)).reshape(3, 3)
        bits = maps[0][0][n * oc:(n + 1) * oc].tolist()
        rows = " / ".join(" ".join(f"{v:3d}" for v in row) for row in window)
        print(f"cycle {cycle:4d}: output pixel ({oy}, {ox}) window [{rows}] -> channels {bits}")
    ok = all(np.array_equal(a, b) for a, b in zip(maps, ref.activations)) and cls == int(ref.classes[0])
    print(f"class: hardware {cls}, reference {int(ref.classes[0])}")
    assert ok, "the accelerator disagrees with the reference"
    print("bit-exact")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
