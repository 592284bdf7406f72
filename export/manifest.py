"""The manifest: the one description of an exported network that hw/ and sim/ read.

An export directory holds manifest.json plus the ROM images it lists. The reader
validates everything before anyone builds hardware from it: schema version,
folding, widths, depths, sha256 of every file, threshold ranges, and that the
images decode to exactly the thresholds recorded in the manifest. Each layer's kind
and shape fields are export/manifest_kinds.py's.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from fedxnor.atomic import atomic_directory
from fedxnor.contract.bits import to_signed
from fedxnor.contract.folding import Folding
from fedxnor.contract.matrix import input_range
from fedxnor.contract.network import IntLayer, IntNetwork
from fedxnor.errors import FedxnorError
from fedxnor.export import images
from fedxnor.export import manifest_fields as F
from fedxnor.export.manifest_fields import need
from fedxnor.export.manifest_kinds import layer_spec, shape_entry

SCHEMA = "fedxnor-manifest"
SCHEMA_VERSION = 2  # 2: layers have a "kind" (dense, conv, maxpool) and its shape fields; 1: all dense
READABLE_VERSIONS = (1, 2)
MANIFEST_NAME = "manifest.json"



@dataclass(frozen=True)
class LayerInfo:
    """One layer of an export: its specification (fedxnor.contract), its folding and its ROM image files.

    The widths and depths hardware needs are the specification's, read through here. A max-pool has no
    folding (fold None), no images and no matrix fields (fan_in, pe, ... are the weighted kinds')."""

    index: int
    spec: Any  # Dense, Conv or MaxPool
    fold: Folding | None
    weight_files: tuple[Path, ...] = ()
    threshold_files: tuple[Path, ...] = ()

    name = property(lambda self: self.spec.name)
    kind = property(lambda self: self.spec.kind)
    in_size = property(lambda self: self.spec.in_size)  # inputs per image (NHWC-flattened for a map)
    out_size = property(lambda self: self.spec.out_size)
    has_weights = property(lambda self: self.spec.has_weights)
    fan_in = property(lambda self: self.spec.fan_in)
    fan_out = property(lambda self: self.spec.fan_out)
    input_bits = property(lambda self: self.spec.input_bits)
    encoding = property(lambda self: self.spec.encoding)
    is_output = property(lambda self: self.spec.is_output)
    acc_width = property(lambda self: self.spec.acc_width)
    threshold_width = property(lambda self: self.spec.threshold_width)  # 0 for the output layer
    pe = property(lambda self: self.fold.pe)
    simd = property(lambda self: self.fold.simd)
    words_per_row = property(lambda self: self.spec.words_per_row(self.fold))
    weight_depth = property(lambda self: self.spec.weight_depth(self.fold))  # words per PE ROM: (M / P) * ceil(N / L)
    threshold_depth = property(lambda self: self.spec.threshold_depth(self.fold))  # M / P (0 for the output layer)
    neurons_per_pe = property(lambda self: self.spec.neurons_per_pe(self.fold))

    @property
    def acc_min(self) -> int:
        return self.spec.acc_range[0]

    @property
    def acc_max(self) -> int:
        return self.spec.acc_range[1]


@dataclass(frozen=True)
class Export:
    """A validated export directory: manifest fields, layer infos and the integer network."""

    directory: Path
    manifest: dict[str, Any]
    layers: tuple[LayerInfo, ...]
    network: IntNetwork
    weight_words: tuple[tuple[tuple[int, ...], ...], ...] = field(repr=False)  # [layer][pe][addr]
    threshold_words: tuple[tuple[tuple[int, ...], ...], ...] = field(repr=False)  # [layer][pe][addr], two's complement

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.manifest["input"]["shape"])

    @property
    def input_bits(self) -> int:
        return int(self.manifest["input"]["bits"])

    @property
    def num_classes(self) -> int:
        return self.layers[-1].fan_out

    def extra_file(self, key: str) -> Path | None:
        """The checked path of an extra file under manifest["files"] (confined, sealed, sized), or None."""
        return self.directory / key if key in self.manifest.get("files", {}) else None

    @property
    def sha256(self) -> str:
        """Identity of the exported model: sha256 of manifest.json."""
        return sha256_file(self.directory / MANIFEST_NAME)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def default_folding(layer: IntLayer) -> Folding | None:
    """A small folding that divides every weighted layer: one PE, up to 32 lanes (None for a max-pool)."""
    return Folding(pe=1, simd=min(32, layer.fan_in)) if layer.spec.has_weights else None


