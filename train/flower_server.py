"""The fedxnor ServerApp's loop: which SuperNode trains which client, what happens when one fails.

Clients are logical ids. At start the server waits for `min-nodes` SuperNodes and gives each client
a home node: the k-th of the sorted node ids for client ids c with c mod nodes = k. In a round:

1. The live nodes are the SuperNodes the SuperLink lists, minus those that failed earlier in the run.
   Fewer than `min-live-nodes` (waiting up to `wait-nodes-s` for more) stops the run: FedxnorError.
2. Each sampled client goes to its home node when that node is live, else to live[c mod len(live)];
   a node gets its ids, the round and the global model.
3. A node that answers with an error, or not within `round-timeout-s`, has failed: it is recorded in
   the round's `node_failures`, left out of the rest of the run, and its clients are sent once more,
   to the nodes that did answer. Clients that still get no update are listed in `rejected`.
4. Every reply goes through federation_accept.screen_round (the in-process loop's rules): a node's
   reply counts only for the ids it was sent, each once.

Training depends only on (seed, round, client), so a reassigned client trains exactly as at home;
only EF-SignSGD's error memory, kept on the home node, starts afresh on the substitute.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fedxnor.errors import FedxnorError
from fedxnor.progress import log
from fedxnor.train.federated import STATE_FILE, Federation
from fedxnor.train.federation_accept import NodeReply
from fedxnor.train.federation_loop import _finish, _save_state

RECORD = "fedxnor"


class NodeRoster:
    """Home nodes, failed nodes and the live set of a run."""

    def __init__(self, grid, min_nodes: int, min_live: int, wait_s: float):
        self.grid, self.min_live, self.wait_s = grid, min_live, wait_s
        self.failed: set[int] = set()
        self.home = self._wait_for(min_nodes, "start")

    def _listed(self) -> list[int]:
        return sorted(int(n) for n in self.grid.get_node_ids() if int(n) not in self.failed)

    def _wait_for(self, count: int, when: str) -> list[int]:
        deadline = time.monotonic() + self.wait_s
        nodes = self._listed()
        while len(nodes) < count and time.monotonic() < deadline:
            time.sleep(0.5)
            nodes = self._listed()
        if len(nodes) < max(1, count):
            raise FedxnorError(f"{when}: {len(nodes)} live SuperNodes after waiting {self.wait_s:g} s, fewer than the "
                               f"{max(1, count)} required; start more SuperNodes or lower min-nodes / min-live-nodes")
        return nodes

    def live(self, rnd: int) -> list[int]:
        return self._wait_for(self.min_live, f"round {rnd + 1}")

    def assign(self, cids: list[int], live: list[int]) -> dict[int, list[int]]:
        """node -> its client ids: each client's home node when live, else a live node by client id."""
        out: dict[int, list[int]] = {}
        for c in cids:
            home = self.home[c % len(self.home)]
            node = home if home in live else live[c % len(live)]
            out.setdefault(node, []).append(c)
        return out


def _exchange(grid, rnd: int, down: bytes, plan: dict[int, list[int]], timeout: float) -> tuple[list[NodeReply], dict]:
    """Send each node its ids; (the nodes' replies, {node: failure reason} for those that failed)."""
    from flwr.app import ConfigRecord, Message, MessageType, RecordDict

    messages = [Message(content=RecordDict({RECORD: ConfigRecord({"round": rnd, "cids": cids, "model": down})}),
                        message_type=MessageType.TRAIN, dst_node_id=node, group_id=str(rnd))
                for node, cids in plan.items()]
    replies, failures, seen = [], {}, set()
    for reply in grid.send_and_receive(messages, timeout=timeout):
        node = int(reply.metadata.src_node_id)
        if node not in plan or node in seen:
            continue  # the SuperLink matches replies to messages; anything else is not ours to count
        seen.add(node)
        if reply.has_error():
            failures[node] = f"error reply: {str(reply.error.reason)[:200]}"
            continue
        record = reply.content[RECORD] if RECORD in reply.content else None
        replies.append(NodeReply(str(node), tuple(plan[node]), record))
    for node in plan:
        if node not in seen:
            failures[node] = f"no reply within {timeout:g} s"
    return replies, failures


def server_main(grid, run_config: dict[str, Any], fed: Federation, exchange=_exchange) -> None:
    """The ServerApp's run; `exchange` sends a round's plan and collects the replies (tests give a fake one)."""
    cfg = fed.cfg
    out_dir = Path(str(run_config.get("out", "runs/flower")))
    out_dir.mkdir(parents=True, exist_ok=True)
    min_nodes = int(run_config.get("min-nodes", 1))
    timeout = float(run_config.get("round-timeout-s", 600))
    roster = NodeRoster(grid, min_nodes, int(run_config.get("min-live-nodes", 1)), float(run_config.get("wait-nodes-s", 120)))
    log(f"fedxnor ServerApp: {cfg.algo}/{cfg.model}/{cfg.codec}, {len(roster.home)} SuperNodes, {cfg.rounds} rounds")
    state, history, up_total, down_total = fed.initial_state(), [], 0, 0
    t_all = time.monotonic()
    for rnd in range(cfg.rounds):
        t0 = time.monotonic()
        cids = fed.sample(rnd)
        down = fed.broadcast(state)
        plan = roster.assign(cids, roster.live(rnd))
        replies, failures = exchange(grid, rnd, down, plan, timeout)
        node_failures = []
        if failures:
            roster.failed |= set(failures)
            answered = [n for n in plan if n not in failures]
            orphans = sorted(c for n in failures for c in plan[n])
            retry = roster.assign(orphans, answered) if answered else {}
            for n, why in sorted(failures.items()):
                log(f"round {rnd + 1}: SuperNode {n} failed ({why}); its clients {plan[n]} go to {sorted(retry) or 'nobody'}")
                node_failures.append({"node": str(n), "reason": why, "clients": plan[n]})
            more, lost = exchange(grid, rnd, down, retry, timeout) if retry else ([], {})
            roster.failed |= set(lost)
            replies += more
            replies += [NodeReply(str(n), tuple(retry[n]), error=why) for n, why in lost.items()]
            stranded = [] if retry else orphans
            replies += [NodeReply("none", tuple(stranded), error="no live SuperNode left")] if stranded else []
            node_failures += [{"node": str(n), "reason": why, "clients": retry[n]} for n, why in lost.items()]
        state, info = fed.aggregate(state, replies, rnd)
        acc, test_loss = fed.evaluate(state)
        up_total += info["uplink_bytes"]
        down_total += len(down) * len(cids)
        row = {"round": rnd + 1, "test_accuracy": acc, "test_loss": test_loss, "clients": cids,
               "downlink_bytes": len(down) * len(cids), **info, "node_failures": node_failures,
               "seconds": round(time.monotonic() - t0, 3), "uplink_bytes_cum": up_total, "downlink_bytes_cum": down_total}
        history.append(row)
        _save_state(out_dir / STATE_FILE, cfg, rnd + 1, state, {}, history)
        log(f"round {rnd + 1}/{cfg.rounds}: test accuracy {acc:.4f}, uplink {info['uplink_bytes']} bytes"
            + (f", rejected {[r['client'] for r in info['rejected']]}" if info["rejected"] else ""))
    _finish(fed, state, history, out_dir, time.monotonic() - t_all)
