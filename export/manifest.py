"""The manifest: the one description of an exported network that hw/ and sim/ read.

An export directory holds manifest.json plus the ROM images it lists. The reader
validates everything before anyone builds hardware from it: schema version,
folding, widths, depths, sha256 of every file, threshold ranges, and that the
images decode to exactly the thresholds recorded in the manifest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fedxnor.atomic import atomic_directory
from fedxnor.errors import FedxnorError
from fedxnor.export import images
from fedxnor.export.network import IntLayer, IntNetwork

SCHEMA = "fedxnor-manifest"
SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class Folding:
    """(P, L): PE rows and SIMD lanes of one layer."""

    pe: int
    simd: int


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


def _need(cond: bool, msg: str) -> None:
    if not cond:
        raise FedxnorError(msg)


def _int_field(entry: dict, key: str, where: str) -> int:
    v = entry.get(key)
    _need(isinstance(v, int) and not isinstance(v, bool), f"{where}: field '{key}' must be an integer; re-export the model")
    return v


def _read_checked(directory: Path, ref: Any, where: str) -> tuple[Path, str]:
    _need(isinstance(ref, dict) and isinstance(ref.get("file"), str) and isinstance(ref.get("sha256"), str),
          f"{where}: an image entry needs 'file' and 'sha256'; re-export the model")
    name = ref["file"]
    _need("/" not in name and name not in ("", ".", ".."), f"{where}: image name {name!r} must be a plain file name")
    path = directory / name
    _need(path.is_file(), f"{path}: missing file listed in the manifest; re-export the model")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    _need(digest == ref["sha256"], f"{path}: sha256 mismatch (file changed since export); re-export the model")
    try:
        return path, data.decode("ascii")
    except UnicodeDecodeError:
        raise FedxnorError(f"{path}: not an ASCII hex image; re-export the model") from None


def load_export(directory: Path) -> Export:
    """Read and validate an export directory. Raises FedxnorError with one line on any problem."""
    directory = Path(directory)
    mpath = directory / MANIFEST_NAME
    _need(directory.is_dir(), f"{directory}: no such export directory; run 'fedxnor export CHECKPOINT --out {directory}'")
    _need(mpath.is_file(), f"{mpath}: missing manifest; run 'fedxnor export' to create the directory")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FedxnorError(f"{mpath}: not valid JSON ({e}); re-export the model") from None
    _need(isinstance(manifest, dict) and manifest.get("schema") == SCHEMA, f"{mpath}: not a fedxnor manifest")
    ver = manifest.get("schema_version")
    _need(ver == SCHEMA_VERSION,
          f"{mpath}: unknown schema version {ver!r}, this fedxnor reads version {SCHEMA_VERSION}; re-export with this fedxnor")
    entries = manifest.get("layers")
    _need(isinstance(entries, list) and entries, f"{mpath}: 'layers' must be a non-empty list")
    _need(isinstance(manifest.get("input"), dict), f"{mpath}: 'input' must be an object")

    infos, layers, wwords, twords = [], [], [], []
    for i, e in enumerate(entries):
        where = f"{mpath} layer {i}"
        _need(isinstance(e, dict), f"{where}: must be an object")
        n, m = _int_field(e, "fan_in", where), _int_field(e, "fan_out", where)
        pe, simd = _int_field(e, "pe", where), _int_field(e, "simd", where)
        bits = _int_field(e, "input_bits", where)
        _need(n >= 1 and m >= 1, f"{where}: fan_in and fan_out must be positive")
        _need(pe >= 1 and m % pe == 0, f"{where}: pe={pe} does not divide fan_out={m}; re-export with a divisor of {m}")
        _need(1 <= simd <= n, f"{where}: simd={simd} must be in 1..{n}; re-export with a valid --simd")
        enc = e.get("input_encoding")
        _need(enc in ("bipolar", "unsigned"), f"{where}: input_encoding must be 'bipolar' or 'unsigned'")
        is_output = e.get("output")
        _need(is_output is (i == len(entries) - 1), f"{where}: only the last layer is the output layer")
        wpr = images.words_per_row(n, simd)
        _need(_int_field(e, "words_per_row", where) == wpr, f"{where}: words_per_row must be ceil({n}/{simd}) = {wpr}")
        _need(_int_field(e, "weight_width", where) == simd, f"{where}: weight_width must equal simd ({simd})")
        depth = (m // pe) * wpr
        _need(_int_field(e, "weight_depth", where) == depth, f"{where}: weight_depth must be {depth} for this folding")
        refs = e.get("weight_images")
        _need(isinstance(refs, list) and len(refs) == pe, f"{where}: needs {pe} weight images, one per PE")
        per_pe = []
        for p, ref in enumerate(refs):
            path, text = _read_checked(directory, ref, f"{where} weight image {p}")
            per_pe.append(images.parse_hex(text, simd, depth, str(path)))
        bits_matrix = images.unpack_weight_words(per_pe, m, n, simd)
        _need(bool(bits_matrix[:, n:].all()), f"{where}: weight padding bits must be 1 (see docs/datapath.md); re-export")
        weights = bits_matrix[:, :n]
        lo = _int_field(e, "acc_min", where)
        hi = _int_field(e, "acc_max", where)
        tw, tdepth, tpe = 0, 0, []
        thresholds = None
        if not is_output:
            tw = _int_field(e, "threshold_width", where)
            _need(tw == signed_width(lo, hi + 1), f"{where}: threshold_width {tw} does not hold [{lo}, {hi + 1}]")
            tdepth = _int_field(e, "threshold_depth", where)
            _need(tdepth == m // pe, f"{where}: threshold_depth must be {m // pe}")
            trefs = e.get("threshold_images")
            _need(isinstance(trefs, list) and len(trefs) == pe, f"{where}: needs {pe} threshold images, one per PE")
            for p, ref in enumerate(trefs):
                path, text = _read_checked(directory, ref, f"{where} threshold image {p}")
                tpe.append(images.parse_hex(text, tw, tdepth, str(path)))
            thresholds = np.zeros(m, np.int64)
            for p, words in enumerate(tpe):
                thresholds[p::pe] = [images.to_signed(v, tw) for v in words]
            _need(bool(((thresholds >= lo) & (thresholds <= hi + 1)).all()),
                  f"{where}: a threshold lies outside [{lo}, {hi + 1}]; re-export the model")
            listed = e.get("thresholds")
            _need(isinstance(listed, list) and listed == thresholds.tolist(),
                  f"{where}: threshold images disagree with the manifest's thresholds; re-export the model")
        inverted = np.zeros(m, bool)
        inv_rows = e.get("inverted_rows", [])
        _need(isinstance(inv_rows, list) and all(isinstance(r, int) and 0 <= r < m for r in inv_rows),
              f"{where}: inverted_rows must list neuron indices")
        inverted[inv_rows] = True
        try:
            layer = IntLayer(weights, thresholds, input_bits=bits, encoding=enc, inverted=inverted)
        except FedxnorError as err:
            raise FedxnorError(f"{where}: {err}") from None
        _need((lo, hi) == layer.acc_range, f"{where}: acc range must be {layer.acc_range}")
        layers.append(layer)
        wwords.append(tuple(tuple(w) for w in per_pe))
        twords.append(tuple(tuple(t) for t in tpe))
        infos.append(LayerInfo(
            index=i, name=str(e.get("name", f"fc{i}")), fan_in=n, fan_out=m, input_bits=bits, encoding=enc,
            is_output=bool(is_output), pe=pe, simd=simd, words_per_row=wpr, weight_depth=depth,
            threshold_depth=tdepth, acc_min=lo, acc_max=hi, threshold_width=tw,
            weight_files=tuple(directory / r["file"] for r in refs),
            threshold_files=tuple(directory / r["file"] for r in (e.get("threshold_images") or [])),
        ))
    try:
        network = IntNetwork(tuple(layers))
    except FedxnorError as err:
        raise FedxnorError(f"{mpath}: {err}") from None
    _need(manifest["input"].get("bits") == layers[0].input_bits, f"{mpath}: input.bits must equal layer 0's input_bits")
    files = manifest.get("files", {})
    _need(isinstance(files, dict), f"{mpath}: 'files' must be an object")
    for name, ref in files.items():
        _read_checked_binary(directory, ref, f"{mpath} file {name}")
    return Export(directory, manifest, tuple(infos), network, tuple(wwords), tuple(twords))


def _read_checked_binary(directory: Path, ref: Any, where: str) -> Path:
    _need(isinstance(ref, dict) and isinstance(ref.get("file"), str) and isinstance(ref.get("sha256"), str),
          f"{where}: needs 'file' and 'sha256'")
    path = directory / ref["file"]
    _need(path.is_file(), f"{path}: missing file listed in the manifest; re-export the model")
    _need(sha256_file(path) == ref["sha256"], f"{path}: sha256 mismatch (file changed since export); re-export the model")
    return path
