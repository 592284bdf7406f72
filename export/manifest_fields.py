"""Typed, bounded reads of manifest.json fields: every bad field is one line naming the field and the fix.

The manifest is input like any other: hand-edited, truncated or hostile. Nothing
here trusts a type, a size or a path: integers are integers (not booleans, not
floats) inside stated bounds, flags are booleans, every file a manifest names is
a plain file name inside the export directory, and the JSON itself is bounded in
size, depth and number length before anything is built from it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fedxnor.errors import FedxnorError

FIX = "re-export the model"
MAX_MANIFEST_BYTES = 64 << 20  # a 784-256-256-256-10 manifest is ~20 kB
MAX_LAYERS = 64
MAX_NEURONS = 1 << 20  # fan-in and fan-out of one layer
MAX_INPUT_BITS = 16
MAX_INPUT_DIMS = 4
MAX_SIDE = 1 << 14  # a feature map's height or width, a window's side, a stride, a padding
MAX_MAP_VALUES = 1 << 26  # values in one layer's input or output map (a 4096 x 4096 x 4 image)
NAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
SHA256_RE = re.compile(r"[0-9a-f]{64}")


def need(cond: bool, msg: str) -> None:
    if not cond:
        raise FedxnorError(msg)


def show(value: Any) -> str:
    """A short, one-line rendering of a bad value for an error message."""
    text = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def read_json(mpath: Path) -> dict[str, Any]:
    """manifest.json as a dict, or one line saying why not (size, encoding, syntax, depth, NaN, huge numbers)."""
    try:
        size = mpath.stat().st_size
        need(size <= MAX_MANIFEST_BYTES, f"{mpath}: {size} bytes is not a manifest (at most {MAX_MANIFEST_BYTES}); {FIX}")
        text = mpath.read_bytes().decode("utf-8")
    except OSError as e:
        raise FedxnorError(f"{mpath}: cannot read the manifest ({e.strerror or e}); check the path and its permissions") from None
    except UnicodeDecodeError:
        raise FedxnorError(f"{mpath}: not UTF-8 text; {FIX}") from None

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a number a manifest may hold")

    try:
        manifest = json.loads(text, parse_constant=no_constant)
    except RecursionError:
        raise FedxnorError(f"{mpath}: JSON nested too deeply to be a manifest; {FIX}") from None
    except ValueError as e:  # JSONDecodeError, NaN/Infinity, integers longer than Python's digit limit
        raise FedxnorError(f"{mpath}: not valid JSON ({' '.join(str(e).split())[:120]}); {FIX}") from None
    need(isinstance(manifest, dict), f"{mpath}: the manifest must be a JSON object; {FIX}")
    return manifest


def obj(parent: dict, key: str, where: str, *, default: Any = None) -> dict:
    v = parent.get(key, default)
    need(isinstance(v, dict), f"{where}: field '{key}' must be an object, got {show(v)}; {FIX}")
    return v


def lst(parent: dict, key: str, where: str, *, length: int | None = None, most: int | None = None) -> list:
    v = parent.get(key)
    need(isinstance(v, list), f"{where}: field '{key}' must be a list, got {show(v)}; {FIX}")
    if length is not None:
        need(len(v) == length, f"{where}: field '{key}' must have {length} entries, has {len(v)}; {FIX}")
    if most is not None:
        need(1 <= len(v) <= most, f"{where}: field '{key}' must have 1..{most} entries, has {len(v)}; {FIX}")
    return v


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def integer(parent: dict, key: str, where: str, lo: int, hi: int) -> int:
    """parent[key] as an int in [lo, hi]; one line naming the field otherwise."""
    need(key in parent, f"{where}: missing field '{key}'; {FIX}")
    v = parent[key]
    need(is_int(v) and lo <= v <= hi, f"{where}: field '{key}' must be an integer in {lo}..{hi}, got {show(v)}; {FIX}")
    return v


def exact(parent: dict, key: str, where: str, value: int, why: str) -> int:
    """parent[key] must be the integer `value`, which `why` explains (e.g. "ceil(fan_in / simd)")."""
    need(key in parent, f"{where}: missing field '{key}' (it must be {value}, {why}); {FIX}")
    v = parent[key]
    need(is_int(v) and v == value, f"{where}: field '{key}' must be {value} ({why}), got {show(v)}; {FIX}")
    return v


def flag(parent: dict, key: str, where: str) -> bool:
    need(key in parent, f"{where}: missing field '{key}'; {FIX}")
    v = parent[key]
    need(isinstance(v, bool), f"{where}: field '{key}' must be true or false, got {show(v)}; {FIX}")
    return v


def choice(parent: dict, key: str, where: str, options: tuple[str, ...], default: str | None = None) -> str:
    v = parent.get(key, default)
    need(isinstance(v, str) and v in options,
         f"{where}: field '{key}' must be one of {', '.join(repr(o) for o in options)}, got {show(v)}; {FIX}")
    return v


def name(parent: dict, key: str, where: str, default: str) -> str:
    v = parent.get(key, default)
    need(isinstance(v, str) and NAME_RE.fullmatch(v) is not None,
         f"{where}: field '{key}' must be 1-64 letters, digits, '_', '.' or '-', got {show(v)}; {FIX}")
    return v


def shape_fields(parent: dict, kind: str, keys: tuple[str, ...], where: str) -> dict[str, int]:
    """A layer kind's shape fields (contract/dense.py, conv.py, pool.py), each an integer in its range."""
    bounds = {"fan_in": (1, MAX_NEURONS), "fan_out": (1, MAX_NEURONS), "in_c": (1, MAX_NEURONS), "out_c": (1, MAX_NEURONS),
              "c": (1, MAX_NEURONS), "pad": (0, MAX_SIDE)}
    return {key: integer(parent, key, where, *bounds.get(key, (1, MAX_SIDE))) for key in keys}


