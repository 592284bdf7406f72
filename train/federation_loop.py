"""The in-process federation loop: rounds, resume state, metrics.json, plots, and the flow's entry point.

Federation (train/federated.py) holds the data and the algorithm's steps; this module runs them round after
round (the Flower ServerApp runs them in train/flower_server.py) and writes the run directory.
"""

from __future__ import annotations

import io
import json
import math
import time
from collections import OrderedDict
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fedxnor.atomic import write_bytes_atomic, write_text_atomic
from fedxnor.errors import FedxnorError
from fedxnor.progress import log, track
from fedxnor.train.federated import STATE_FILE, FederatedConfig, Federation
from fedxnor.train.federation_accept import NodeReply


def _save_state(path: Path, cfg: FederatedConfig, rnd: int, state, memories, history) -> None:
    buf = io.BytesIO()
    torch.save({"fingerprint": cfg.fingerprint(), "round": rnd, "state": state,
                "memories": {int(c): [torch.from_numpy(t) for t in mem] for c, mem in memories.items()},
                "history": json.dumps(history)}, buf)
    write_bytes_atomic(path, buf.getvalue())


def _load_state(path: Path, cfg: FederatedConfig):
    from fedxnor.train.checkpoint import read_round_state

    blob = read_round_state(path)
    if blob.get("fingerprint") != cfg.fingerprint():
        raise FedxnorError(f"{path}: this run directory holds a run with another configuration; "
                           "use a new --out or drop --resume")
    memories = {int(c): [t.numpy() for t in mem] for c, mem in blob["memories"].items()}
    return blob["round"], OrderedDict(blob["state"]), memories, json.loads(blob["history"])


def run_round(fed: Federation, state, rnd: int, memories: dict[int, list[np.ndarray]]) -> tuple[OrderedDict, dict]:
    """One in-process round (clients in order of id); updates `memories` in place."""
    t0 = time.monotonic()
    cids = fed.sample(rnd)
    down = fed.broadcast(state)
    payloads, losses = [], []
    for cid in cids:
        payload, mem, loss = fed.client_update(down, cid, rnd, memories.get(cid))
        if mem is not None:
            memories[cid] = mem
        payloads.append(payload)
        losses.append(loss)
    reply = NodeReply("in-process", tuple(cids), {"cids": cids, "payloads": payloads, "losses": losses})
    state, info = fed.aggregate(state, [reply], rnd)
    acc, test_loss = fed.evaluate(state)
    row = {"round": rnd + 1, "test_accuracy": acc, "test_loss": test_loss, "clients": cids,
           "downlink_bytes": len(down) * len(cids), **info, "seconds": round(time.monotonic() - t0, 3)}
    return state, row


def train_federated(cfg: FederatedConfig, out_dir: Path, data_dir: Path | None = None, progress: bool = True,
                    resume: bool = False) -> Path:
    """Run (or resume) a federation; write checkpoint.pt, metrics.json and plots into out_dir."""
    if data_dir is not None:
        cfg = replace(cfg, data_dir=str(data_dir))
    cfg = cfg.resolved()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)  # small batches: one thread is faster here, and results do not depend on the core count
    t0 = time.monotonic()
    fed = Federation(cfg, progress=progress, vae_cache=out_dir / "vae.pt")
    state_path = out_dir / STATE_FILE
    start, state, memories, history = 0, fed.initial_state(), {}, []
    if resume and state_path.is_file():
        start, state, memories, history = _load_state(state_path, cfg)
        if progress:
            log(f"resuming {out_dir} after round {start}/{cfg.rounds}")
    elif progress:
        log(fed.partition.format_summary(fed.labels, limit=0))
    write_text_atomic(out_dir / "partition.json", json.dumps(fed.partition.summary(fed.labels)) + "\n")
    up_total = sum(h["uplink_bytes"] for h in history)
    down_total = sum(h["downlink_bytes"] for h in history)
    for rnd in track(range(start, cfg.rounds), f"{cfg.algo} rounds", total=cfg.rounds - start, enabled=progress):
        state, row = run_round(fed, state, rnd, memories)
        up_total += row["uplink_bytes"]
        down_total += row["downlink_bytes"]
        row.update(uplink_bytes_cum=up_total, downlink_bytes_cum=down_total)
        history.append(row)
        _save_state(state_path, cfg, rnd + 1, state, memories, history)
        if progress:
            log(f"round {rnd + 1}/{cfg.rounds}: test accuracy {row['test_accuracy']:.4f}, loss {row['test_loss']:.4f}, "
                f"uplink {row['uplink_bytes'] / 1e6:.3f} MB ({row['uplink_bits_per_param'] or 0:.3f} bits/param)"
                + (f", rejected {[r['client'] for r in row['rejected']]}" if row["rejected"] else ""))
    return _finish(fed, state, history, out_dir, time.monotonic() - t0)


