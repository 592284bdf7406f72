"""The manifest: the one description of an exported network that hw/ and sim/ read.

An export directory holds manifest.json plus the ROM images it lists. The reader
validates everything before anyone builds hardware from it: schema version,
folding, widths, depths, sha256 of every file, threshold ranges, and that the
images decode to exactly the thresholds recorded in the manifest.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fedxnor.atomic import atomic_directory
from fedxnor.contract.folding import Folding
from fedxnor.contract.network import IntLayer, IntNetwork
from fedxnor.errors import FedxnorError
from fedxnor.export import images
from fedxnor.export import manifest_fields as F
from fedxnor.export.manifest_fields import need

SCHEMA = "fedxnor-manifest"
SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class LayerInfo:
    """What hardware needs to know of one layer, as the manifest records it."""

    index: int
    name: str
    fan_in: int
    fan_out: int
    input_bits: int
    encoding: str
    is_output: bool
    pe: int
    simd: int
    words_per_row: int
    weight_depth: int  # words per PE ROM: (M / P) * ceil(N / L)
    threshold_depth: int  # thresholds per PE: M / P (0 for the output layer)
    acc_min: int
    acc_max: int
    threshold_width: int  # two's complement bits; 0 for the output layer
    weight_files: tuple[Path, ...]
    threshold_files: tuple[Path, ...]

    @property
    def acc_width(self) -> int:
        """Two's complement bits that hold every accumulator value and every threshold."""
        return signed_width(self.acc_min, self.acc_max + 1)

    @property
    def neurons_per_pe(self) -> int:
        return self.fan_out // self.pe

    @property
    def spec(self):
        """The layer's specification (fedxnor.contract): what every stage computes and plans with."""
        from fedxnor.contract.dense import Dense

        return Dense(self.fan_in, self.fan_out, self.input_bits, self.encoding, self.is_output, self.name)

    @property
    def fold(self) -> Folding:
        return Folding(self.pe, self.simd)


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