def write_export(
    network: IntNetwork,
    out_dir: Path,
    foldings: list[Folding] | None = None,
    *,
    source: dict[str, Any] | None = None,
    input_spec: dict[str, Any] | None = None,
    extra_files: dict[str, bytes] | None = None,
    extra_manifest: dict[str, Any] | None = None,
    names: list[str] | None = None,
) -> Path:
    """Write the manifest and ROM images of `network` to `out_dir`, atomically.

    extra_files are written beside the images and listed with their sha256 under
    manifest["files"] (e.g. torch's eval predictions for the agreement check).
    """
    layers = network.layers
    foldings = foldings or [default_folding(layer) for layer in layers]
    if len(foldings) != len(layers):
        raise FedxnorError(f"need one folding per layer ({len(layers)}), got {len(foldings)}")
    out_dir = Path(out_dir)
    first = layers[0]
    input_spec = dict(input_spec or {"shape": list(first.spec.in_shape), "encoding": "raw"})
    input_spec["bits"] = first.input_bits
    with atomic_directory(out_dir) as tmp:
        entries = []
        for i, (layer, fold) in enumerate(zip(layers, foldings)):
            spec = layer.spec
            entry = shape_entry(i, layer, names)
            entries.append(entry)
            if not spec.has_weights:
                if fold is not None:
                    raise FedxnorError(f"layer {i} is a {spec.kind} layer: it has no weights to fold, give None as its folding")
                continue
            if not isinstance(fold, Folding):
                raise FedxnorError(f"layer {i}: need a folding (P, L) for this {spec.kind} layer, got {fold!r}")
            spec.check_folding(fold, f"layer {i}")
            per_pe = spec.pack_weights(layer.weights, fold)
            lo, hi = spec.acc_range
            entry.update({
                "pe": fold.pe,
                "simd": fold.simd,
                "words_per_row": spec.words_per_row(fold),
                "weight_width": fold.simd,
                "weight_depth": spec.weight_depth(fold),
                "acc_min": lo,
                "acc_max": hi,
                "weight_images": [],
            })
            for p, words in enumerate(per_pe):
                name = f"l{i}_w_pe{p}.hex"
                (tmp / name).write_text(images.format_hex(words, fold.simd))
                entry["weight_images"].append({"file": name, "sha256": sha256_file(tmp / name)})
            if not layer.is_output:
                tw = spec.threshold_width
                entry.update(
                    threshold_width=tw,
                    threshold_depth=spec.threshold_depth(fold),
                    thresholds=[int(t) for t in layer.thresholds],
                    inverted_rows=[int(m) for m in np.flatnonzero(layer.inverted)],
                    threshold_images=[],
                )
                for p, words in enumerate(spec.pack_thresholds(layer.thresholds, fold)):
                    name = f"l{i}_t_pe{p}.hex"
                    (tmp / name).write_text(images.format_hex(words, tw))
                    entry["threshold_images"].append({"file": name, "sha256": sha256_file(tmp / name)})
        files = {}
        for name, data in (extra_files or {}).items():
            (tmp / name).write_bytes(data)
            files[name] = {"file": name, "sha256": sha256_file(tmp / name)}
        manifest: dict[str, Any] = {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "source": source or {},
            "input": input_spec,
            "num_classes": layers[-1].fan_out,
            "layers": entries,
            "files": files,
        }
        manifest.update(extra_manifest or {})
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1) + "\n")
    return out_dir


INPUT_ENCODINGS = ("raw", "pixels", "pixels-binarized", "bits", "pixels-mapped")  # pixels-mapped: input.map[pixel]
INPUTS_FILE, LABELS_FILE, PREDICTIONS_FILE = "test_inputs.u8", "test_labels.u8", "torch_predictions.u8"
MAX_EXTRA_FILE_BYTES = 1 << 30


