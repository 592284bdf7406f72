"""Test-only fault injection: a copy of an export with one threshold moved, resealed.

The copy is a valid export (its images, manifest thresholds and sha256 entries
agree), so the accelerator built from it is a consistent design that computes
something else than the original. Verifying that RTL against the *original*
export's reference must report the first divergence at the edited neuron (or,
if that neuron's bit never flips on the images checked, nowhere).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from fedxnor.contract.bits import to_signed
from fedxnor.errors import FedxnorError
from fedxnor.export import images
from fedxnor.export.manifest import MANIFEST_NAME, load_export, sha256_file


def shift_threshold(src: Path, dst: Path, layer: int, neuron: int, delta: int = 1) -> Path:
    """Copy export `src` to `dst` with threshold T of (layer, neuron) replaced by T + delta
    (clipped to the layer's [acc_min, acc_max + 1]), images and sha256 resealed."""
    src, dst = Path(src), Path(dst)
    export = load_export(src)
    if not 0 <= layer < len(export.layers) - 1:
        raise FedxnorError(f"layer {layer} is not a hidden layer")
    info = export.layers[layer]
    if not 0 <= neuron < info.fan_out:
        raise FedxnorError(f"layer {layer} has no neuron {neuron}")
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    manifest = json.loads((dst / MANIFEST_NAME).read_text())
    entry = manifest["layers"][layer]
    t = list(entry["thresholds"])
    new = min(max(t[neuron] + delta, info.acc_min), info.acc_max + 1)
    if new == t[neuron]:
        raise FedxnorError(f"threshold of layer {layer} neuron {neuron} is already at its limit; pick another delta")
    t[neuron] = new
    entry["thresholds"] = t
    pe = info.pe
    ref = entry["threshold_images"][neuron % pe]
    words = [to_signed(v, info.threshold_width) for v in
             images.parse_hex((dst / ref["file"]).read_text(), info.threshold_width, info.threshold_depth, ref["file"])]
    words[neuron // pe] = new
    mask = (1 << info.threshold_width) - 1
    (dst / ref["file"]).write_text(images.format_hex([w & mask for w in words], info.threshold_width))
    ref["sha256"] = sha256_file(dst / ref["file"])
    (dst / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1) + "\n")
    load_export(dst)  # the copy must be a valid export
    return dst
