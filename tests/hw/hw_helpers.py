"""Amaranth-simulator helpers for the accelerator tests: stream drivers and an image runner."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from amaranth.sim import Simulator

from fedxnor.hw.top import NetworkTop


@dataclass
class RunLog:
    classes: list[int] = field(default_factory=list)
    result_cycles: list[int] = field(default_factory=list)
    debug: list[int] = field(default_factory=list)
    first_offer: int | None = None
    cycles: int = 0  # the top's cycle counter at the end
    busy_end: int = 1


def run_images(top: NetworkTop, x: np.ndarray, *, in_stall=None, out_stall=None, dbg_stall=None,
               max_cycles: int = 2_000_000) -> RunLog:
    """Stream images through `top` in the Amaranth simulator and collect results (and debug beats).

    in_stall / out_stall / dbg_stall: optional callables cycle -> bool; True withholds a new image beat /
    result.ready / debug.ready on that cycle, to exercise back-pressure on every stream. A beat once
    offered stays valid and constant until taken (amaranth.lib.stream rules).
    """
    p = top.ports
    beats = [b for img in x for b in p.beats.image_beats(img)]
    log = RunLog()
    n = len(x)
    has_dbg = top.debug_port
    dbg_stall = dbg_stall or out_stall
    sim = Simulator(top)
    sim.add_clock(1e-8)

    async def bench(ctx):
        i, cyc, offered = 0, 0, False
        want_dbg = n * p.beats.dbg_beats if has_dbg else 0  # a map's last debug beats may trail its result
        while (len(log.classes) < n or len(log.debug) < want_dbg) and cyc < max_cycles:
            if not offered and i < len(beats) and not (in_stall and in_stall(cyc)):
                ctx.set(top.image.payload, beats[i])
                offered = True
                if log.first_offer is None:
                    log.first_offer = cyc
            ctx.set(top.image.valid, offered)
            rdy = not (out_stall and out_stall(cyc))
            ctx.set(top.result.ready, rdy)
            if has_dbg:
                drdy = not (dbg_stall and dbg_stall(cyc))
                ctx.set(top.debug.ready, drdy)
                if drdy and ctx.get(top.debug.valid):
                    log.debug.append(ctx.get(top.debug.payload))
            if offered and ctx.get(top.image.ready):
                i += 1
                offered = False
            if rdy and ctx.get(top.result.valid):
                log.classes.append(ctx.get(top.result.payload))
                log.result_cycles.append(cyc)
            await ctx.tick()
            cyc += 1
        for _ in range(4):
            await ctx.tick()
        log.cycles = ctx.get(top.cycles)
        log.busy_end = ctx.get(top.busy)

    sim.add_testbench(bench)
    sim.run()
    return log


def decode_debug(top: NetworkTop, words: list[int], n: int) -> list[np.ndarray]:
    """Debug beats of n images -> per hidden layer (n, M) activation bits, by the top's beat geometry (tagged
    beats of a conv network split by layer, dense ones image by image)."""
    g = top.ports.beats
    assert len(words) == n * g.dbg_beats, (len(words), n, g.dbg_beats)
    return g.split_debug(words, n)
