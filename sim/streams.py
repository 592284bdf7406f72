"""Cycle-level cocotb drivers and monitors for valid/ready streams, with random stalls.

Protocol (amaranth.lib.stream): a beat transfers at a rising clock edge where
valid and ready are both high; a driver must hold valid and payload until then.

Sampling: each cycle, after the rising edge, the driver (or monitor) sets its
outputs for the cycle, then waits for ReadOnly and reads the other side's
signal. Reading in ReadOnly, not right after the edge, gives the same answer on
Icarus and Verilator (on Verilator a value-change callback on the clock sees
registers already updated).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from cocotb.triggers import ReadOnly, RisingEdge


class StreamDriver:
    """Drives valid/payload of a stream; valid drops for a random cycle with probability `stall`."""

    def __init__(self, clk, valid, ready, payload, stall: float = 0.0, rng: random.Random | None = None):
        self.clk, self.valid, self.ready, self.payload = clk, valid, ready, payload
        self.stall = stall
        self.rng = rng or random.Random(0)
        self.sent = 0
        self.valid.value = 0

    async def send(self, beats: list[int]) -> None:
        """Send all beats, in order. Returns after the last transfer's edge."""
        i = 0
        while i < len(beats):
            await RisingEdge(self.clk)
            if self.stall and self.rng.random() < self.stall:
                self.valid.value = 0
                continue
            self.valid.value = 1
            self.payload.value = beats[i]
            await ReadOnly()
            if int(self.ready.value):
                i += 1
                self.sent += 1
                # the transfer happens at the next edge; valid is updated after it
        await RisingEdge(self.clk)
        self.valid.value = 0


class StreamMonitor:
    """Drives ready of a stream (low for a random cycle with probability `stall`) and records
    every transferred payload, calling `on_beat(payload)` for each."""

    def __init__(self, clk, valid, ready, payload, stall: float = 0.0, rng: random.Random | None = None,
                 on_beat: Callable[[int], None] | None = None):
        self.clk, self.valid, self.ready, self.payload = clk, valid, ready, payload
        self.stall = stall
        self.rng = rng or random.Random(1)
        self.beats: list[int] = []
        self.on_beat = on_beat
        self.ready.value = 0

    async def run(self) -> None:
        """Run forever (start it as a task and cancel it when done)."""
        while True:
            await RisingEdge(self.clk)
            r = 0 if (self.stall and self.rng.random() < self.stall) else 1
            self.ready.value = r
            await ReadOnly()
            if r and int(self.valid.value):
                v = int(self.payload.value)
                self.beats.append(v)
                if self.on_beat:
                    self.on_beat(v)
