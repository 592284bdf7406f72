"""What the server accepts from a round's replies: one function for the in-process loop and the Flower ServerApp.

A reply comes from a node (a SuperNode, or "in-process") that the server sent a list of client ids.
It should be a record {"cids": [...], "payloads": [bytes, ...], "losses": [float, ...]}, one payload and
one loss per id. Nothing in it is trusted:

- a node's reply counts only for the ids the server assigned to that node this round, each once;
  an id it was not sent, a duplicate, or an id that is not an integer is rejected;
- a reply whose lists differ in length, lacks its record, or is not a record at all is rejected whole
  (which payload belongs to which id is then unknowable), as is a node that failed or timed out;
- an assigned id that the reply leaves out is rejected ("no update");
- a payload must decode (codecs.decode: magic, codec, layout, length, finite values), its train loss
  must be a finite number, and its values must be within the limits below;
- among the updates that pass, an outlier (far from the round's median, below) is rejected.

Every rejection is {"client": id or None, "node": node, "reason": "..."}; nothing here raises on a reply.

Limits (documented in docs/federated.md, "Acceptance"):
- a parameter update entry above ENTRY_LIMIT in magnitude (no honest round moves a weight by 1000;
  BNN latent weights live in [-1, 1]); a BatchNorm statistic above STAT_LIMIT, or a negative variance;
- with at least MEDIAN_MIN updates in the round: an update whose parameter norm exceeds
  NORM_FACTOR x the round's median norm, or whose statistics lie further from the round's
  coordinate-wise median than STAT_FACTOR x the median such distance.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedxnor.train import codecs
from fedxnor.train.codecs import Layout, PayloadError

ENTRY_LIMIT = 1e3
STAT_LIMIT = 1e15
NORM_FACTOR = 10.0
STAT_FACTOR = 100.0
MEDIAN_MIN = 3


@dataclass(frozen=True)
class NodeReply:
    """What one node answered in a round: `record` as received (None = none), or the node's failure in `error`."""

    node: str
    assigned: tuple[int, ...]
    record: Any = None
    error: str = ""


@dataclass
class Accepted:
    client: int
    node: str
    tensors: list[np.ndarray]
    loss: float
    nbytes: int


@dataclass
class Screened:
    accepted: list[Accepted] = field(default_factory=list)  # sorted by client id
    rejected: list[dict] = field(default_factory=list)
    uplink_bytes: int = 0

    @property
    def accepted_ids(self) -> list[int]:
        return [a.client for a in self.accepted]

    @property
    def train_loss(self) -> float | None:
        """Mean train loss of the accepted updates (all finite), None when there is none."""
        return float(np.mean([a.loss for a in self.accepted])) if self.accepted else None


def _as_list(value: Any) -> list | None:
    """A record field as a list, or None when it is not a sequence (bytes and str are not lists of ids)."""
    if isinstance(value, (str, bytes, bytearray, memoryview)) or not isinstance(value, Sequence):
        return None
    return list(value)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return None
    return int(value)