def _layer_fields(e: Any, i: int, count: int, where: str, prev: LayerInfo | None, version: int) -> LayerInfo:
    """One layer's fields, type- and range-checked, and every derived field equal to what its specification gives,
    before any image is read."""
    need(isinstance(e, dict), f"{where}: must be an object, got {F.show(e)}; {F.FIX}")
    F.exact(e, "index", where, i, "the layer's position")
    spec = layer_spec(e, i, where, version)
    is_output = F.flag(e, "output", where)
    need(is_output is (i == count - 1), f"{where}: only the last layer is the output layer ('output': {i == count - 1}); {F.FIX}")
    need(not is_output or spec.kind == "dense", f"{where}: the output layer must be 'dense', not {spec.kind!r}; {F.FIX}")
    if prev is not None and spec.kind == prev.kind == "dense":
        need(spec.fan_in == prev.fan_out, f"{where}: fan_in {spec.fan_in} must equal layer {i - 1}'s fan_out {prev.fan_out}; {F.FIX}")
    elif prev is not None:
        need(spec.in_size == prev.out_size,
             f"{where}: this {spec.kind} layer takes {spec.in_size} inputs ({'x'.join(map(str, spec.in_shape))}) but layer "
             f"{i - 1} ({prev.kind}) gives {prev.out_size} ({'x'.join(map(str, prev.spec.out_shape))}); {F.FIX}")
    if not spec.has_weights:
        for key in ("pe", "simd", "weight_images", "threshold_images", "thresholds"):
            need(key not in e, f"{where}: a {spec.kind} layer has no weights: field '{key}' does not belong here; {F.FIX}")
        return LayerInfo(i, spec, None)
    n, m, bits, enc = spec.fan_in, spec.fan_out, spec.input_bits, spec.encoding
    # the matrix's K and M, by the fields they come from (a changed shape field is named in what it breaks)
    fan_in, fan_out = ("'fan_in'", "'fan_out'") if spec.kind == "dense" else ("'k'*'k'*'in_c'", "'out_c'")
    pe, simd = F.integer(e, "pe", where, 1, m), F.integer(e, "simd", where, 1, n)
    fold = Folding(pe, simd)
    spec.check_folding(fold, f"{where}: re-export with a legal folding")
    wpr = spec.words_per_row(fold)
    F.exact(e, "words_per_row", where, wpr, f"ceil({fan_in} / simd) = ceil({n} / {simd})")
    F.exact(e, "weight_width", where, simd, "equal to simd")
    F.exact(e, "weight_depth", where, spec.weight_depth(fold), f"({fan_out} / pe) * words_per_row = ({m} / {pe}) * {wpr}")
    lo, hi = spec.acc_range
    F.exact(e, "acc_min", where, lo, f"for {fan_in} {n} and {bits}-bit {enc} inputs")
    F.exact(e, "acc_max", where, hi, f"for {fan_in} {n} and {bits}-bit {enc} inputs")
    if not is_output:
        F.exact(e, "threshold_width", where, spec.threshold_width, f"two's complement bits of [{lo}, {hi + 1}]")
        F.exact(e, "threshold_depth", where, spec.threshold_depth(fold), f"{fan_out} / pe = {m} / {pe}")
    return LayerInfo(i, spec, fold)


def _check_chain(manifest: dict, fields: list[LayerInfo], mpath: Path) -> None:
    """The shapes agree with the network's ends: class count, input shape (NHWC for a map), bits and encoding."""
    F.exact(manifest, "num_classes", str(mpath), fields[-1].fan_out, "the last layer's fan_out")
    where = f"{mpath} input"
    inp = F.obj(manifest, "input", str(mpath))
    shape = F.ints(F.lst(inp, "shape", where, most=F.MAX_INPUT_DIMS), where, "shape")
    first = fields[0].spec
    need(all(1 <= d <= F.MAX_MAP_VALUES for d in shape) and math.prod(shape) == first.in_size,
         f"{where}: shape {shape} must be positive sizes whose product is layer 0's input size {first.in_size}; {F.FIX}")
    if first.kind != "dense":  # a map: (H, W, C), NHWC; (H, W) when C = 1
        h, w, c = first.in_shape
        need(shape in ([h, w, c], [h, w] if c == 1 else [h, w, c]),
             f"{where}: shape {shape} must be layer 0's input map [H, W, C] = {[h, w, c]} (channels last); {F.FIX}")
    F.exact(inp, "bits", where, fields[0].input_bits, "layer 0's input_bits")
    enc = F.choice(inp, "encoding", where, INPUT_ENCODINGS)
    if enc in ("bits", "pixels-binarized"):
        bits = fields[0].input_bits
        need(bits == 1, f"{where}: encoding {enc!r} gives 1-bit inputs but layer 0 takes {bits}; {F.FIX}")
    if enc == "pixels-binarized":
        F.integer(inp, "threshold", where, 0, 256)
    if enc == "pixels-mapped":
        F.input_map(inp, where, *input_range(first.input_bits, first.encoding))
    if "source" in manifest:
        F.obj(manifest, "source", str(mpath))


