"""Tutorial, part 1: simulate a one-hidden-layer network in the Amaranth simulator.

    python docs/tutorial/one_layer.py [--vcd layer.vcd]

Builds a random 16-input (8-bit) -> 8 hidden -> 4 class network, exports it with a
folding of your choice, generates the accelerator from the export alone, drives one
image through its `image` stream and reads the hidden activation bits (`debug` stream)
and the class (`result` stream), then checks them against the bit-exact reference.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from amaranth.sim import Simulator

from fedxnor.contract.network import IntLayer, IntNetwork
from fedxnor.export.manifest import Folding, load_export, write_export
from fedxnor.export.reference import Reference
from fedxnor.hw.top import NetworkTop, top_ports


def random_network(seed: int) -> IntNetwork:
    rng = np.random.default_rng(seed)
    w0 = rng.integers(0, 2, (8, 16), dtype=np.uint8)  # 8 neurons x 16 inputs, bit 1 = +1
    hidden = IntLayer(w0, None, input_bits=8, encoding="unsigned")
    lo, hi = hidden.acc_range  # the range of the integer dot product: thresholds live in [lo, hi + 1]
    t = rng.integers((lo + hi) // 2 - 100, (lo + hi) // 2 + 100, 8)
    hidden = IntLayer(w0, t, input_bits=8, encoding="unsigned")
    out = IntLayer(rng.integers(0, 2, (4, 8), dtype=np.uint8), None, input_bits=1, encoding="bipolar")
    return IntNetwork((hidden, out))


def simulate(export_dir: Path, image: np.ndarray, vcd: Path | None) -> tuple[list[int], int, int]:
    export = load_export(export_dir)
    top = NetworkTop(export, debug=True)
    ports = top_ports(export, debug=True)
    # One image-wide integer, B bits per input, LSB first; cut into in_width-bit beats.
    word = sum(int(v) << (i * ports.input_bits) for i, v in enumerate(image))
    beats = [(word >> (j * ports.in_width)) & ((1 << ports.in_width) - 1) for j in range(ports.in_beats)]
    got: dict[str, object] = {}

    async def testbench(ctx):
        for beat in beats:  # the image stream: hold valid and payload until ready
            ctx.set(top.image.valid, 1)
            ctx.set(top.image.payload, beat)
            await ctx.tick().until(top.image.ready)
        ctx.set(top.image.valid, 0)
        ctx.set(top.debug.ready, 1)
        ctx.set(top.result.ready, 1)
        debug = []
        cycles = 0
        while "class" not in got or len(debug) < ports.dbg_beats:
            if ctx.get(top.debug.valid):
                debug.append(ctx.get(top.debug.payload))
            if ctx.get(top.result.valid):
                got["class"] = ctx.get(top.result.payload)
            await ctx.tick()
            cycles += 1
        got["debug"], got["cycles"] = debug, cycles

    sim = Simulator(top)
    sim.add_clock(1e-8)  # 100 MHz, for the waveform's time axis
    sim.add_testbench(testbench)
    if vcd:
        with sim.write_vcd(str(vcd), gtkw_file=str(vcd.with_suffix(".gtkw")), traces=[top.image.valid, top.result.valid]):
            sim.run()
    else:
        sim.run()
    acts = [0] * ports.hidden_sizes[0]  # dbg_fields: where each neuron's bit sits in which beat
    for beat, fields in zip(got["debug"], ports.dbg_fields):
        for _layer, first, count, offset in fields:
            for k in range(count):
                acts[first + k] = (beat >> (offset + k)) & 1
    return acts, int(got["class"]), int(got["cycles"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pe", type=int, default=2, help="rows (neurons in parallel) of the hidden layer")
    ap.add_argument("--simd", type=int, default=4, help="lanes (inputs per cycle) of the hidden layer")
    ap.add_argument("--vcd", type=Path, default=None, help="write a waveform (open it with GTKWave or Surfer)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    net = random_network(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        export_dir = write_export(net, Path(tmp) / "tiny", [Folding(args.pe, args.simd), Folding(1, 8)])
        image = np.random.default_rng(args.seed).integers(0, 256, 16)
        ref = Reference(load_export(export_dir)).run(image[None, :])
        acts, cls, cycles = simulate(export_dir, image, args.vcd)
    want = ref.activations[0][0].tolist()
    print(f"hidden bits  hardware {acts}\n             reference {want}")
    print(f"class        hardware {cls}, reference {int(ref.classes[0])}; {cycles} cycles after the last input beat")
    assert acts == want and cls == int(ref.classes[0]), "the accelerator disagrees with the reference"
    print("bit-exact")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
