"""Flower deployment: a ServerApp and a ClientApp that run the same Federation code as the
in-process loop, with every model and update travelling as bytes (the codecs' payloads)
inside Flower messages (a ConfigRecord named "fedxnor").

Clients are logical: the server samples client ids exactly as train_federated does and sends
each SuperNode its share (train/flower_server.py: home nodes, failures, min-live-nodes); the node
trains them on its own copy of the data set, partitioned from the same seed. So a Flower run and
an in-process run with the same configuration end with the same global model, bit for bit. The
server trusts no reply (train/federation_accept.py). EF-SignSGD's per-client error memories live
in the node's Context.state.

    fedxnor flower-app --out APP [--algo ... --rounds ...]   # writes APP/pyproject.toml + shim
    flwr run APP CONNECTION --stream                         # see docs/federated.md
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fedxnor.errors import FedxnorError
from fedxnor.train import codecs
from fedxnor.train.federated import FederatedConfig, Federation
from fedxnor.train.flower_server import RECORD

_CACHE: dict[str, Federation] = {}


def config_from_run(run_config: dict[str, Any]) -> FederatedConfig:
    """Flower run config (keys with '-' or '_') -> FederatedConfig."""
    kw: dict[str, Any] = {}
    for f in fields(FederatedConfig):
        for key in (f.name, f.name.replace("_", "-")):
            if key in run_config:
                kw[f.name] = type(getattr(FederatedConfig(), f.name))(run_config[key])
    return FederatedConfig(**kw).resolved()


def federation_for(cfg: FederatedConfig) -> Federation:
    key = cfg.fingerprint()
    if key not in _CACHE:
        torch.set_num_threads(1)
        _CACHE.clear()
        vae = Path(tempfile.gettempdir()) / f"fedxnor-vae-{key}.pt" if cfg.algo == "fedhybnn" else None
        _CACHE[key] = Federation(cfg, vae_cache=vae)
    return _CACHE[key]


def _server_main(grid, context, fixed: dict[str, Any] | None = None) -> None:
    from fedxnor.train.flower_server import server_main

    run_config = {**dict(context.run_config), **(fixed or {})}
    server_main(grid, run_config, federation_for(config_from_run(run_config)))


def _fault(kind: str, cids: list[int], payloads: list[bytes], losses: list[float], fed: Federation):
    """TEST-ONLY fault injection (node config fedxnor-fault): a SuperNode that lies, to show the server refuses it.

    lie-ids: claims a client it was not sent (a copy of its first update) and its first client twice, drops the rest;
    absurd: its first update becomes 3e38 everywhere; nan-loss: its first train loss is NaN."""
    if kind == "lie-ids":
        stolen = next(c for c in range(fed.cfg.clients) if c not in cids)
        return [cids[0], stolen, cids[0]], [payloads[0]] * 3, [losses[0]] * 3
    if kind == "absurd":
        t = codecs.decode(payloads[0], fed.layout)
        huge = [np.full_like(x, 3e38) if not fed.layout.is_stat(i) else x for i, x in enumerate(t)]
        return cids, [codecs.encode_fp32(huge, fed.layout)] + payloads[1:], losses
    if kind == "nan-loss":
        return cids, payloads, [float("nan")] + losses[1:]
    return cids, payloads, losses


def _client_train(msg, context, fixed: dict[str, Any] | None = None):
    from flwr.app import ConfigRecord, Message, RecordDict

    cfg = config_from_run({**dict(context.run_config), **(fixed or {})})
    fed = federation_for(cfg)
    rec = msg.content[RECORD]
    rnd, down = int(rec["round"]), bytes(rec["model"])
    ef = context.state[RECORD] if RECORD in context.state else ConfigRecord()
    payloads, losses = [], []
    for cid in [int(c) for c in rec["cids"]]:
        memory = None
        if str(cid) in ef:
            memory = codecs.decode(bytes(ef[str(cid)]), fed.layout, "fp32")
        payload, mem, loss = fed.client_update(down, cid, rnd, memory)
        if mem is not None:  # EF memory: kept on this node, as an fp32 payload
            ef[str(cid)] = codecs.encode_fp32([m if m.size else np.zeros(s, np.float32)
                                               for m, s in zip(mem, fed.layout.shapes)], fed.layout)
        payloads.append(payload)
        losses.append(float(loss))
    context.state[RECORD] = ef
    cids = [int(c) for c in rec["cids"]]
    fault = str(context.node_config.get("fedxnor-fault", ""))
    if fault and cids:
        cids, payloads, losses = _fault(fault, cids, payloads, losses, fed)
    return Message(RecordDict({RECORD: ConfigRecord({"cids": cids, "payloads": payloads, "losses": losses})}), reply_to=msg)


# the ServerApp's own settings (train/flower_server.py) and their defaults
SERVER_SETTINGS = {"min-nodes": 1, "min-live-nodes": 1, "wait-nodes-s": 120.0, "round-timeout-s": 600.0}


def run_config_of(cfg: FederatedConfig, out: Path | None = None, min_nodes: int = 1, **server: Any) -> dict[str, Any]:
    """A FederatedConfig as Flower run config (what write_app puts in pyproject.toml); `server` sets
    SERVER_SETTINGS by their names with '_' (min_live_nodes=2, round_timeout_s=60)."""
    run_cfg: dict[str, Any] = {k.replace("_", "-"): v for k, v in asdict(cfg).items()}
    if out is not None:
        run_cfg["out"] = str(Path(out).resolve())
    settings = {**SERVER_SETTINGS, "min-nodes": min_nodes, **{k.replace("_", "-"): v for k, v in server.items()}}
    unknown = sorted(set(settings) - set(SERVER_SETTINGS))
    if unknown:
        raise FedxnorError(f"unknown Flower server setting {unknown[0]!r}: choose from {', '.join(SERVER_SETTINGS)}")
    if settings["min-nodes"] < 1 or settings["min-live-nodes"] < 1:
        raise FedxnorError("min-nodes and min-live-nodes must be at least 1")
    if not all(0 < float(settings[k]) <= 86400 for k in ("wait-nodes-s", "round-timeout-s")):
        raise FedxnorError("wait-nodes-s and round-timeout-s must be seconds in (0, 86400]")
    run_cfg.update(settings)
    return run_cfg


def make_apps(cfg: FederatedConfig | None = None, out: Path | None = None, min_nodes: int = 1, **server: Any):
    """(ServerApp, ClientApp). With cfg, its settings override the run config (for Flower's
    simulation engine, whose run_simulation takes no run config); without, the run config decides."""
    from flwr.clientapp import ClientApp
    from flwr.serverapp import ServerApp

    fixed = run_config_of(cfg, out, min_nodes, **server) if cfg is not None else None
    server = ServerApp()
    server.main()(lambda grid, context: _server_main(grid, context, fixed))
    client = ClientApp()
    client.train()(lambda msg, context: _client_train(msg, context, fixed))
    return server, client


server_app, client_app = make_apps()


APP_MODULE = "fedxnor_flower_app"


def write_app(directory: Path, cfg: FederatedConfig, out: Path, min_nodes: int = 1, **server: Any) -> Path:
    """A Flower app directory (pyproject.toml + a shim module importing this one) for `flwr run`."""
    run_cfg = run_config_of(cfg, out, min_nodes, **server)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)

    def val(v: Any) -> str:
        return json.dumps(v) if not isinstance(v, bool) else ("true" if v else "false")

    lines = ["[build-system]", 'requires = ["hatchling"]', 'build-backend = "hatchling.build"', "",
             "[project]", 'name = "fedxnor-flower"', 'version = "1.0.0"', 'license = "Apache-2.0"',
             "dependencies = []  # fedxnor must be installed on every machine", "",
             "[tool.hatch.build.targets.wheel]", 'packages = ["."]', "",
             "[tool.flwr.app]", 'publisher = "fedxnor"', "",
             "[tool.flwr.app.components]", f'serverapp = "{APP_MODULE}:server_app"',
             f'clientapp = "{APP_MODULE}:client_app"', "", "[tool.flwr.app.config]"]
    lines += [f'"{k}" = {val(v)}' for k, v in run_cfg.items()]
    (directory / "pyproject.toml").write_text("\n".join(lines) + "\n")
    (directory / f"{APP_MODULE}.py").write_text(
        '"""fedxnor\'s Flower apps (the code lives in the installed fedxnor package)."""\n\n'
        "from fedxnor.train.flower_app import client_app, server_app\n\n__all__ = [\"client_app\", \"server_app\"]\n")
    return directory