def json_safe(value: Any) -> Any:
    """value with every NaN/Inf float replaced by None: metrics.json stays strict JSON, never 'NaN'."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _finish(fed: Federation, state, history: list[dict], out_dir: Path, seconds: float) -> Path:
    from fedxnor.train.checkpoint import save_checkpoint
    from fedxnor.train.hybnn import vae_to_blob

    cfg = fed.cfg
    model = fed.final(state)
    bpp = [h["uplink_bits_per_param"] for h in history if h["uplink_bits_per_param"] is not None]
    meta = {"algo": cfg.algo, "model": cfg.model, "codec": cfg.codec, "partition": cfg.partition, "seed": cfg.seed,
            "rounds": cfg.rounds, "clients": cfg.clients, "per_round": cfg.per_round, "local_epochs": cfg.local_epochs,
            "batch": cfg.batch, "lr": cfg.learning_rate, "lr_schedule": cfg.lr_schedule, "train_limit": cfg.train_limit,
            "holdout": cfg.holdout,
            "data_dir": cfg.data_dir or None, "params_on_wire": fed.layout.values,
            "test_accuracy": history[-1]["test_accuracy"] if history else fed.evaluate(state)[0],
            "test_loss": history[-1]["test_loss"] if history else None,
            "uplink_bytes_total": int(sum(h["uplink_bytes"] for h in history)),
            "downlink_bytes_total": int(sum(h["downlink_bytes"] for h in history)),
            "uplink_bits_per_param": float(np.mean(bpp)) if bpp else None,
            "rejected_total": int(sum(len(h["rejected"]) for h in history)),
            "train_samples": int(fed.sizes.sum()), "test_samples": len(fed.test_y),
            "config": asdict(cfg), "seconds": round(seconds, 1)}
    if cfg.algo == "fedhybnn":
        meta["hybnn"] = {"encoder": f"binary VAE ({cfg.vae}), float, runs on the host; "
                                    f"the FPGA runs the BNN head on its {cfg.vae_bits} bits",
                         "vae_samples": len(fed.train_y) and int(round(len(fed.train_y) * cfg.holdout / (1 - cfg.holdout)))}
    encoder = vae_to_blob(fed.encoder) if fed.encoder is not None else None
    ckpt = save_checkpoint(out_dir / "checkpoint.pt", model, meta, encoder=encoder)
    write_text_atomic(out_dir / "metrics.json", json.dumps(json_safe({"meta": meta, "history": history}), indent=1) + "\n")
    plot_history(history, out_dir, f"{cfg.algo} ({cfg.model}, {cfg.codec}, {cfg.partition})")
    return ckpt


def plot_history(history: list[dict], out_dir: Path, title: str) -> None:
    """accuracy_rounds.png and accuracy_uplink.png (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history:
        return
    acc = [h["test_accuracy"] for h in history]
    for name, xs, xlabel in (("accuracy_rounds.png", [h["round"] for h in history], "round"),
                             ("accuracy_uplink.png", [h["uplink_bytes_cum"] / 1e6 for h in history],
                              "cumulative uplink (MB)")):
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot(xs, acc, marker=".")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        plt.close(fig)
        write_bytes_atomic(out_dir / name, buf.getvalue())


# ---------------------------------------------------------------- the flow's entry point


def flow_train(train_cfg: dict[str, Any], seed: int, out: Path, data_dir: Path | None, progress: bool = True) -> Path:
    """`fedxnor flow`'s train stage: train_cfg is the flow's [train] table. Resumes a killed run."""
    algo = train_cfg["algo"]
    if algo == "central":
        from fedxnor.train.central import CentralConfig, train_central

        kw: dict[str, Any] = {"lr": train_cfg["lr"]} if train_cfg.get("lr") else {}
        if train_cfg.get("train_limit"):
            kw["train_limit"] = train_cfg["train_limit"]
        return train_central(CentralConfig(model=train_cfg["model"], epochs=train_cfg.get("epochs", 8), seed=seed, **kw),
                             Path(out), data_dir, progress=progress)
    known = {f.name for f in fields(FederatedConfig)}
    kw = {k: train_cfg[k] for k in ("model", "codec", "partition", "clients", "per_round", "rounds", "local_epochs",
                                     "lr", "lr_schedule", "optimizer", "momentum", "prox_mu", "logit_adjust",
                                     "train_limit", "hidden", "vae", "vae_bits") if k in train_cfg and k in known}
    cfg = FederatedConfig(algo=algo, seed=seed, **kw)
    if data_dir is not None:
        cfg = replace(cfg, data_dir=str(data_dir))
    state = Path(out) / STATE_FILE
    from fedxnor.train.checkpoint import read_round_state

    if state.is_file() and read_round_state(state, broken_ok=True).get("fingerprint") != cfg.resolved().fingerprint():
        state.unlink()  # the flow changed the configuration: start over instead of resuming
    return train_federated(cfg, Path(out), data_dir, progress=progress, resume=True)
