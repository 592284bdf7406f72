"""The folding solver: per-layer (P, L) that balance the dataflow pipeline on a device.

Every layer of the accelerator runs at once, one image each (a FINN-style dataflow pipeline), so the
initiation interval (II) of the whole network is its slowest stage. The solver finds the smallest II
whose cheapest foldings still fit the device (LUTs under a share of the device, block RAM tiles under
its count, logic cells on iCE40), then, at that II, the foldings with the fewest LUTs.

It is exact over the candidate set: per layer, every folding its kind accepts (`candidate_foldings`),
priced by the kind (`cost`: cycles, drain, LUTs, FFs, block RAM). A dynamic programme over layers
keeps, for each block RAM count, the fewest LUTs, so feasibility at an II is decided exactly, and a
binary search over the candidate cycle counts finds the smallest feasible II. The per-layer (own, drain)
terms rebuild contract/cycles.py's II exactly, pair terms included.
"""

from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass, field, replace
from typing import Any

from fedxnor.contract.cost import MODELS, LayerCost, ResourceModel, weight_register_ffs
from fedxnor.contract.devices import Device, get_device
from fedxnor.contract.folding import Folding
from fedxnor.contract.structure import SINGLE_READ_MAX_WORDS
from fedxnor.errors import FedxnorError
from fedxnor.hw.plan.budget import DEFAULT_LC_SHARE, Budget, budget_for
from fedxnor.hw.plan.plan import Plan, after_map, as_built, network_name, plan_for, specs_of


