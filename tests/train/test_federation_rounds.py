"""Rounds that go wrong, in-process and in the ServerApp's loop (train/flower_server.py with a fake grid):
no accepted update stops the run with no checkpoint; a NaN train loss is rejected and never reaches metrics.json;
a failed SuperNode's clients are reassigned (same model as in-process); too few live nodes stop the run."""

from __future__ import annotations

import json

import pytest
import torch

from fedxnor.errors import FedxnorError
from fedxnor.train.federated import FederatedConfig, Federation, train_federated
from fedxnor.train.federation_accept import NodeReply
from fedxnor.train.flower_server import server_main

TINY = dict(algo="fedavg", model="mlp-small", clients=6, per_round=3, train_limit=2000, test_limit=300)


def strict_json(path):
    return json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in {path}"))


def test_no_accepted_update_fails_the_run_without_a_checkpoint(tmp_path, monkeypatch):
    honest = Federation.client_update
    monkeypatch.setattr(Federation, "client_update",
                        lambda self, *a, **k: (lambda p, m, loss: (p, m, float("nan")))(*honest(self, *a, **k)))
    with pytest.raises(FedxnorError, match="round 1: no client update was accepted .*train loss nan"):
        train_federated(FederatedConfig(rounds=2, **TINY), tmp_path / "r", progress=False)
    assert not (tmp_path / "r" / "checkpoint.pt").exists() and not (tmp_path / "r" / "metrics.json").exists()


def test_nan_train_loss_is_rejected_and_recorded_as_null(tmp_path, monkeypatch):
    honest = Federation.client_update
    bad = Federation(FederatedConfig(rounds=1, **TINY)).sample(0)[0]

    def one_nan(self, down, cid, rnd, memory=None):
        payload, mem, loss = honest(self, down, cid, rnd, memory)
        return payload, mem, float("nan") if cid == bad else loss

    monkeypatch.setattr(Federation, "client_update", one_nan)
    train_federated(FederatedConfig(rounds=1, **TINY), tmp_path / "r", progress=False)
    row = strict_json(tmp_path / "r" / "metrics.json")["history"][0]
    assert [r["client"] for r in row["rejected"]] == [bad] and "not a finite number" in row["rejected"][0]["reason"]
    assert bad not in row["accepted"] and isinstance(row["train_loss"], float)


class FakeGrid:
    """Nodes listed by the 'SuperLink'; `dies` maps a node to the round from which it no longer answers."""

    def __init__(self, nodes: list[int], dies: dict[int, int] | None = None, drops: dict[int, int] | None = None):
        self.nodes, self.dies, self.drops, self.rnd = nodes, dies or {}, drops or {}, 0

    def get_node_ids(self):
        return [n for n in self.nodes if self.rnd < self.drops.get(n, 10**9)]


def fake_exchange(fed: Federation, log: list):
    def exchange(grid, rnd, down, plan, timeout):
        grid.rnd = rnd
        log.append((rnd, {n: list(c) for n, c in plan.items()}))
        replies, failures = [], {}
        for node, cids in plan.items():
            if rnd >= grid.dies.get(node, 10**9):
                failures[node] = f"no reply within {timeout:g} s"
                continue
            ups = [fed.client_update(down, c, rnd) for c in cids]
            replies.append(NodeReply(str(node), tuple(cids), {"cids": cids, "payloads": [u[0] for u in ups],
                                                              "losses": [u[2] for u in ups]}))
        grid.rnd = rnd + 1  # what the SuperLink lists when the next round starts
        return replies, failures
    return exchange


def test_server_loop_reassigns_a_dead_nodes_clients(tmp_path):
    cfg = FederatedConfig(rounds=3, **TINY)
    fed = Federation(cfg)
    log: list = []
    grid = FakeGrid([11, 22, 33], dies={22: 1})
    server_main(grid, {"out": str(tmp_path / "flower"), "min-nodes": 3, "min-live-nodes": 2, "wait-nodes-s": 0.2},
                fed, exchange=fake_exchange(fed, log))
    history = strict_json(tmp_path / "flower" / "metrics.json")["history"]
    assert history[0]["node_failures"] == [] and [f["node"] for f in history[1]["node_failures"]] == ["22"]
    assert history[2]["node_failures"] == [] and all(22 not in plan for rnd, plan in log if rnd == 2)
    assert all(h["rejected"] == [] and len(h["accepted"]) == 3 for h in history)
    # training depends only on (seed, round, client): the same model as the in-process run
    inproc = train_federated(cfg, tmp_path / "in-process", progress=False)
    a = torch.load(tmp_path / "flower" / "checkpoint.pt", weights_only=True)["state_dict"]
    b = torch.load(inproc, weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_server_loop_stops_below_min_live_nodes(tmp_path):
    fed = Federation(FederatedConfig(rounds=3, **TINY))
    grid = FakeGrid([11, 22, 33], drops={22: 1, 33: 1})
    with pytest.raises(FedxnorError, match="round 2: 1 live SuperNodes .* fewer than the 2 required"):
        server_main(grid, {"out": str(tmp_path / "f"), "min-nodes": 3, "min-live-nodes": 2, "wait-nodes-s": 0.2},
                    fed, exchange=fake_exchange(fed, []))
    assert not (tmp_path / "f" / "checkpoint.pt").exists()
    with pytest.raises(FedxnorError, match="start: 3 live SuperNodes .* fewer than the 4 required"):
        server_main(FakeGrid([1, 2, 3]), {"out": str(tmp_path / "g"), "min-nodes": 4, "wait-nodes-s": 0.2}, fed)