def signed_width(lo: int, hi: int) -> int:
    """Bits of a two's complement number that holds every value in [lo, hi]."""
    w = 1
    while not (-(1 << (w - 1)) <= lo and hi <= (1 << (w - 1)) - 1):
        w += 1
    return w


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def default_folding(layer: IntLayer) -> Folding:
    """A small folding that divides every layer: one PE, up to 32 lanes."""
    return Folding(pe=1, simd=min(32, layer.fan_in))


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
    input_spec = dict(input_spec or {"shape": [first.fan_in], "encoding": "raw"})
    input_spec["bits"] = first.input_bits
    with atomic_directory(out_dir) as tmp:
        entries = []
        for i, (layer, fold) in enumerate(zip(layers, foldings)):
            per_pe = images.pack_weight_words(layer.weights, fold.pe, fold.simd)
            wpr = images.words_per_row(layer.fan_in, fold.simd)
            lo, hi = layer.acc_range
            entry: dict[str, Any] = {
                "index": i,
                "name": names[i] if names else f"fc{i}",
                "fan_in": layer.fan_in,
                "fan_out": layer.fan_out,
                "input_bits": layer.input_bits,
                "input_encoding": layer.encoding,
                "output": layer.is_output,
                "pe": fold.pe,
                "simd": fold.simd,
                "words_per_row": wpr,
                "weight_width": fold.simd,
                "weight_depth": (layer.fan_out // fold.pe) * wpr,
                "acc_min": lo,
                "acc_max": hi,
                "weight_images": [],
            }
            for p, words in enumerate(per_pe):
                name = f"l{i}_w_pe{p}.hex"
                (tmp / name).write_text(images.format_hex(words, fold.simd))
                entry["weight_images"].append({"file": name, "sha256": sha256_file(tmp / name)})
            if not layer.is_output:
                tw = signed_width(lo, hi + 1)
                entry.update(
                    threshold_width=tw,
                    threshold_depth=layer.fan_out // fold.pe,
                    thresholds=[int(t) for t in layer.thresholds],
                    inverted_rows=[int(m) for m in np.flatnonzero(layer.inverted)],
                    threshold_images=[],
                )
                for p, words in enumerate(images.pack_thresholds(layer.thresholds, fold.pe, tw)):
                    name = f"l{i}_t_pe{p}.hex"
                    (tmp / name).write_text(images.format_hex(words, tw))
                    entry["threshold_images"].append({"file": name, "sha256": sha256_file(tmp / name)})
            entries.append(entry)
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


INPUT_ENCODINGS = ("raw", "pixels", "pixels-binarized", "bits")
INPUTS_FILE, LABELS_FILE, PREDICTIONS_FILE = "test_inputs.u8", "test_labels.u8", "torch_predictions.u8"
MAX_EXTRA_FILE_BYTES = 1 << 30


@dataclass(frozen=True)
class _Fields:
    """One layer's manifest fields, type- and range-checked, before any image is read."""

    name: str
    n: int
    m: int
    pe: int
    simd: int
    bits: int
    enc: str
    is_output: bool
    wpr: int
    depth: int
    lo: int
    hi: int
    tw: int
    tdepth: int


def expected_acc_range(n: int, bits: int, enc: str) -> tuple[int, int]:
    if enc == "bipolar":
        return 0, n
    return -n * ((1 << bits) - 1), n * ((1 << bits) - 1)


def _layer_fields(e: Any, i: int, count: int, where: str, prev: _Fields | None) -> _Fields:
    need(isinstance(e, dict), f"{where}: must be an object, got {F.show(e)}; {F.FIX}")
    F.exact(e, "index", where, i, "the layer's position")
    name = F.name(e, "name", where, f"fc{i}")
    n, m = F.integer(e, "fan_in", where, 1, F.MAX_NEURONS), F.integer(e, "fan_out", where, 1, F.MAX_NEURONS)
    if prev is not None:
        need(n == prev.m, f"{where}: fan_in {n} must equal layer {i - 1}'s fan_out {prev.m}; {F.FIX}")
    pe = F.integer(e, "pe", where, 1, m)
    need(m % pe == 0, f"{where}: pe={pe} does not divide fan_out={m}; re-export with a divisor of {m}")
    simd = F.integer(e, "simd", where, 1, n)
    enc = F.choice(e, "input_encoding", where, ("bipolar", "unsigned"))
    need(i == 0 or enc == "bipolar", f"{where}: only the first layer may take 'unsigned' inputs; {F.FIX}")
    bits = F.integer(e, "input_bits", where, 1, 1 if enc == "bipolar" else F.MAX_INPUT_BITS)
    is_output = F.flag(e, "output", where)
    need(is_output is (i == count - 1), f"{where}: only the last layer is the output layer ('output': {i == count - 1}); {F.FIX}")
    wpr = images.words_per_row(n, simd)
    F.exact(e, "words_per_row", where, wpr, f"ceil(fan_in / simd) = ceil({n} / {simd})")
    F.exact(e, "weight_width", where, simd, "equal to simd")
    depth = (m // pe) * wpr
    F.exact(e, "weight_depth", where, depth, f"(fan_out / pe) * words_per_row = ({m} / {pe}) * {wpr}")
    lo, hi = expected_acc_range(n, bits, enc)
    F.exact(e, "acc_min", where, lo, f"for fan_in {n} and {bits}-bit {enc} inputs")
    F.exact(e, "acc_max", where, hi, f"for fan_in {n} and {bits}-bit {enc} inputs")
    tw = tdepth = 0
    if not is_output:
        tw = signed_width(lo, hi + 1)
        F.exact(e, "threshold_width", where, tw, f"two's complement bits of [{lo}, {hi + 1}]")
        tdepth = F.exact(e, "threshold_depth", where, m // pe, f"fan_out / pe = {m} / {pe}")
    return _Fields(name, n, m, pe, simd, bits, enc, is_output, wpr, depth, lo, hi, tw, tdepth)


def _check_chain(manifest: dict, fields: list[_Fields], mpath: Path) -> None:
    """The shapes agree with the network's ends: class count, input shape, bits and encoding."""
    F.exact(manifest, "num_classes", str(mpath), fields[-1].m, "the last layer's fan_out")
    where = f"{mpath} input"
    inp = F.obj(manifest, "input", str(mpath))
    shape = F.ints(F.lst(inp, "shape", where, most=F.MAX_INPUT_DIMS), where, "shape")
    need(all(1 <= d <= F.MAX_NEURONS for d in shape) and math.prod(shape) == fields[0].n,
         f"{where}: shape {shape} must be positive sizes whose product is layer 0's fan_in {fields[0].n}; {F.FIX}")
    F.exact(inp, "bits", where, fields[0].bits, "layer 0's input_bits")
    enc = F.choice(inp, "encoding", where, INPUT_ENCODINGS)
    if enc in ("bits", "pixels-binarized"):
        need(fields[0].bits == 1, f"{where}: encoding {enc!r} gives 1-bit inputs but layer 0 takes {fields[0].bits}; {F.FIX}")
    if enc == "pixels-binarized":
        F.integer(inp, "threshold", where, 0, 256)
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


def _read_layer(directory: Path, e: dict, f: _Fields, where: str):
    """(IntLayer, weight words per PE, threshold words per PE, weight files, threshold files) of one layer."""
    refs = F.lst(e, "weight_images", where, length=f.pe)
    wfiles, per_pe = [], []
    for p, ref in enumerate(refs):
        path, words = _read_image(directory, ref, f.simd, f.depth, f"{where} weight_images[{p}]")
        wfiles.append(path)
        per_pe.append(words)
    bits_matrix = images.unpack_weight_words(per_pe, f.m, f.n, f.simd)
    need(bool(bits_matrix[:, f.n:].all()), f"{where}: weight padding bits must be 1 (see docs/datapath.md); {F.FIX}")
    tfiles, tpe, thresholds = [], [], None
    inverted = np.zeros(f.m, bool)
    if not f.is_output:
        for p, ref in enumerate(F.lst(e, "threshold_images", where, length=f.pe)):
            path, words = _read_image(directory, ref, f.tw, f.tdepth, f"{where} threshold_images[{p}]")
            tfiles.append(path)
            tpe.append(words)
        thresholds = np.zeros(f.m, np.int64)
        for p, words in enumerate(tpe):
            thresholds[p::f.pe] = [images.to_signed(v, f.tw) for v in words]
        need(bool(((thresholds >= f.lo) & (thresholds <= f.hi + 1)).all()),
             f"{where}: a threshold lies outside [{f.lo}, {f.hi + 1}]; {F.FIX}")
        listed = F.ints(F.lst(e, "thresholds", where, length=f.m), where, "thresholds")
        need(listed == thresholds.tolist(), f"{where}: threshold images disagree with the manifest's thresholds; {F.FIX}")
        rows = F.ints(F.lst(e, "inverted_rows", where), where, "inverted_rows")
        need(all(0 <= r < f.m for r in rows) and all(a < b for a, b in zip(rows, rows[1:])),
             f"{where}: field 'inverted_rows' must list neuron indices in 0..{f.m - 1}, ascending, each once; {F.FIX}")
        inverted[rows] = True
    try:
        layer = IntLayer(bits_matrix[:, : f.n], thresholds, input_bits=f.bits, encoding=f.enc, inverted=inverted)
    except FedxnorError as err:
        raise FedxnorError(f"{where}: {err}") from None
    return layer, per_pe, tpe, wfiles, tfiles


def _check_files(directory: Path, manifest: dict, first: _Fields, classes: int, mpath: Path) -> None:
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
        need(len(x) > 0 and len(x) % first.n == 0, f"{directory / INPUTS_FILE}: {len(x)} bytes is not a whole number of "
                                                    f"{first.n}-value inputs; {F.FIX}")
        enc = manifest["input"]["encoding"]
        top = 255 if enc == "pixels-binarized" else min(255, (1 << first.bits) - 1)
        need(max(x) <= top, f"{directory / INPUTS_FILE}: values must lie in 0..{top} for this layer 0; {F.FIX}")
        need(LABELS_FILE not in data or len(data[LABELS_FILE]) == len(x) // first.n,
             f"{directory / LABELS_FILE}: must hold one label per test input ({len(x) // first.n}); {F.FIX}")


def load_export(directory: Path) -> Export:
    """Read and validate an export directory. Raises FedxnorError with one line on any problem.

    Order: the JSON and every field's type and range, then the shapes against each other
    (fan-in chain, classes, input), then the extra files, then the ROM images, so the
    cheapest, clearest message comes first.
    """
    directory = Path(directory)
    mpath = directory / MANIFEST_NAME
    need(directory.is_dir(), f"{directory}: no such export directory; run 'fedxnor export CHECKPOINT --out {directory}'")
    need(mpath.is_file(), f"{mpath}: missing manifest; run 'fedxnor export' to create the directory")
    manifest = F.read_json(mpath)
    need(manifest.get("schema") == SCHEMA, f"{mpath}: not a fedxnor manifest ('schema' must be {SCHEMA!r})")
    ver = manifest.get("schema_version")
    need(F.is_int(ver) and ver == SCHEMA_VERSION,
         f"{mpath}: unknown schema version {F.show(ver)} (field 'schema_version'), this fedxnor reads version {SCHEMA_VERSION}; "
         "re-export with this fedxnor")
    entries = F.lst(manifest, "layers", str(mpath), most=F.MAX_LAYERS)
    fields: list[_Fields] = []
    for i, e in enumerate(entries):  # each layer's fields, its fan-in against the previous fan-out
        fields.append(_layer_fields(e, i, len(entries), f"{mpath} layer {i}", fields[-1] if fields else None))
    _check_chain(manifest, fields, mpath)
    _check_files(directory, manifest, fields[0], fields[-1].m, mpath)

    infos, layers, wwords, twords = [], [], [], []
    for i, (e, f) in enumerate(zip(entries, fields)):
        layer, per_pe, tpe, wfiles, tfiles = _read_layer(directory, e, f, f"{mpath} layer {i}")
        layers.append(layer)
        wwords.append(tuple(tuple(w) for w in per_pe))
        twords.append(tuple(tuple(t) for t in tpe))
        infos.append(LayerInfo(
            index=i, name=f.name, fan_in=f.n, fan_out=f.m, input_bits=f.bits, encoding=f.enc, is_output=f.is_output,
            pe=f.pe, simd=f.simd, words_per_row=f.wpr, weight_depth=f.depth, threshold_depth=f.tdepth, acc_min=f.lo,
            acc_max=f.hi, threshold_width=f.tw, weight_files=tuple(wfiles), threshold_files=tuple(tfiles),
        ))
    try:
        network = IntNetwork(tuple(layers))
    except FedxnorError as err:
        raise FedxnorError(f"{mpath}: {err}") from None
    return Export(directory, manifest, tuple(infos), network, tuple(wwords), tuple(twords))