def _read_image(directory: Path, ref: Any, width: int, depth: int, where: str) -> tuple[Path, list[int]]:
    """A ROM image: confined path, exact size for its depth and width, sha256, strict hex."""
    path, digest = F.file_ref(directory, ref, where)
    need(path.is_file(), f"{path}: missing file listed in the manifest; {F.FIX}")
    size, want = path.stat().st_size, depth * (images.hex_digits(width) + 1)
    need(size == want, f"{path}: has {size} bytes, the folding implies {depth} words of {images.hex_digits(width)} hex "
                       f"digits ({want} bytes); {F.FIX}")
    data = path.read_bytes()
    need(hashlib.sha256(data).hexdigest() == digest, f"{path}: sha256 mismatch (file changed since export); {F.FIX}")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise FedxnorError(f"{path}: not an ASCII hex image; {F.FIX}") from None
    return path, images.parse_hex(text, width, depth, str(path))


def _read_layer(directory: Path, e: dict, f: LayerInfo, where: str):
    """(IntLayer, weight words per PE, threshold words per PE, weight files, threshold files) of one layer."""
    if not f.has_weights:
        return IntLayer(None, None, spec=f.spec), [], [], [], []
    refs = F.lst(e, "weight_images", where, length=f.pe)
    wfiles, per_pe = [], []
    for p, ref in enumerate(refs):
        path, words = _read_image(directory, ref, f.simd, f.weight_depth, f"{where} weight_images[{p}]")
        wfiles.append(path)
        per_pe.append(words)
    bits_matrix = f.spec.unpack_weights(per_pe, f.fold)
    need(bool(bits_matrix[:, f.fan_in:].all()), f"{where}: weight padding bits must be 1 (see docs/datapath.md); {F.FIX}")
    tfiles, tpe, thresholds = [], [], None
    inverted = np.zeros(f.fan_out, bool)
    if not f.is_output:
        for p, ref in enumerate(F.lst(e, "threshold_images", where, length=f.pe)):
            path, words = _read_image(directory, ref, f.threshold_width, f.threshold_depth, f"{where} threshold_images[{p}]")
            tfiles.append(path)
            tpe.append(words)
        thresholds = np.zeros(f.fan_out, np.int64)
        for p, words in enumerate(tpe):
            thresholds[p::f.pe] = [to_signed(v, f.threshold_width) for v in words]
        need(bool(((thresholds >= f.acc_min) & (thresholds <= f.acc_max + 1)).all()),
             f"{where}: a threshold lies outside [{f.acc_min}, {f.acc_max + 1}]; {F.FIX}")
        listed = F.ints(F.lst(e, "thresholds", where, length=f.fan_out), where, "thresholds")
        need(listed == thresholds.tolist(), f"{where}: threshold images disagree with the manifest's thresholds; {F.FIX}")
        rows = F.ints(F.lst(e, "inverted_rows", where), where, "inverted_rows")
        need(all(0 <= r < f.fan_out for r in rows) and all(a < b for a, b in zip(rows, rows[1:])),
             f"{where}: field 'inverted_rows' must list neuron indices in 0..{f.fan_out - 1}, ascending, each once; {F.FIX}")
        inverted[rows] = True
    try:
        layer = IntLayer(bits_matrix[:, : f.fan_in], thresholds, inverted=inverted, spec=f.spec)
    except FedxnorError as err:
        raise FedxnorError(f"{where}: {err}") from None
    return layer, per_pe, tpe, wfiles, tfiles


