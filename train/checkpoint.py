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


def save_checkpoint(path: Path, model: torch.nn.Module, meta: dict[str, Any], encoder: dict | None = None) -> Path:
    """A BNN (kind 'bnn', exportable) or a full-precision baseline (kind 'fp'). `encoder`: a HyBNN's
    frozen float encoder (train/hybnn.py vae_to_blob) that turns images into the BNN's input bits."""
    from fedxnor.train.fpmodels import FPMLP

    blob = {"format": FORMAT, "version": VERSION, "kind": "fp" if isinstance(model, FPMLP) else "bnn",
            "config": model.config.to_dict(), "state_dict": model.state_dict(), "meta": meta}
    if encoder is not None:
        blob["encoder"] = encoder
    buf = io.BytesIO()
    torch.save(blob, buf)
    write_bytes_atomic(Path(path), buf.getvalue())
    return Path(path)


def _read_blob(path: Path) -> dict[str, Any]:
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
    return blob


def load_checkpoint(path: Path) -> tuple[BNN, dict[str, Any]]:
    """The BNN of a checkpoint (the exporter's entry point); a full-precision baseline is refused."""
    path = Path(path)
    blob = _read_blob(path)
    if blob.get("kind", "bnn") != "bnn":
        raise FedxnorError(f"{path}: a full-precision baseline ({blob['config'].get('name')}); only BNN models export: "
                           "train with a BNN model (mlp, mlp-small, hybnn-head, ...)")
    cfg = _config_fields(blob["config"])
    model = BNN(BNNConfig(**cfg))
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as e:
        raise FedxnorError(f"{path}: weights do not fit model {cfg['name']} ({str(e).splitlines()[0]})") from None
    model.eval()
    return model, dict(blob.get("meta", {}))


def _config_fields(config: dict) -> dict:
    """A saved config's fields as the config dataclass takes them (tuples, conv blocks as tuples of ints)."""
    cfg = dict(config)
    for key in ("sizes", "input_shape"):
        cfg[key] = tuple(cfg[key])
    cfg["convs"] = tuple(tuple(int(v) for v in block) for block in cfg.get("convs", ()))
    return cfg


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_any_checkpoint(path: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A BNN or a full-precision baseline (for evaluation)."""
    blob = _read_blob(Path(path))
    if blob.get("kind", "bnn") == "bnn":
        return load_checkpoint(path)
    from fedxnor.train.fpmodels import FPMLP, FPConfig

    cfg = _config_fields(blob["config"])
    model = FPMLP(FPConfig(**cfg))
    model.load_state_dict(blob["state_dict"])
    model.eval()
    return model, dict(blob.get("meta", {}))


def load_encoder(path: Path):
    """A HyBNN checkpoint's frozen encoder (BinaryVAE; .encode_bits(images) -> (n, latent bits) uint8), or None."""
    blob = _read_blob(Path(path))
    if "encoder" not in blob:
        return None
    from fedxnor.train.hybnn import vae_from_blob

    return vae_from_blob(blob["encoder"])


def encoded_test_inputs(path: Path, data_dir: Path | None = None, limit: int | None = None):
    """For a HyBNN checkpoint: (bits (n, latent bits) uint8, labels (n,) uint8) of the test split through the
    frozen encoder: the BNN head's inputs (what export writes as test_inputs.u8 / test_labels.u8)."""
    from fedxnor.datasets import load_split

    enc = load_encoder(path)
    if enc is None:
        raise FedxnorError(f"{path}: no encoder in this checkpoint (not a HyBNN model)")
    test = load_split("test", data_dir).take(limit)
    pixels = int(test.images[0].size) if len(test) else 0
    if pixels != enc.config.input_size:
        where = data_dir or "the default data set"
        raise FedxnorError(f"{path}: its encoder takes images of {enc.config.input_size} pixels but {where} holds "
                           f"{' x '.join(map(str, test.image_shape))} images; pass --data with the data it was trained on")
    return enc.encode_bits(test.images), test.labels.astype("uint8")


def read_round_state(path: Path, broken_ok: bool = False) -> dict[str, Any]:
    """A federated run's round_state.pt (written after every round), checked for the fields a resume reads.

    A truncated or foreign file is one FedxnorError line (or, with broken_ok, an empty dict: the flow then
    starts the run over)."""
    path = Path(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        ok = (isinstance(blob, dict) and isinstance(blob.get("fingerprint"), str) and type(blob.get("round")) is int
              and blob["round"] >= 0 and isinstance(blob.get("state"), dict) and isinstance(blob.get("memories"), dict)
              and isinstance(blob.get("history"), str))
        reason = "" if ok else "missing or malformed fields"
    except Exception as e:  # torch raises many types for a truncated or foreign file
        blob, reason = None, type(e).__name__
    if reason:
        if broken_ok:
            return {}
        raise FedxnorError(f"{path}: not a readable round state ({reason}); delete it to start the run over, "
                           "or use a new --out")
    return blob
