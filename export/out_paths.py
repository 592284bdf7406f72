"""Output locations the CLI may write, checked before any work: one line naming the problem and the fix.

A command that writes a file (`verilog --out`) refuses a directory; a command that
writes an export directory (`export --out`, `fold --out`) replaces it whole, so it
refuses anything that is not a new or empty directory or an old export, and a
location that overlaps the export it reads.
"""

from __future__ import annotations

import os
from pathlib import Path

from fedxnor.errors import FedxnorError

MANIFEST_NAME = "manifest.json"  # as fedxnor.export.manifest writes it


def _writable_parent(path: Path, flag: str) -> None:
    """The nearest existing ancestor of `path` is a directory we may write in (missing ones are created)."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise FedxnorError(f"{flag} {path}: {parent} is a file, not a directory; choose another {flag}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise FedxnorError(f"{flag} {path}: no permission to write in {parent}; choose another {flag}")


def check_out_file(path: Path, flag: str = "--out", example: str = "out.v") -> Path:
    """`path` may be written as a file: it is not a directory and its directory can be created."""
    path = Path(path)
    if path.is_dir():
        raise FedxnorError(f"{flag} {path} is a directory; name a file to write, e.g. {flag} {path / example}")
    if path.name in ("", ".", ".."):
        raise FedxnorError(f"{flag} {path!s} names no file; name a file to write, e.g. {flag} {example}")
    _writable_parent(path, flag)
    return path


def check_out_export_dir(path: Path, flag: str = "--out", source: Path | None = None) -> Path:
    """`path` may be replaced by an export directory: new, empty, or an old export; not the source nor around it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FedxnorError(f"{flag} {path} is a file; name a new directory for the export")
    if path.is_dir() and not (path / MANIFEST_NAME).is_file() and any(path.iterdir()):
        raise FedxnorError(f"{flag} {path} is a directory that is not an export, and it would be replaced whole; "
                           f"name a new directory (e.g. {flag} {path / 'export'})")
    if source is not None:
        out, src = path.resolve(), Path(source).resolve()
        if out == src or src in out.parents or out in src.parents:
            raise FedxnorError(f"{flag} {path} overlaps the export it reads ({source}); name a directory outside it")
    _writable_parent(path, flag)
    return path
