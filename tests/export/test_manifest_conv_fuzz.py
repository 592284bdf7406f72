"""Hypothesis fuzz of version 2 manifests' new fields: each layer's kind and its conv / max-pool shape fields, the
image input shape, and which fields a kind may have. Every broken export is refused by load_export with one line
naming the field (or the layer), and `fedxnor reference` exits 2 with one line; a changed shape field the loader
accepts must describe the same maps (e.g. a pool stride that gives the same output size). Cases: EXAMPLES."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_helpers import assert_refused, run_cli
from fxconvnets import conv_net_specs, random_conv_network
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedxnor.errors import FedxnorError
from fedxnor.export.manifest import load_export, write_export
from fedxnor.export.manifest_kinds import SHAPE_FIELDS

EXAMPLES = {"type": 30, "drop": 25, "numbers": 30, "nudge": 30, "kind": 20, "structure": 20}
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
OTHER_TYPES = ["text", 2.5, True, None, [1, 2], {"a": 1}]



def make(out: Path, case: dict[str, Any]) -> tuple[Path, dict]:
    net = random_conv_network(case["specs"], np.random.default_rng(case["seed"]))
    d = write_export(net, out, case["folds"], input_spec={"shape": list(case["specs"][0].in_shape), "encoding": "pixels"})
    load_export(d)  # the unbroken export is valid
    return d, json.loads((d / "manifest.json").read_text())


def save(d: Path, m: dict) -> None:
    (d / "manifest.json").write_text(json.dumps(m))


def map_layers(m: dict) -> list[int]:
    return [i for i, la in enumerate(m["layers"]) if la["kind"] != "dense"]


def refused(d: Path, names: tuple[str, ...]) -> str:
    with pytest.raises(FedxnorError) as info:
        load_export(d)
    msg = str(info.value)
    assert "\n" not in msg and any(n in msg for n in names), (names, msg)
    assert_refused(run_cli(["reference", d]), code=2)
    return msg


@settings(FUZZ, max_examples=EXAMPLES["type"])
@given(case=conv_net_specs(), which=st.integers(0, 10**6), pick=st.integers(0, 100))
def test_shape_field_or_kind_of_the_wrong_type(scratch, case, which, pick):
    d, m = make(scratch(), case)
    i = map_layers(m)[which % len(map_layers(m))]
    layer = m["layers"][i]
    key = (["kind"] + list(SHAPE_FIELDS[layer["kind"]]))[which % (len(SHAPE_FIELDS[layer["kind"]]) + 1)]
    options = OTHER_TYPES + ([float(layer[key])] if key != "kind" else [7])
    layer[key] = options[pick % len(options)]
    save(d, m)
    refused(d, (f"'{key}'",))


@settings(FUZZ, max_examples=EXAMPLES["drop"])
@given(case=conv_net_specs(), which=st.integers(0, 10**6))
def test_shape_field_or_kind_dropped(scratch, case, which):
    d, m = make(scratch(), case)
    i = map_layers(m)[which % len(map_layers(m))]
    layer = m["layers"][i]
    keys = ["kind", "input_bits", "input_encoding", "output", *SHAPE_FIELDS[layer["kind"]]]
    key = keys[which % len(keys)]
    del layer[key]
    save(d, m)
    refused(d, (f"'{key}'",))


@settings(FUZZ, max_examples=EXAMPLES["numbers"])
@given(case=conv_net_specs(), which=st.integers(0, 10**6), how=st.sampled_from(["negative", "zero", "huge"]),
       digits=st.integers(5, 60))
def test_shape_field_negative_zero_or_huge(scratch, case, which, how, digits):
    d, m = make(scratch(), case)
    i = map_layers(m)[which % len(map_layers(m))]
    layer = m["layers"][i]
    key = SHAPE_FIELDS[layer["kind"]][which % len(SHAPE_FIELDS[layer["kind"]])]
    if how == "zero" and key == "pad":
        how = "negative"
    layer[key] = {"negative": -1 - which % 5, "zero": 0, "huge": 10 ** digits}[how]
    save(d, m)
    refused(d, (f"'{key}'",))


@settings(FUZZ, max_examples=EXAMPLES["nudge"])
@given(case=conv_net_specs(), which=st.integers(0, 10**6), delta=st.sampled_from([-1, 1, 2]))
def test_shape_field_nudged_breaks_the_chain_or_keeps_the_maps(scratch, case, which, delta):
    d, m = make(scratch(), case)
    i = map_layers(m)[which % len(map_layers(m))]
    layer = m["layers"][i]
    key = SHAPE_FIELDS[layer["kind"]][which % len(SHAPE_FIELDS[layer["kind"]])]
    layer[key] += delta
    save(d, m)
    try:
        exp = load_export(d)
    except FedxnorError as err:
        assert "\n" not in str(err) and ("layer" in str(err) or "input" in str(err)), str(err)
        assert_refused(run_cli(["reference", d]), code=2)
        return
    old, new = case["specs"][i], exp.layers[i].spec  # accepted: a valid network with the same maps
    assert (new.in_shape, new.out_shape) == (old.in_shape, old.out_shape) and key in ("stride", "k", "pad")


@settings(FUZZ, max_examples=EXAMPLES["kind"])
@given(case=conv_net_specs(), which=st.integers(0, 10**6), new_kind=st.sampled_from(["dense", "conv", "maxpool", "Conv", ""]))
def test_layer_kind_changed(scratch, case, which, new_kind):
    d, m = make(scratch(), case)
    i = which % len(m["layers"])
    if m["layers"][i]["kind"] == new_kind:
        new_kind = "pool"
    m["layers"][i]["kind"] = new_kind
    save(d, m)
    refused(d, (f"layer {i}",))


@settings(FUZZ, max_examples=EXAMPLES["structure"])
@given(case=conv_net_specs(), which=st.integers(0, 10**6),
       how=st.sampled_from(["pool weights", "conv no images", "conv no thresholds", "nchw input", "flat input", "conv output"]))
def test_fields_that_do_not_belong_to_the_kind(scratch, case, which, how):
    d, m = make(scratch(), case)
    convs = [i for i, la in enumerate(m["layers"]) if la["kind"] == "conv"]
    pools = [i for i, la in enumerate(m["layers"]) if la["kind"] == "maxpool"]
    c = m["layers"][convs[which % len(convs)]]
    shape = m["input"]["shape"]
    if how == "pool weights" and pools:
        m["layers"][pools[0]]["weight_images"] = c["weight_images"]
        names: tuple[str, ...] = ("'weight_images'",)
    elif how == "conv no images" or how == "pool weights":
        del c["weight_images"]
        names = ("'weight_images'",)
    elif how == "conv no thresholds":
        del c["thresholds"]
        names = ("'thresholds'",)
    elif how in ("nchw input", "flat input"):
        h, w, ch = shape
        m["input"]["shape"] = [ch, h, w] if how == "nchw input" else [h * w * ch]
        if m["input"]["shape"] == shape:  # a cube: channels-first looks the same
            m["input"]["shape"] = [h, w, ch, 1]
        names = ("input",)
    else:
        c["output"] = True
        names = ("layer",)
    save(d, m)
    refused(d, names)
