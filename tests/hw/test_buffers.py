"""Ping-pong buffers: the image memory (plane-major, padding masked, stalls) and the activation buffer."""

from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

from fedxnor.contract.beats import BeatGeometry
from fedxnor.hw.buffers import ActivationBuffer, ImageBuffer


def run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_image_buffer_stores_planes_msb_first_and_masks_padding():
    n, bits, lanes = 21, 3, 5  # 5 beats, the last one with 1 input and 4 pad lanes
    dut = ImageBuffer(n, bits, lanes)
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 1 << bits, (3, n))
    geometry = BeatGeometry(n, bits, lanes * bits, 2)
    beats = [geometry.image_beats(x) for x in imgs]
    beats[0][-1] |= ((1 << (lanes * bits)) - 1) & ~((1 << bits) - 1)  # garbage in the pad lanes
    stall = rng.random(1000) < 0.3
    read = {}

    async def bench(ctx):
        queue = [(i, b) for i, bs in enumerate(beats) for b in bs]
        cyc = 0
        for img in range(3):
            while not ctx.get(dut.rd.ready) & (1 << (img % 2)):  # intake image `img` (stalled now and then)
                if queue and not stall[cyc % 1000]:
                    ctx.set(dut.image.valid, 1)
                    ctx.set(dut.image.payload, queue[0][1])
                    if ctx.get(dut.image.ready):
                        queue.pop(0)
                else:
                    ctx.set(dut.image.valid, 0)
                await ctx.tick()
                cyc += 1
            ctx.set(dut.image.valid, 0)
            ctx.set(dut.rd.bank, img % 2)
            words = []
            for lin in range(bits * dut.W):
                ctx.set(dut.rd.lin, lin)
                await ctx.tick()
                words.append(ctx.get(dut.rd.data))
            read[img] = words
            ctx.set(dut.rd.release, 1)
            await ctx.tick()
            ctx.set(dut.rd.release, 0)

    run(dut, bench)
    for img, x in enumerate(imgs):
        vals = list(x) + [0] * (dut.W * lanes - n)
        want = [sum(((int(vals[c * lanes + j]) >> b) & 1) << j for j in range(lanes))
                for b in reversed(range(bits)) for c in range(dut.W)]
        assert read[img] == want, img


def test_activation_buffer_rows_to_words_and_bank_flags():
    m, pe, lanes = 12, 3, 5  # neuron k*3 + p from row p; words of 5 bits, the last padded with 0
    dut = ActivationBuffer(m, pe, lanes, debug=True)
    rng = np.random.default_rng(1)
    acts = rng.integers(0, 2, (2, m))
    got = {}

    async def bench(ctx):
        assert ctx.get(dut.claim.free) == 0b11 and ctx.get(dut.rd.ready) == 0
        for bank in range(2):
            ctx.set(dut.claim.start, 1)
            ctx.set(dut.claim.bank, bank)
            await ctx.tick()
            ctx.set(dut.claim.start, 0)
            assert not ctx.get(dut.claim.free) & (1 << bank)
            for k in range(m // pe):
                ctx.set(dut.rows.shift, (1 << pe) - 1)
                ctx.set(dut.rows.banks, (1 << pe) - 1 if bank else 0)
                ctx.set(dut.rows.bits, sum(int(acts[bank][k * pe + p]) << p for p in range(pe)))
                await ctx.tick()
            ctx.set(dut.rows.shift, 0)
            ctx.set(dut.rows.done, 1)
            ctx.set(dut.rows.done_bank, bank)
            await ctx.tick()
            ctx.set(dut.rows.done, 0)
            assert ctx.get(dut.rd.ready) & (1 << bank) and ctx.get(dut.dbg.avail) & (1 << bank)
        for bank in range(2):
            ctx.set(dut.rd.bank, bank)
            words = []
            for c in range(3):
                ctx.set(dut.rd.word, c)
                await ctx.tick()
                words.append(ctx.get(dut.rd.data))
            ctx.set(dut.dbg.bank, bank)
            got[bank] = (words, ctx.get(dut.dbg.bits))
            ctx.set(dut.rd.release, 1)
            await ctx.tick()
            ctx.set(dut.rd.release, 0)
            await ctx.tick()
            assert not ctx.get(dut.claim.free) & (1 << bank)  # consumed but not yet sent on the debug stream
            ctx.set(dut.dbg.ack, 1)
            await ctx.tick()
            ctx.set(dut.dbg.ack, 0)
            await ctx.tick()
            assert ctx.get(dut.claim.free) & (1 << bank)

    run(dut, bench)
    for bank in range(2):
        vec = sum(int(b) << i for i, b in enumerate(acts[bank]))
        words, dbg = got[bank]
        assert words == [(vec >> (c * lanes)) & 31 for c in range(3)]
        assert dbg == vec