@functools.lru_cache(maxsize=256)
def _options(spec: Any, device: Device, model: ResourceModel, first: bool, spram: bool = False,
             after_map: int = 0, weight_regs: bool = False,
             max_words: int = 0) -> tuple[tuple[Folding | None, LayerCost], ...]:
    """Candidate foldings of one layer with their costs, dominated ones removed, fastest first; a kind without
    weights (max-pool) has one option, the folding None.

    spram: the layer's weights in SPRAM; only foldings whose rows fit the device's SPRAM cells.
    weight_regs: a fully connected layer of a conv network: its weight registers count (plan.layer_cost).
    max_words: a fully connected layer's input words at most this (0: any; read_word_limit)."""
    if spec.kind == "conv":
        opts = _conv_options(spec, device, model, first)
    else:
        folds = spec.candidate_foldings() if spec.has_weights else [None]
        if max_words and spec.kind == "dense":
            folds = [f for f in folds if -(-spec.fan_in // f.simd) <= max_words]
        opts = [(f, spec.cost(f, device, model, first=first, spram=spram, after_map=after_map)) for f in folds]
        if weight_regs and spec.kind == "dense" and not device.read_regs:
            opts = [(f, replace(c, ffs=c.ffs + weight_register_ffs(spec, f, device, model, spram=spram))) for f, c in opts]
    if spram:
        opts = [(f, c) for f, c in opts if 0 < c.spram <= device.spram]
    opts.sort(key=lambda o: (o[1].own, o[1].cycles + o[1].drain, o[1].luts, o[1].bram, o[1].ffs))
    kept: list[tuple[Folding, LayerCost]] = []
    for f, c in opts:  # keep an option only if no kept one is as good in every respect
        if not any(k.own <= c.own and k.cycles <= c.cycles and k.cycles + k.drain <= c.cycles + c.drain
                   and k.luts <= c.luts and k.bram <= c.bram and k.ffs <= c.ffs for _, k in kept):
            kept.append((f, c))
    return tuple(kept)


def read_word_limit(specs: Any, i: int, timing_device: Device) -> int:
    """Layer i's most input words (0: any): a dense layer after a dense layer of a conv network reads its activation
    buffer in one stage, whose word mux limits the clock on a device that wants read registers
    (contract/structure.py SINGLE_READ_MAX_WORDS); timing_device: the device before as_built turns them off."""
    conv = any(s.kind != "dense" for s in specs)
    if conv and timing_device.read_regs and specs[i].kind == "dense" and i > 0 and specs[i - 1].kind == "dense":
        return SINGLE_READ_MAX_WORDS
    return 0


PLATEAU = 2  # a conv row count's wider foldings stop once this many in a row no longer lower its own cycles


def _conv_options(spec: Any, device: Device, model: ResourceModel, first: bool) -> list[tuple[Folding, LayerCost]]:
    """A conv layer's candidates: per row count P, the narrowest L of each words-per-window count W, from the
    fewest lanes up, until widening stops paying (its own cycles, the exact per-image cycles of the unit from
    contract/cycles.py's event model, no longer fall: the window's k·k taps bound it). The event model costs a
    tenth of a second per folding, so the every-L candidate set of a dense layer would take minutes here."""
    out = []
    by_pe: dict[int, list[Folding]] = {}
    for f in spec.candidate_foldings():
        by_pe.setdefault(f.pe, []).append(f)
    for folds in by_pe.values():
        seen: set[int] = set()
        best, stale = None, 0
        for f in sorted(folds, key=lambda f: f.simd):
            w = spec.words_per_row(f)
            if w in seen:
                continue
            seen.add(w)
            c = spec.cost(f, device, model, first=first)
            out.append((f, c))
            if best is not None and c.own >= best:
                stale += 1
                if stale >= PLATEAU:
                    break
            else:
                best, stale = c.own, 0
    return out


_State = tuple[float, float, int, tuple[int, ...]]  # (luts, ffs, T + D of the last layer, option indices so far)


def _cheapest(options: list[list[tuple[Folding, LayerCost]]], budget: Budget, fixed: tuple[float, float],
              fewest: str = "luts", ii: int | None = None,
              pairs: tuple[bool, ...] | None = None) -> tuple[float, float, int, tuple[int, ...]] | None:
    """Fewest-LUT (or fewest-block-RAM) choice of one option per layer within the budget.

    With `ii`, neighbours must also keep the cycle model's pair term: T_l + D_l + T_{l+1} <= 2 II, where
    pairs[l] says it applies between layers l and l + 1 (two dense layers; a conv front's streams have none).
    Returns (luts, ffs, bram, option indices), or None if nothing fits. Exact: a DP over the
    layers in pipeline order keeps, per block RAM count, the Pareto front of (LUTs, FFs, T + D
    of the last layer); the resources are sums over layers, block RAM counts small integers.
    """
    states: dict[int, list[_State]] = {0: [(fixed[0], fixed[1], 0, ())]}
    for layer, opts in enumerate(options):
        # T + D of this layer only matters against the next layer's T: round it up to the next level
        # 2 II - T_next that decides anything (the last layer's to 0), so equivalent states merge.
        levels: list[int] = []
        pair_next = pairs is None or (layer + 1 < len(options) and pairs[layer])
        pair_prev = pairs is None or (layer > 0 and pairs[layer - 1])
        if ii is not None and layer + 1 < len(options) and pair_next:
            levels = sorted({2 * ii - c.cycles for _, c in options[layer + 1]})

        def level(td: int, levels: list[int] = levels) -> int:
            if not levels:
                return 0
            i = bisect.bisect_left(levels, td)
            return levels[i] if i < len(levels) else td

        nxt: dict[int, dict] = {}
        for bram, front in states.items():
            for lu0, ff0, td0, picks in front:
                for k, (_, c) in enumerate(opts):
                    if ii is not None and picks and pair_prev and td0 + c.cycles > 2 * ii:
                        continue
                    b, lu, ff = bram + c.bram, lu0 + c.luts, ff0 + c.ffs
                    if budget.fits(lu, ff, b):
                        key = (lu, ff, level(c.cycles + c.drain))
                        bucket = nxt.setdefault(b, {})
                        if key not in bucket:
                            bucket[key] = picks + (k,)
        states = {}
        kept: list[tuple[float, float, int]] = []  # fronts of fewer block RAMs dominate states with more
        for b in sorted(nxt):
            front: list[_State] = []
            mine: list[tuple[float, float, int]] = []
            for key in sorted(nxt[b]):
                lu, ff, td = key
                if any(o[1] <= ff and o[2] <= td for o in kept if o[0] <= lu) or \
                        any(o[1] <= ff and o[2] <= td for o in mine):
                    continue
                mine.append(key)
                front.append((lu, ff, td, nxt[b][key]))
            if front:
                states[b] = front
                kept.extend(mine)
        if not states:
            return None
    flat = [(lu, ff, b, picks) for b, front in states.items() for lu, ff, _, picks in front]
    key = (lambda t: (t[0], t[2], t[1])) if fewest == "luts" else (lambda t: (t[2], t[0], t[1]))
    return min(flat, key=key)


@dataclass
class _Search:
    specs: tuple[Any, ...]
    device: Device
    model: ResourceModel
    budget: Budget
    options: list[tuple[tuple[Folding | None, LayerCost], ...]] = field(default_factory=list)
    store: tuple[int, ...] = ()  # layers whose weights go to SPRAM
    timing_device: Device | None = None  # the device as asked for (read_word_limit), before as_built

    def __post_init__(self) -> None:
        self.pairs = tuple(a.kind == b.kind == "dense" for a, b in zip(self.specs[:-1], self.specs[1:]))
        conv = any(s.kind != "dense" for s in self.specs)
        timing = self.timing_device or self.device
        self.options = [_options(s, self.device, self.model, i == 0, i in self.store, after_map(self.specs, i), conv,
                                 read_word_limit(self.specs, i, timing))
                        for i, s in enumerate(self.specs)]

    @property
    def fixed(self) -> tuple[float, float]:
        return self.model.fixed * self.model.flatten, self.model.ff_fixed

    def allowed(self, ii: int) -> list[list[tuple[Folding, LayerCost]]]:
        return [[o for o in opts if o[1].own <= ii] for opts in self.options]

    def at(self, ii: int) -> tuple[float, float, int, tuple[int, ...]] | None:
        allowed = self.allowed(ii)
        if any(not a for a in allowed):
            return None
        return _cheapest(allowed, self.budget, self.fixed, ii=ii, pairs=self.pairs)

    def plan(self, ii: int) -> Plan | None:
        res = self.at(ii)
        if res is None:
            return None
        allowed = self.allowed(ii)
        folds = tuple(allowed[i][k][0] for i, k in enumerate(res[3]))
        lc_share = self.budget.lcs / self.device.lcs if self.device.lcs else DEFAULT_LC_SHARE
        return plan_for(self.specs, folds, self.device, max_lut_share=self.budget.luts / self.device.luts,
                        max_lc_share=lc_share, model=self.model, weight_store=self.store, maps=True)

    def slowest(self) -> int:
        """An II every assignment meets: the largest own or pair term over all options."""
        return max(max(max(c.own, c.cycles + c.drain) for _, c in opts) for opts in self.options)


def solve(export_or_specs: Any, device: str | Device, *, max_lut_share: float = 0.85,
          target_cycles: int | None = None, model: ResourceModel | None = None,
          max_lc_share: float = DEFAULT_LC_SHARE, spram: bool = False, maps: bool = False) -> Plan:
    """The plan with the smallest II (slowest layer's cycles) that fits; at that II, the fewest LUTs.

    With target_cycles, the fewest-LUT plan whose II is at most target_cycles. With spram, on a device
    with SPRAM (UP5K), a network whose weights do not fit in block RAM may put layer 0's in SPRAM
    (Plan.weight_store); one that fits in block RAM gets the same plan as without. maps: conv and max-pool layers
    too (plan.specs_of); a max-pool's folding is None.
    """
    asked = get_device(device)
    model = model or MODELS[asked.family]
    specs = specs_of(export_or_specs, maps=maps)
    dev = as_built(asked, specs)
    search = _Search(specs, dev, model, budget_for(dev, max_lut_share, max_lc_share), timing_device=asked)
    note = ""  # why layer 0 in SPRAM does not help either
    if spram and dev.spram and search.at(search.slowest()) is None and specs[0].kind != "dense":
        note = f"; layer 0 is a {specs[0].kind} layer, whose weights stay in block RAM (SPRAM holds dense layers' only)"
    elif spram and dev.spram and search.at(search.slowest()) is None:
        alt = _Search(specs, dev, model, budget_for(dev, max_lut_share, max_lc_share, loader=True), store=(0,),
                      timing_device=asked)
        if not alt.options[0]:
            note = f"; layer 0 does not fold into {dev.spram} SPRAMs either"
        elif alt.at(alt.slowest()) is not None:
            search = alt
        else:
            note = f"; with layer 0's weights in SPRAM (and the loader): {_why_not(alt, export_or_specs)}"
    slowest = search.slowest()
    if target_cycles is not None:
        best = search.plan(int(target_cycles))
        if best is None:
            fastest = (solve(specs, asked, max_lut_share=max_lut_share, model=model, max_lc_share=max_lc_share, maps=True)
                       if search.at(slowest) else None)
            hint = (f"the fastest that fits takes {fastest.cycles_per_inference}" if fastest
                    else _why_not(search, export_or_specs))
            raise FedxnorError(f"no folding of {network_name(export_or_specs)} reaches {target_cycles} cycles per "
                               f"image on {dev.name}: {hint}; raise the target or pick a bigger device")
        return best
    if search.at(slowest) is None:
        raise FedxnorError(_why_not(search, export_or_specs) + note)
    lo, hi = 1, slowest
    while lo < hi:  # smallest feasible II (feasibility is monotone in II)
        mid = (lo + hi) // 2
        if search.at(mid) is not None:
            hi = mid
        else:
            lo = mid + 1
    plan = search.plan(lo)
    # a conv network's II is the event model's over the whole front (>= every layer's own): the per-layer terms
    # bound it from below, the plan reports the exact one
    assert plan is not None and (plan.cycles_per_inference == lo or not all(search.pairs)), (plan, lo)
    return plan


def _why_not(search: _Search, src: Any) -> str:
    """One line naming the resource that does not fit, with the least the network needs of it."""
    name, dev, budget = network_name(src), search.device, search.budget
    every = [list(opts) for opts in search.options]
    big = 10**9
    bits = sum(s.weight_bits for s in search.specs if s.has_weights)
    # Fewest block RAMs with the logic budget kept (weights may move into logic).
    by_bram = _cheapest(every, Budget(budget.luts, budget.ffs, big, budget.lcs, budget.top_lcs), search.fixed,
                        fewest="bram")
    if by_bram is not None:
        return (f"{name} weights need {by_bram[2]} block RAMs, {dev.name} has {dev.bram} ({bits} weight bits, "
                f"and the {round(budget.luts)} LUTs allowed leave no room to hold more of them in logic); "
                f"pick a bigger device or a smaller model")
    least = _cheapest(every, Budget(float(big), float(big), big), search.fixed)
    assert least is not None
    cells = budget.lc(least[0], least[1])  # the fewest-LUT plan; LCs = LUTs + FFs + top, so near the fewest LCs
    if cells > budget.lcs and least[0] <= budget.luts and least[1] <= budget.ffs:
        return (f"{name} needs at least {round(cells)} logic cells with the board top, {dev.name} allows "
                f"{round(budget.lcs)} ({dev.lcs} x max_lc_share); pick a bigger device or a smaller model")
    if least[1] > budget.ffs and least[0] <= budget.luts:
        return (f"{name} needs at least {round(least[1])} flip-flops, {dev.name} allows {round(budget.ffs)} "
                f"({dev.ffs} x max_lut_share); pick a bigger device or a smaller model")
    return (f"{name} needs at least {round(least[0])} LUTs, {dev.name} allows {round(budget.luts)} "
            f"({dev.luts} x max_lut_share); pick a bigger device or a smaller model")


def solve_foldings(export_or_specs: Any, device: str, *, max_lut_share: float = 0.85,
                   target_cycles: int | None = None, max_lc_share: float = DEFAULT_LC_SHARE,
                   spram: bool = False, maps: bool = False) -> list[Folding | None]:
    """Per-layer foldings that minimise the pipeline's II on `device` (FedxnorError if nothing fits).

    On iCE40 the binding budget is the packed logic cells of the board build (logic_cells), kept
    under max_lc_share of the device. spram: see solve (layer 0 in SPRAM when block RAM is too small).
    """
    return list(solve(export_or_specs, device, max_lut_share=max_lut_share, target_cycles=target_cycles,
                      max_lc_share=max_lc_share, spram=spram, maps=maps).foldings)