def _finite_loss(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def check_limits(tensors: list[np.ndarray], layout: Layout) -> str:
    """'' if every value is within the absolute limits, else the reason."""
    for i, (name, t) in enumerate(zip(layout.names, tensors)):
        if not t.size:
            continue
        peak = float(np.max(np.abs(t.astype(np.float64))))
        if layout.is_stat(i):
            if peak > STAT_LIMIT:
                return f"statistic {name} reaches {peak:.3g}, beyond the limit {STAT_LIMIT:.0e}"
            if name.endswith("running_var") and float(t.min()) < 0:
                return f"negative variance in {name}"
        elif peak > ENTRY_LIMIT:
            return f"update of {name} reaches {peak:.3g}, beyond the limit {ENTRY_LIMIT:.0e}"
    return ""


def _reject_whole(reply: NodeReply, reason: str, out: Screened) -> None:
    out.rejected += [{"client": c, "node": reply.node, "reason": reason} for c in reply.assigned]


def _screen_node(reply: NodeReply, layout: Layout, codec: str, out: Screened, taken: set[int]) -> None:
    if reply.error:
        return _reject_whole(reply, f"node {reply.node} failed: {reply.error}", out)
    rec = reply.record
    if not isinstance(rec, Mapping):
        return _reject_whole(reply, f"node {reply.node} sent no fedxnor record", out)
    cids, payloads, losses = (_as_list(rec.get(k)) for k in ("cids", "payloads", "losses"))
    if cids is None or payloads is None or losses is None:
        return _reject_whole(reply, f"node {reply.node} sent a record without lists cids, payloads and losses", out)
    for p in payloads:
        if isinstance(p, (bytes, bytearray, memoryview)):
            out.uplink_bytes += len(p)
    if not len(cids) == len(payloads) == len(losses):
        return _reject_whole(reply, f"node {reply.node} sent {len(payloads)} payloads and {len(losses)} losses "
                                    f"for {len(cids)} client ids", out)
    assigned = set(reply.assigned)
    answered: set[int] = set()
    for raw, payload, raw_loss in zip(cids, payloads, losses):
        cid = _as_int(raw)
        reason = ""
        if cid is None:
            out.rejected.append({"client": None, "node": reply.node, "reason": f"client id {str(raw)[:40]!r} is not an integer"})
            continue
        if cid not in assigned:
            reason = f"client {cid} was not assigned to node {reply.node} this round"
        elif cid in answered:
            reason = f"duplicate update for client {cid}"
        answered.add(cid)
        if reason:  # an id the node may not speak for: its update never counts, and the honest one stays
            out.rejected.append({"client": cid, "node": reply.node, "reason": reason})
            continue
        loss = _finite_loss(raw_loss)
        try:
            if not isinstance(payload, (bytes, bytearray, memoryview)):
                raise PayloadError("payload is not bytes")
            tensors = codecs.decode(bytes(payload), layout, codec)
            if loss is None:
                raise PayloadError(f"train loss {str(raw_loss)[:40]} is not a finite number")
            limit = check_limits(tensors, layout)
            if limit:
                raise PayloadError(limit)
        except PayloadError as e:
            out.rejected.append({"client": cid, "node": reply.node, "reason": str(e)})
            continue
        if cid in taken:  # assigned twice (a retry after a node failure) and answered twice: the first stays
            out.rejected.append({"client": cid, "node": reply.node, "reason": f"duplicate update for client {cid}"})
            continue
        taken.add(cid)
        out.accepted.append(Accepted(cid, reply.node, tensors, loss, len(payload)))
    for cid in sorted(assigned - answered):
        out.rejected.append({"client": cid, "node": reply.node, "reason": f"node {reply.node} sent no update"})


def _median_outliers(out: Screened, layout: Layout) -> None:
    """Reject updates far from the round's median (needs MEDIAN_MIN updates to know what the median is)."""
    if len(out.accepted) < MEDIAN_MIN:
        return
    par = [i for i in range(len(layout.names)) if not layout.is_stat(i)]
    sta = [i for i in range(len(layout.names)) if layout.is_stat(i)]

    def flat(a: Accepted, idx: list[int]) -> np.ndarray:
        return np.concatenate([a.tensors[i].ravel().astype(np.float64) for i in idx]) if idx else np.zeros(0)

    norms = np.asarray([np.linalg.norm(flat(a, par)) for a in out.accepted])
    stats = np.stack([flat(a, sta) for a in out.accepted])
    dist = np.linalg.norm(stats - np.median(stats, axis=0), axis=1) if sta else np.zeros(len(norms))
    med_norm, med_dist = float(np.median(norms)), float(np.median(dist))
    keep = []
    for a, n, d in zip(out.accepted, norms, dist):
        if med_norm > 0 and n > NORM_FACTOR * med_norm:
            reason = f"update norm {n:.3g} is over {NORM_FACTOR:g}x the round's median {med_norm:.3g}"
        elif med_dist > 0 and d > STAT_FACTOR * med_dist:
            reason = f"statistics {d:.3g} from the round's median, over {STAT_FACTOR:g}x the median distance {med_dist:.3g}"
        else:
            keep.append(a)
            continue
        out.rejected.append({"client": a.client, "node": a.node, "reason": reason})
    out.accepted = keep


def screen_round(replies: list[NodeReply], layout: Layout, codec: str) -> Screened:
    """The accepted updates of a round (sorted by client id) and every rejection with its reason. Never raises on a reply."""
    out = Screened()
    taken: set[int] = set()
    for reply in replies:
        part, part_taken = Screened(), set(taken)
        try:
            _screen_node(reply, layout, codec, part, part_taken)
        except Exception as e:  # noqa: BLE001 (a reply must never crash the run; say what it did)
            part = Screened()
            _reject_whole(reply, f"node {reply.node} sent an unreadable reply ({type(e).__name__})", part)
        else:
            taken |= part_taken
        out.accepted += part.accepted
        out.rejected += part.rejected
        out.uplink_bytes += part.uplink_bytes
    out.accepted.sort(key=lambda a: a.client)
    _median_outliers(out, layout)
    return out
