"""The layer kinds as manifest.json spells them (schema_version 2): each layer's "kind" and that kind's shape
fields, written from a specification (fedxnor.contract) and read back into one, type- and range-checked."""

from __future__ import annotations

from typing import Any

from fedxnor.contract.conv import Conv
from fedxnor.contract.dense import Dense
from fedxnor.contract.matrix import ENCODINGS
from fedxnor.contract.network import IntLayer
from fedxnor.contract.pool import MaxPool
from fedxnor.errors import FedxnorError
from fedxnor.export import manifest_fields as F
from fedxnor.export.manifest_fields import need

KINDS = {"dense": Dense, "conv": Conv, "maxpool": MaxPool}
SHAPE_FIELDS = {"dense": ("fan_in", "fan_out"), "conv": ("in_h", "in_w", "in_c", "out_c", "k", "stride", "pad"),
                "maxpool": ("in_h", "in_w", "c", "k", "stride")}
DEFAULT_NAMES = {"dense": "fc", "conv": "conv", "maxpool": "pool"}


def shape_entry(i: int, layer: IntLayer, names: list[str] | None) -> dict[str, Any]:
    """The fields every kind writes: position, name, kind, its shape fields, its input and whether it is the output."""
    spec = layer.spec
    entry: dict[str, Any] = {"index": i, "name": names[i] if names else f"{DEFAULT_NAMES[spec.kind]}{i}", "kind": spec.kind}
    entry.update({key: getattr(spec, key) for key in SHAPE_FIELDS[spec.kind]})
    entry.update(input_bits=layer.input_bits, input_encoding=layer.encoding, output=layer.is_output)
    return entry


def layer_spec(e: dict, i: int, where: str, version: int) -> Any:
    """The layer's kind and shape fields, type- and range-checked, as its specification."""
    kind = "dense" if version == 1 and "kind" not in e else F.choice(e, "kind", where, tuple(KINDS) if version > 1 else ("dense",))
    name = F.name(e, "name", where, f"{DEFAULT_NAMES[kind]}{i}")
    shape = F.shape_fields(e, kind, SHAPE_FIELDS[kind], where)
    enc = F.choice(e, "input_encoding", where, ENCODINGS if kind != "maxpool" else ("bipolar",))
    need(i == 0 or enc == "bipolar", f"{where}: only the first layer may take {enc!r} inputs; {F.FIX}")
    bits = F.integer(e, "input_bits", where, 2 if enc == "signed" else 1, 1 if enc == "bipolar" else F.MAX_INPUT_BITS)
    extra = {"input_bits": bits, "encoding": enc} if kind != "maxpool" else {}
    if kind == "dense":
        extra["is_output"] = F.flag(e, "output", where)
    try:
        spec = KINDS[kind](**shape, **extra, name=name)
    except FedxnorError as err:
        raise FedxnorError(f"{where}: {err}; {F.FIX}") from None
    named = ", ".join(f"'{k}' {shape[k]}" for k in SHAPE_FIELDS[kind])  # the fields that made the sizes
    need(spec.in_size <= F.MAX_MAP_VALUES and spec.out_size <= F.MAX_MAP_VALUES,
         f"{where}: a {kind} layer of {spec.in_size} inputs and {spec.out_size} outputs ({named}) is larger than a "
         f"manifest may describe ({F.MAX_MAP_VALUES}); {F.FIX}")
    if spec.has_weights:
        need(spec.fan_in <= F.MAX_NEURONS,
             f"{where}: a {kind} window of {spec.fan_in} inputs ({named}) is wider than {F.MAX_NEURONS}; {F.FIX}")
    return spec
