"""Does an export fit a device with its own foldings, and if not, one line that says why and what to do."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fedxnor.contract.devices import Device, get_device
from fedxnor.contract.folding import Folding
from fedxnor.errors import FedxnorError
from fedxnor.export.manifest import Export, load_export
from fedxnor.hw.plan.plan import Plan, fold_text, network_name, plan_for, specs_of
from fedxnor.hw.plan.solver import solve


def check_fit(export_or_specs: Any, device: str, *, foldings: Sequence[Folding | None] | None = None,
              max_lut_share: float = 1.0, max_lc_share: float = 1.0, spram: bool = False,
              maps: bool = False) -> dict[int, str]:
    """Raise a one-line FedxnorError unless the design fits `device`; return the weight_store it fits with.

    The foldings checked are `foldings`, else an Export's own; for bare specifications, whether any folding
    fits. With spram, on a device with SPRAM (UP5K), a design whose weights do not fit in block RAM fits if
    it does with layer 0's weights in SPRAM: the result is then {0: "spram"} (else {}). maps: conv and max-pool
    layers too (plan.specs_of).
    """
    dev = get_device(device)
    src = load_export(Path(export_or_specs)) if isinstance(export_or_specs, (str, Path)) else export_or_specs
    if foldings is None and isinstance(src, Export):
        foldings = [info.fold for info in src.layers]
    if foldings is None:
        return solve(src, dev, max_lut_share=max_lut_share, max_lc_share=max_lc_share, spram=spram, maps=maps).store_map
    specs = specs_of(src, maps=maps)
    plan = plan_for(specs, foldings, dev, max_lut_share=max_lut_share, max_lc_share=max_lc_share, maps=True)
    name = network_name(src)
    desc = ", ".join(fold_text(f) for f in foldings)
    problem = over_budget(plan, dev, name, desc)
    first, fold0 = specs[0], foldings[0]
    if problem and spram and dev.spram and first.kind == "dense" and first.spram_cells(fold0):
        alt = plan_for(specs, foldings, dev, max_lut_share=max_lut_share, max_lc_share=max_lc_share,
                       weight_store=(0,), maps=True)
        alt_problem = over_budget(alt, dev, name, desc)
        if not alt_problem:
            return alt.store_map
        base, _, refold = problem.partition("; refold")
        alt_reason = alt_problem.split(" needs ", 1)[1].partition("; refold")[0]
        problem = f"{base}, and with layer 0's weights in SPRAM it needs {alt_reason}" + (f"; refold{refold}" if refold else "")
    if problem:
        raise FedxnorError(problem)
    return {}


def over_budget(plan: Plan, dev: Device, name: str, desc: str) -> str:
    """The one-line reason `plan` does not fit `dev`, or ''."""
    bram = plan.budget.bram
    top = dev.top_lcs + (dev.loader_lcs if plan.weight_store else 0)
    refold = f"; refold it with 'fedxnor fold DIR --device {dev.name} --out DIR2'"
    if plan.spram > dev.spram:
        return (f"{name} with folding {desc} needs {plan.spram} SPRAMs, {dev.name} has {dev.spram}; "
                f"fold layer 0 with fewer rows or lanes")
    if plan.bram > bram:
        return (f"{name} with folding {desc} needs {plan.bram} block RAMs, {dev.name} has {bram}"
                + (f" beside the weight loader's {dev.loader_bram}" if plan.weight_store else "") + refold)
    if plan.luts > plan.budget.luts:
        return (f"{name} with folding {desc} needs about {round(plan.luts)} LUTs, {dev.name} allows "
                f"{round(plan.budget.luts)}" + refold)
    if plan.lcs > plan.budget.lcs:
        return (f"{name} with folding {desc} needs about {round(plan.lcs)} logic cells with the board "
                f"top ({round(plan.luts)} LUTs + {round(plan.ffs)} FFs + {top}), {dev.name} has "
                f"{round(plan.budget.lcs)}" + refold)
    if plan.ffs > plan.budget.ffs:
        return (f"{name} with folding {desc} needs about {round(plan.ffs)} flip-flops, {dev.name} allows "
                f"{round(plan.budget.ffs)}" + refold)
    return ""
