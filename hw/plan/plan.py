"""A plan: given foldings with their modelled cost and exact cycles on a device (no search)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedxnor.contract import cycles
from fedxnor.contract.cost import MODELS, LayerCost, ResourceModel, logic_cells
from fedxnor.contract.devices import DEVICES, Device, get_device
from fedxnor.contract.folding import Folding
from fedxnor.contract.network import check_hardware
from fedxnor.errors import FedxnorError
from fedxnor.export.manifest import Export, load_export
from fedxnor.hw.plan.budget import DEFAULT_LC_SHARE, Budget, budget_for


def specs_of(src: Any) -> tuple[Any, ...]:
    """Layer specifications of an Export, an export directory, an IntNetwork, or a list of specifications; one line
    (exit 2) for a network the accelerator cannot run yet (conv and max-pool: issue 21)."""
    specs = _specs_of(src)
    check_hardware(specs)
    return specs


def _specs_of(src: Any) -> tuple[Any, ...]:
    if isinstance(src, (str, Path)):
        src = load_export(Path(src))
    if isinstance(src, Export):
        return tuple(info.spec for info in src.layers)
    layers = getattr(src, "layers", None)
    if layers is not None and not isinstance(src, (list, tuple)):  # IntNetwork
        return tuple(dataclasses.replace(la.spec, name=la.spec.name or f"fc{i}") for i, la in enumerate(layers))
    specs = tuple(src)
    if specs and all(hasattr(s, "kind") for s in specs):
        check_hardware(specs)  # before the check below: a max-pool has no cost or tokens yet
    if not specs or not all(hasattr(s, "cost") and hasattr(s, "tokens") for s in specs):
        raise FedxnorError("give the solver an Export, an export directory or a non-empty list of layer specifications")
    return specs


def network_name(src: Any) -> str:
    if isinstance(src, Export):
        return str(src.manifest.get("source", {}).get("model") or src.directory.name)
    if isinstance(src, (str, Path)):
        return Path(src).name
    return "network"


def weight_bit_ops(specs: Sequence[Any]) -> int:
    """Weight bits the lanes consume per image: N*M per layer, once per input bit plane.

    Divided by the II this is the pipeline's weight throughput, the figure the block-RAM
    read bandwidth bounds (UP5K: 30 EBR x 16 bits = 480 per cycle).
    """
    return sum(s.weight_bits * s.input_bits for s in specs)


def check_foldings(specs: Sequence[Any], foldings: Sequence[Folding]) -> None:
    if len(foldings) != len(specs):
        raise FedxnorError(f"need one folding per layer ({len(specs)}), got {len(foldings)}")
    for i, (s, f) in enumerate(zip(specs, foldings)):
        s.check_folding(f, f"layer {i}")


@dataclass(frozen=True)
class Plan:
    """The solver's answer: foldings with their modelled cost on a device."""

    device: str
    foldings: tuple[Folding, ...]
    layer_costs: tuple[LayerCost, ...]
    ii: int  # the slowest layer's tokens T = (M/P) * ceil(N/L) * B
    luts: float
    ffs: float
    bram: int
    budget: Budget
    model: str
    cycles_per_inference: int  # contract/cycles.py's exact II for these foldings (>= ii by a few drain cycles)
    latency_cycles: int
    spram: int = 0  # SB_SPRAM256KA cells of the layers in `weight_store`
    weight_store: tuple[int, ...] = ()  # layers whose weights are in SPRAM (loaded over the host link)

    @property
    def store_map(self) -> dict[int, str]:
        """NetworkTop's weight_store argument for this plan."""
        return {i: "spram" for i in self.weight_store}

    @property
    def lcs(self) -> float:
        """Predicted packed logic cells of the board build (iCE40; 0 where LUTs and FFs are counted apart)."""
        if self.device not in DEVICES:
            return 0.0
        loader = DEVICES[self.device].loader_lcs if self.weight_store else 0  # the weight loader on the board top
        return logic_cells(self.device, self.luts, self.ffs) + loader

    def to_dict(self, specs: Sequence[Any]) -> dict[str, Any]:
        dev = DEVICES.get(self.device)
        bit_ops = weight_bit_ops(specs)
        cpi = self.cycles_per_inference
        return {
            "device": self.device,
            "slowest_layer_cycles": self.ii,
            "cycles_per_inference": cpi,
            "latency_cycles": self.latency_cycles,
            "inferences_per_s": dev.default_clock_hz / cpi if dev else None,
            "clock_hz": dev.default_clock_hz if dev else None,
            "luts_model": round(self.luts),
            "ffs_model": round(self.ffs),
            "bram_model": self.bram,
            "spram_model": self.spram,
            "weight_store": list(self.weight_store),
            "lcs_model": round(self.lcs) if self.lcs else None,
            "lc_budget": round(self.budget.lcs) if self.budget.lcs != float("inf") else None,
            "lut_budget": round(self.budget.luts),
            "ff_budget": round(self.budget.ffs),
            "bram_budget": self.budget.bram,
            "resource_model": self.model,
            "weight_bits_per_cycle": bit_ops / cpi,
            "bram_bandwidth_share": (bit_ops / cpi / dev.bram_bandwidth_bits) if dev else None,
            "layers": [{"name": s.name, "fan_in": s.fan_in, "fan_out": s.fan_out, "input_bits": s.input_bits,
                        "pe": f.pe, "simd": f.simd, "cycles": c.cycles, "luts_model": round(c.luts),
                        "ffs_model": round(c.ffs), "bram_model": c.bram}
                       for s, f, c in zip(specs, self.foldings, self.layer_costs)],
        }


def plan_for(specs: Any, foldings: Sequence[Folding], device: str | Device,
             *, max_lut_share: float = 0.85, max_lc_share: float = DEFAULT_LC_SHARE,
             model: ResourceModel | None = None, weight_store: Sequence[int] = ()) -> Plan:
    """Modelled cost of given foldings (no search); layers in `weight_store` keep their weights in SPRAM."""
    dev = get_device(device)
    model = model or MODELS[dev.family]
    specs = specs_of(specs)
    check_foldings(specs, foldings)
    store = tuple(sorted(set(weight_store)))
    if store and not dev.spram:
        raise FedxnorError(f"{dev.name} has no SPRAM: keep every layer's weights in block RAM")
    costs = tuple(s.cost(f, dev, model, first=i == 0, spram=i in store)
                  for i, (s, f) in enumerate(zip(specs, foldings)))
    for i in store:
        if costs[i].spram == 0:
            raise FedxnorError(f"layer {i} folded {foldings[i].pe}x{foldings[i].simd} has rows deeper than one SPRAM "
                               f"(16384 words): fold it with more PE rows")
    layers = cycles.placed(specs, foldings)
    cpi = cycles.cycles_per_inference(layers, read_regs=dev.read_regs)
    lat = cycles.latency_cycles(layers, read_regs=dev.read_regs)
    return Plan(dev.name, tuple(foldings), costs, max(c.cycles for c in costs),
                model.fixed * model.flatten + sum(c.luts for c in costs), model.ff_fixed + sum(c.ffs for c in costs),
                sum(c.bram for c in costs), budget_for(dev, max_lut_share, max_lc_share, loader=bool(store)),
                model.calibrated, cpi, lat, sum(c.spram for c in costs), store)
