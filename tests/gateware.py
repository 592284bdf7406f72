"""Shared by the gateware tests: run testbenches against a design in Amaranth's simulator."""

from __future__ import annotations

from amaranth.sim import Simulator


def simulate(dut, *benches, period: float = 1e-6) -> None:
    """Clock `dut` and run every testbench coroutine to its end."""
    sim = Simulator(dut)
    sim.add_clock(period)
    for bench in benches:
        sim.add_testbench(bench)
    sim.run()


async def read_vectors(ctx, rd, count: int, words: int, rng, got: list) -> None:
    """Read `count` vectors through an InputReadSignature (banks alternating from 0), as a sequencer does: wait
    for the bank, maybe a few cycles more, read every word (in random order, sometimes twice: one pass per
    neuron group), release; append each vector's words in order to `got`."""
    for v in range(count):
        bank = v % 2
        await ctx.tick().until(rd.ready.bit_select(bank, 1))
        for _ in range(rng.randrange(3)):
            await ctx.tick()
        order = list(range(words)) * rng.choice([1, 2])
        rng.shuffle(order)
        ctx.set(rd.bank, bank)
        seen = {}
        for c in order:
            ctx.set(rd.word, c)
            await ctx.tick()
            seen[c] = ctx.get(rd.data)
        ctx.set(rd.release, 1)
        await ctx.tick()
        ctx.set(rd.release, 0)
        got.append([seen[c] for c in range(words)])


def stream_feeder(port, payloads, rng, stall: float = 0.3):
    """A testbench that offers `payloads` on stream `port` in order, withholding valid at random (a beat once
    offered stays until taken)."""
    async def feed(ctx):
        for value in payloads:
            while rng.random() < stall:
                ctx.set(port.valid, 0)
                await ctx.tick()
            ctx.set(port.valid, 1)
            ctx.set(port.payload, value)
            await ctx.tick().until(port.ready)
        ctx.set(port.valid, 0)
    return feed


def stream_collector(port, count: int, rng, got: list, ready: float = 0.6):
    """Two testbenches for stream `port`: one drops ready at random, one appends every beat taken to `got`,
    until `count` beats."""
    async def drain(ctx):
        while len(got) < count:
            ctx.set(port.ready, rng.random() < ready)
            await ctx.tick()

    async def monitor(ctx):
        async for _, _, valid, rdy, payload in ctx.tick().sample(port.valid, port.ready, port.payload):
            if valid and rdy:
                got.append(payload)
            if len(got) == count:
                break
    return drain, monitor