def _check_files(directory: Path, manifest: dict, first: LayerInfo, classes: int, mpath: Path) -> None:
    """Extra files (torch predictions, test inputs and labels): confined, sealed, and sized for this network."""
    files = F.obj(manifest, "files", str(mpath), default={})
    data: dict[str, bytes] = {}
    for key, ref in files.items():
        where = f"{mpath} file {F.show(key)}"
        path, digest = F.file_ref(directory, ref, where)
        need(ref["file"] == key, f"{where}: must name its own file ({key!r}), not {F.show(ref['file'])}; {F.FIX}")
        need(path.is_file(), f"{path}: missing file listed in the manifest; {F.FIX}")
        need(path.stat().st_size <= MAX_EXTRA_FILE_BYTES, f"{path}: larger than {MAX_EXTRA_FILE_BYTES} bytes; {F.FIX}")
        data[key] = path.read_bytes()
        need(hashlib.sha256(data[key]).hexdigest() == digest, f"{path}: sha256 mismatch (file changed since export); {F.FIX}")
    for key in (PREDICTIONS_FILE, LABELS_FILE):
        if key in data:
            need(len(data[key]) > 0 and max(data[key]) < classes,
                 f"{directory / key}: must hold one class in 0..{classes - 1} per image; {F.FIX}")
    if INPUTS_FILE in data:
        x = data[INPUTS_FILE]
        n = first.in_size
        need(len(x) > 0 and len(x) % n == 0, f"{directory / INPUTS_FILE}: {len(x)} bytes is not a whole number of "
                                             f"{n}-value inputs; {F.FIX}")
        enc = manifest["input"]["encoding"]
        top = 255 if enc in ("pixels-binarized", "pixels-mapped") else min(255, (1 << first.input_bits) - 1)
        need(max(x) <= top, f"{directory / INPUTS_FILE}: values must lie in 0..{top} for this layer 0; {F.FIX}")
        need(LABELS_FILE not in data or len(data[LABELS_FILE]) == len(x) // n,
             f"{directory / LABELS_FILE}: must hold one label per test input ({len(x) // n}); {F.FIX}")


def load_export(directory: Path) -> Export:
    """Read and validate an export directory. Raises FedxnorError with one line on any problem.

    Order: the JSON and every field's type and range, then the shapes against each other
    (size chain, classes, input), then the extra files, then the ROM images, so the
    cheapest, clearest message comes first. Version 1 manifests (before layer kinds) read
    as all-dense; this fedxnor writes version 2.
    """
    directory = Path(directory)
    mpath = directory / MANIFEST_NAME
    need(directory.is_dir(), f"{directory}: no such export directory; run 'fedxnor export CHECKPOINT --out {directory}'")
    need(mpath.is_file(), f"{mpath}: missing manifest; run 'fedxnor export' to create the directory")
    manifest = F.read_json(mpath)
    need(manifest.get("schema") == SCHEMA, f"{mpath}: not a fedxnor manifest ('schema' must be {SCHEMA!r})")
    ver = manifest.get("schema_version")
    need(F.is_int(ver) and ver in READABLE_VERSIONS,
         f"{mpath}: unknown schema version {F.show(ver)} (field 'schema_version'), this fedxnor reads versions "
         f"{', '.join(map(str, READABLE_VERSIONS))}; re-export with this fedxnor")
    entries = F.lst(manifest, "layers", str(mpath), most=F.MAX_LAYERS)
    fields: list[LayerInfo] = []
    for i, e in enumerate(entries):  # each layer's fields, its fan-in against the previous fan-out
        fields.append(_layer_fields(e, i, len(entries), f"{mpath} layer {i}", fields[-1] if fields else None, ver))
    _check_chain(manifest, fields, mpath)
    _check_files(directory, manifest, fields[0], fields[-1].fan_out, mpath)

    infos, layers, wwords, twords = [], [], [], []
    for i, (e, f) in enumerate(zip(entries, fields)):
        layer, per_pe, tpe, wfiles, tfiles = _read_layer(directory, e, f, f"{mpath} layer {i}")
        layers.append(layer)
        wwords.append(tuple(tuple(w) for w in per_pe))
        twords.append(tuple(tuple(t) for t in tpe))
        infos.append(replace(f, weight_files=tuple(wfiles), threshold_files=tuple(tfiles)))
    try:
        network = IntNetwork(tuple(layers))
    except FedxnorError as err:
        raise FedxnorError(f"{mpath}: {err}") from None
    return Export(directory, manifest, tuple(infos), network, tuple(wwords), tuple(twords))
