"""A plan: given foldings with their modelled cost and exact cycles on a device (no search)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedxnor.contract import cycles
from fedxnor.contract.cost import MODELS, LayerCost, ResourceModel, logic_cells, weight_register_ffs
from fedxnor.contract.devices import DEVICES, Device, get_device
from fedxnor.contract.folding import Folding
from fedxnor.contract.network import check_hardware
from fedxnor.errors import FedxnorError
from fedxnor.export.manifest import Export, load_export
from fedxnor.hw.plan.budget import DEFAULT_LC_SHARE, Budget, budget_for


def specs_of(src: Any, *, maps: bool = False) -> tuple[Any, ...]:
    """Layer specifications of an Export, an export directory, an IntNetwork, or a list of specifications; one line
    (exit 2) for a network the accelerator cannot run yet. maps: plan conv and max-pool layers too (issue 21: their
    gateware exists, NetworkTop(maps=True), but the CLI paths refuse them until the cycle model and the debug stream
    cover them; the library's planner, its tests and the benchmarks ask for them with maps=True)."""
    specs = _specs_of(src, maps)
    if not maps:
        check_hardware(specs)
    return specs


def _specs_of(src: Any, maps: bool) -> tuple[Any, ...]:
    if isinstance(src, (str, Path)):
        src = load_export(Path(src))
    if isinstance(src, Export):
        return tuple(info.spec for info in src.layers)
    layers = getattr(src, "layers", None)
    if layers is not None and not isinstance(src, (list, tuple)):  # IntNetwork
        return tuple(dataclasses.replace(la.spec, name=la.spec.name or default_name(la.spec, i)) for i, la in enumerate(layers))
    specs = tuple(src)
    if specs and all(hasattr(s, "kind") for s in specs) and not maps:
        check_hardware(specs)  # before the check below, with the reason
    if not specs or not all(hasattr(s, "cost") for s in specs):
        raise FedxnorError("give the solver an Export, an export directory or a non-empty list of layer specifications")
    return specs


def default_name(spec: Any, i: int) -> str:
    """A layer's name when its specification has none: fc<i> for a dense layer, else <kind><i> (conv3, maxpool2)."""
    return f"fc{i}" if spec.kind == "dense" else f"{spec.kind}{i}"


def network_name(src: Any) -> str:
    if isinstance(src, Export):
        return str(src.manifest.get("source", {}).get("model") or src.directory.name)
    if isinstance(src, (str, Path)):
        return Path(src).name
    return "network"


def weight_bit_ops(specs: Sequence[Any]) -> int:
    """Weight bits the lanes consume per image: N*M per layer, once per input bit plane, and for a convolution once
    per output pixel (its matrix is read once per window; a max-pool reads none).

    Divided by the II this is the pipeline's weight throughput, the figure the block-RAM
    read bandwidth bounds (UP5K: 30 EBR x 16 bits = 480 per cycle).
    """
    return sum(s.weight_bits * s.input_bits * (s.out_size // s.fan_out) for s in specs if s.has_weights)


def check_foldings(specs: Sequence[Any], foldings: Sequence[Folding | None]) -> None:
    """One folding per layer: a legal (P, L) for a kind with weights, None for one without (max-pool)."""
    if len(foldings) != len(specs):
        raise FedxnorError(f"need one folding per layer ({len(specs)}), got {len(foldings)}")
    for i, (s, f) in enumerate(zip(specs, foldings)):
        if not s.has_weights:
            if f is not None:
                raise FedxnorError(f"layer {i} is a {s.kind} layer: it has no weights to fold, give None for it")
            continue
        if not isinstance(f, Folding):
            raise FedxnorError(f"layer {i} ({s.kind}) needs a folding (P, L), got {f!r}")
        s.check_folding(f, f"layer {i}")


def fold_text(fold: Folding | None) -> str:
    """'PxL', or '-' for a layer without weights."""
    return "-" if fold is None else f"{fold.pe}x{fold.simd}"


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
            "layers": [layer_row(s, f, c) for s, f, c in zip(specs, self.foldings, self.layer_costs)],
        }


def layer_row(spec: Any, fold: Folding | None, cost: LayerCost) -> dict[str, Any]:
    """One layer of Plan.to_dict: its kind and shape, folding (None for a max-pool), cycles and modelled resources."""
    row: dict[str, Any] = {"name": spec.name, "kind": spec.kind}
    if spec.has_weights:
        row.update(fan_in=spec.fan_in, fan_out=spec.fan_out)
    row.update(input_bits=spec.input_bits, pe=fold.pe if fold else None, simd=fold.simd if fold else None)
    if spec.kind != "dense":
        row.update(in_shape=list(spec.in_shape), out_shape=list(spec.out_shape))
    row.update(cycles=cost.cycles, own_cycles=cost.own, luts_model=round(cost.luts), ffs_model=round(cost.ffs),
               bram_model=cost.bram)
    return row


def after_map(specs: Sequence[Any], i: int) -> int:
    """The channels of the conv front's flattened map when layer i is the dense layer that reads it (its input
    buffer is that map, H·W pixels of C bits: Dense.cost after_map), else 0."""
    if i > 0 and specs[i].kind == "dense" and specs[i - 1].kind != "dense":
        return specs[i - 1].out_shape[2]
    return 0


def layer_cost(specs: Sequence[Any], i: int, fold: Folding | None, device: Device, model: ResourceModel, *,
               spram: bool = False) -> LayerCost:
    """Layer i's cost as the top builds it: a fully connected layer of a network with a conv front also pays the
    registers between its weights and its lanes (hw/top.py's weight_regs, contract/cost.py weight_register_ffs),
    which the device's own read_regs (off for a conv network, as_built) would not count."""
    spec = specs[i]
    cost = spec.cost(fold, device, model, first=i == 0, spram=spram, after_map=after_map(specs, i))
    if spec.kind == "dense" and not device.read_regs and any(s.kind != "dense" for s in specs):
        cost = dataclasses.replace(cost, ffs=cost.ffs + weight_register_ffs(spec, fold, device, model, spram=spram))
    return cost


def as_built(device: Device, specs: Sequence[Any]) -> Device:
    """The device as the top builds this network for it: a conv network has no read registers yet (NetworkTop
    refuses read_regs with conv layers, issue 21), so its layers are priced and timed without them."""
    if device.read_regs and any(s.kind != "dense" for s in specs):
        return dataclasses.replace(device, read_regs=False)
    return device


def build_options(device: str | Device, specs: Sequence[Any]) -> dict[str, Any]:
    """NetworkTop's options as the device's build uses them (boards/build.py board_core): its read registers
    (as_built), weight ROM placement and weight ROM tiles. `fedxnor verify --device` simulates the same RTL."""
    dev = get_device(device)
    return {"read_regs": as_built(dev, specs).read_regs, "weight_roms": dev.weight_roms,
            "weight_tiles": dev.weight_tile_shapes}


def costs_ii(costs: Sequence[LayerCost]) -> int:
    """The II the solver rebuilds from per-layer (own, drain) terms: max(own, ceil((T_l + D_l + T_l+1) / 2))."""
    ii = max(c.own for c in costs)
    for a, b in zip(costs[:-1], costs[1:]):
        ii = max(ii, -(-(a.cycles + a.drain + b.cycles) // 2))
    return ii


def pipeline_cycles(specs: Sequence[Any], foldings: Sequence[Folding | None], costs: Sequence[LayerCost],
                    read_regs: bool) -> tuple[int, int]:
    """(cycles per inference, latency) of contract/cycles.py (for a conv network its event model)."""
    layers = cycles.placed(specs, foldings)
    return (cycles.cycles_per_inference(layers, read_regs=read_regs),
            cycles.latency_cycles(layers, read_regs=read_regs))


def plan_for(specs: Any, foldings: Sequence[Folding | None], device: str | Device,
             *, max_lut_share: float = 0.85, max_lc_share: float = DEFAULT_LC_SHARE,
             model: ResourceModel | None = None, weight_store: Sequence[int] = (), maps: bool = False) -> Plan:
    """Modelled cost of given foldings (no search; None for a max-pool); layers in `weight_store` keep their weights
    in SPRAM. maps: conv and max-pool layers too (specs_of)."""
    dev = get_device(device)
    model = model or MODELS[dev.family]
    specs = specs_of(specs, maps=maps)
    dev = as_built(dev, specs)
    check_foldings(specs, foldings)
    store = tuple(sorted(set(weight_store)))
    if store and not dev.spram:
        raise FedxnorError(f"{dev.name} has no SPRAM: keep every layer's weights in block RAM")
    for i in store:
        if not 0 <= i < len(specs) or specs[i].kind != "dense":
            raise FedxnorError(f"layer {i} cannot keep its weights in SPRAM: the run-time weight store takes dense layers "
                               "only (hw/weightstore.py); keep it in block RAM")
    costs = tuple(layer_cost(specs, i, f, dev, model, spram=i in store) for i, f in enumerate(foldings))
    for i in store:
        if costs[i].spram == 0:
            raise FedxnorError(f"layer {i} folded {fold_text(foldings[i])} has rows deeper than one SPRAM "
                               f"(16384 words): fold it with more PE rows")
    cpi, lat = pipeline_cycles(specs, foldings, costs, dev.read_regs)
    return Plan(dev.name, tuple(foldings), costs, max(c.cycles for c in costs),
                model.fixed * model.flatten + sum(c.luts for c in costs), model.ff_fixed + sum(c.ffs for c in costs),
                sum(c.bram for c in costs), budget_for(dev, max_lut_share, max_lc_share, loader=bool(store)),
                model.calibrated, cpi, lat, sum(c.spram for c in costs), store)
