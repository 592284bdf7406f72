"""The cycle model of the accelerator (docs/accelerator.md, "Cycle model"): one formula for the planner,
the reports and the tests, which check it against simulation exactly.

Stages: the intake (one bit plane of one beat written per cycle) and one stage per layer (one token per
cycle, no gaps). Between two stages sits a two-bank buffer, so the steady-state initiation interval is
the slowest stage, unless two neighbours are so close that a bank is held longer than two images' issue:
a bank is busy from the producer's first token until the consumer's last, through the producer's drain D.

Networks that start with conv / max-pool layers (NetworkTop maps=True) take their cycles from the event
model of contract/mapcycles.py instead (cycles_per_inference and latency_cycles dispatch to it).

`layers` is a sequence of objects with `.spec` (a layer kind, e.g. Dense) and `.fold` (its Folding):
an Export's layers, or `placed(specs, folds)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fedxnor.contract.folding import Folding
from fedxnor.contract.mapcycles import MAP_KINDS, map_initiation_interval, map_latency, map_layer_timing
from fedxnor.contract.structure import (
    CREDIT_FIXED,
    DRAIN_FIXED,
    DRAIN_REG_CYCLES,
    INTAKE_REG_CYCLES,
    READ_REGS_CYCLES,
    RESULT_FIXED,
    RESULT_REG_CYCLES,
    START_GAP,
    START_REG_CYCLES,
    tree_levels,
)
from fedxnor.errors import FedxnorError


@dataclass(frozen=True)
class Placed:
    """A layer's specification with the folding it is built with."""

    spec: Any
    fold: Folding


def placed(specs: Sequence[Any], folds: Sequence[Folding]) -> tuple[Placed, ...]:
    return tuple(Placed(s, f) for s, f in zip(specs, folds))


@dataclass(frozen=True)
class StageTiming:
    name: str
    tokens: int  # T: cycles of issue per image
    drain: int  # D: last issue -> consumer's first issue (or result valid for the output layer)


def drain_fixed(read_regs: bool = False) -> int:
    """DRAIN_FIXED of a hidden layer: one more each when its activation buffer registers the producer's outputs
    and when the consumer's sequencer registers its start."""
    return DRAIN_FIXED + (DRAIN_REG_CYCLES + START_REG_CYCLES) * bool(read_regs)


def output_fixed(read_regs: bool = False) -> tuple[int, int]:
    """(RESULT_FIXED, CREDIT_FIXED) of the output layer: one more each with the result register."""
    extra = RESULT_REG_CYCLES * bool(read_regs)
    return RESULT_FIXED + extra, CREDIT_FIXED + extra + START_REG_CYCLES * bool(read_regs)


def tree_latency(fold: Folding, stages: int | None = None, read_regs: bool = False) -> int:
    """R: register stages of the lane group's adder tree (default: one per level), plus, with read_regs,
    the two weight registers before the lanes and the extra cycle of the layer's input-buffer read."""
    return (tree_levels(fold.simd) if stages is None else stages) + READ_REGS_CYCLES * bool(read_regs)


def stage_timings(layers: Sequence[Any], stages: int | None = None, read_regs: bool = False) -> list[StageTiming]:
    first = layers[0]
    out = [StageTiming("intake", first.spec.intake_tokens(first.fold),
                       (INTAKE_REG_CYCLES + START_REG_CYCLES) * bool(read_regs))]
    for i, layer in enumerate(layers):
        spec, fold = layer.spec, layer.fold
        fixed = output_fixed(read_regs)[0] if spec.is_output else drain_fixed(read_regs)
        out.append(StageTiming(spec.name or f"layer{i}", spec.tokens(fold),
                               tree_latency(fold, stages, read_regs) + fold.pe + fixed))
    return out


def initiation_interval(layers: Sequence[Any], stages: int | None = None, read_regs: bool = False) -> float:
    """Steady-state cycles between results with images back to back and the result always taken.

        II = max( T_in, max_l T_l + G,
                  max over hidden l of (T_l + D_l + T_{l+1} + G) / 2,  bank of activation buffer l
                  (T_out + R_out + P_out + CREDIT_FIXED) / 2 )          the 2-entry result FIFO

    G = START_GAP with read_regs (an idle cycle between two images of a layer), else 0.
    """
    st = stage_timings(layers, stages, read_regs)
    gap = START_GAP * bool(read_regs)
    ii = float(max([st[0].tokens] + [s.tokens + gap for s in st[1:]]))
    for prod, cons in zip(st[1:-1], st[2:]):  # hidden layer -> next layer
        ii = max(ii, (prod.tokens + prod.drain + cons.tokens + gap) / 2)
    out, last = st[-1], layers[-1].fold
    return max(ii, (out.tokens + tree_latency(last, stages, read_regs) + last.pe + output_fixed(read_regs)[1]) / 2)


def has_maps(layers: Sequence[Any]) -> bool:
    """Whether the network starts with conv / max-pool layers (its cycles come from contract/mapcycles.py)."""
    return any(x.spec.kind in MAP_KINDS for x in layers)


def _maps_plain(read_regs: bool) -> None:
    if read_regs:
        raise FedxnorError("a conv network builds without read registers so far (issue 21): no cycle model for it")


def cycles_per_inference(layers: Sequence[Any], *, stages: int | None = None, read_regs: bool = False) -> int:
    """Steady-state clock cycles per image (the initiation interval, rounded up)."""
    if has_maps(layers):
        _maps_plain(read_regs)
        return int(-(-map_initiation_interval(layers, stages) // 1))
    return int(-(-initiation_interval(layers, stages, read_regs) // 1))


def latency_cycles(layers: Sequence[Any], stages: int | None = None, read_regs: bool = False) -> int:
    """Cycles from the first beat of an image being offered to an idle accelerator until its result is valid."""
    if has_maps(layers):
        _maps_plain(read_regs)
        return map_latency(layers, stages)
    st = stage_timings(layers, stages, read_regs)
    total = st[0].tokens + st[0].drain
    for s in st[1:]:
        total += s.tokens - 1 + s.drain
    return total


def layer_timing(spec: Any, fold: Folding, *, first: bool = False, read_regs: bool = False) -> tuple[int, int]:
    """(D, own) of one layer for the solver: everything in the II formula but the pair terms depends on one
    layer alone, and those only on neighbours, so the solver rebuilds the II from these exactly.

    D: the drain (for a hidden layer with the start gap folded in: the pair term is (T_l + D_l + T_l+1) / 2);
    own: the least II the layer allows alone (its T + G; the intake's for the first; the result FIFO's for the
    output layer).

    Conv and max-pool layers (fold None): contract/mapcycles.py map_layer_timing, exact for the unit alone; a
    conv network's II is contract/mapcycles.py's event model, not a sum of these terms.
    """
    if spec.kind in MAP_KINDS:
        _maps_plain(read_regs)
        return map_layer_timing(spec, fold)
    t = spec.tokens(fold)
    fixed = output_fixed(read_regs)[1] if spec.is_output else drain_fixed(read_regs)
    drain = tree_latency(fold, None, read_regs) + fold.pe + fixed
    gap = START_GAP * bool(read_regs)
    own = t + gap
    if not spec.is_output:
        drain += gap
    if first:
        own = max(own, spec.intake_tokens(fold))
    if spec.is_output:
        own = max(own, -(-(t + drain) // 2))
    return drain, own