def ints(values: list, where: str, key: str) -> list[int]:
    need(all(is_int(v) for v in values), f"{where}: field '{key}' must list integers only; {FIX}")
    return values


def confined(directory: Path, file_name: Any, where: str) -> Path:
    """The path of a file a manifest names: a plain file name, inside the export directory (no '/', '..', links out)."""
    need(isinstance(file_name, str), f"{where}: a file name must be a string, got {show(file_name)}; {FIX}")
    plain = (file_name not in ("", ".", "..") and "/" not in file_name and "\\" not in file_name and "\x00" not in file_name
             and not Path(file_name).is_absolute() and len(file_name) <= 255)
    need(plain, f"{where}: file {show(file_name)} must be a plain file name inside the export directory; {FIX}")
    path = directory / file_name
    try:
        inside = path.resolve().parent == directory.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        inside = False
    need(inside, f"{where}: file {file_name!r} links outside the export directory; {FIX}")
    return path


def file_ref(directory: Path, ref: Any, where: str) -> tuple[Path, str]:
    """(confined path, expected sha256) of a {"file": ..., "sha256": ...} entry."""
    need(isinstance(ref, dict), f"{where}: must be an object with 'file' and 'sha256', got {show(ref)}; {FIX}")
    need("file" in ref and "sha256" in ref, f"{where}: needs 'file' and 'sha256'; {FIX}")
    digest = ref["sha256"]
    need(isinstance(digest, str) and SHA256_RE.fullmatch(digest) is not None,
         f"{where}: 'sha256' must be 64 lowercase hex digits, got {show(digest)}; {FIX}")
    return confined(directory, ref["file"], where), digest


MAP_ENTRIES = 256  # an input map gives the first layer's value of every 8-bit pixel


def input_map(parent: dict, where: str, lo: int, hi: int) -> list[int]:
    """The input section's "map" (encoding "pixels-mapped"): 256 integers, entry p the first layer's input value of
    pixel p, each in the layer's input range [lo, hi] (e.g. -128..127 for 8-bit signed inputs)."""
    values = ints(lst(parent, "map", where, length=MAP_ENTRIES), where, "map")
    bad = next((v for v in values if not lo <= v <= hi), None)
    need(bad is None, f"{where}: field 'map' holds {show(bad)}, outside layer 0's input range {lo}..{hi}; {FIX}")
    return values
