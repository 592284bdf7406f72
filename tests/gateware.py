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
