"""Checkpoint files (*.pt): a BNN's state and how it was made, written atomically."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import torch

from fedxnor.atomic import write_bytes_atomic
from fedxnor.errors import FedxnorError
from fedxnor.train.models import BNN, BNNConfig

FORMAT = "fedxnor-checkpoint"
VERSION = 1


def save_checkpoint(path: Path, model: BNN, meta: dict[str, Any]) -> Path:
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, "config": model.config.to_dict(),
                "state_dict": model.state_dict(), "meta": meta}, buf)
    write_bytes_atomic(Path(path), buf.getvalue())
    return Path(path)


def load_checkpoint(path: Path) -> tuple[BNN, dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise FedxnorError(f"{path}: no such checkpoint; train one with 'fedxnor train --out DIR'")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad file
        raise FedxnorError(f"{path}: not a readable checkpoint ({type(e).__name__}); retrain or pick the right file") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise FedxnorError(f"{path}: not a fedxnor checkpoint")
    if blob.get("version") != VERSION:
        raise FedxnorError(f"{path}: checkpoint version {blob.get('version')!r}, this fedxnor reads {VERSION}")
    cfg = dict(blob["config"])
    for key in ("sizes", "input_shape"):
        cfg[key] = tuple(cfg[key])
    model = BNN(BNNConfig(**cfg))
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as e:
        raise FedxnorError(f"{path}: weights do not fit model {cfg['name']} ({str(e).splitlines()[0]})") from None
    model.eval()
    return model, dict(blob.get("meta", {}))


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
