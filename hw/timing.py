"""Transitional: the cycle model now lives in fedxnor.contract.cycles (pass it `export.layers`).

Removed once every caller imports from there (issue 19); new code must not import this module.
"""

from __future__ import annotations

from fedxnor.contract import cycles


def cycles_per_inference(export, *, stages=None, read_regs=False) -> int:
    return cycles.cycles_per_inference(export.layers, stages=stages, read_regs=read_regs)


def latency_cycles(export, stages=None, read_regs=False) -> int:
    return cycles.latency_cycles(export.layers, stages, read_regs)


def initiation_interval(export, stages=None, read_regs=False) -> float:
    return cycles.initiation_interval(export.layers, stages, read_regs)


def stage_timings(export, stages=None, read_regs=False):
    return cycles.stage_timings(export.layers, stages, read_regs)
