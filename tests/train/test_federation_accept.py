"""The server's acceptance rules (train/federation_accept.py), shared by the in-process loop and the Flower ServerApp:
hand-made lies, absurd values, and Hypothesis-generated replies that must never raise."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedxnor.train import codecs
from fedxnor.train.codecs import Layout
from fedxnor.train.federation_accept import ENTRY_LIMIT, NodeReply, screen_round

LAYOUT = Layout(("w", "b", "bn.running_mean", "bn.running_var"), ((4, 3), (4,), (4,), (4,)), (False, False, True, True))


def honest(cid: int) -> bytes:
    """A plausible fp32 update for client cid (small parameter moves, positive variances)."""
    rng = np.random.default_rng(cid)
    return codecs.encode_fp32([rng.normal(0, 0.01, (4, 3)), rng.normal(0, 0.01, 4), rng.normal(0, 1, 4),
                               rng.uniform(0.5, 2, 4)], LAYOUT)


def reply(node: str, assigned, cids=None, payloads=None, losses=None) -> NodeReply:
    cids = list(assigned) if cids is None else cids
    payloads = [honest(c) for c in cids] if payloads is None else payloads
    losses = [0.5] * len(cids) if losses is None else losses
    return NodeReply(node, tuple(assigned), {"cids": cids, "payloads": payloads, "losses": losses})


def reasons(screened) -> dict:
    return {(r["client"], r["node"]): r["reason"] for r in screened.rejected}


def test_honest_round_accepts_everyone_in_id_order():
    s = screen_round([reply("B", [1, 4]), reply("A", [0, 3])], LAYOUT, "fp32")
    assert s.accepted_ids == [0, 1, 3, 4] and s.rejected == [] and s.train_loss == 0.5
    assert s.uplink_bytes == 4 * len(honest(0))


def test_a_node_speaks_only_for_its_own_ids_once():
    liar = reply("B", [1, 4], cids=[1, 0, 1])  # claims A's client 0, sends 1 twice, leaves out 4
    s = screen_round([liar, reply("A", [0, 3])], LAYOUT, "fp32")
    assert s.accepted_ids == [0, 1, 3]
    assert [a.node for a in s.accepted] == ["A", "B", "A"]  # client 0 counts once, from the node it was sent to
    r = reasons(s)
    assert "not assigned to node B" in r[(0, "B")] and "duplicate" in r[(1, "B")] and "no update" in r[(4, "B")]
    assert len(s.rejected) == 3


def test_whole_reply_rejected_when_it_cannot_be_paired():
    short = reply("A", [0, 3], payloads=[honest(0)])  # fewer payloads than ids
    nolosses = reply("B", [1], losses=[])
    missing = NodeReply("C", (2,), None)
    notarecord = NodeReply("D", (5,), ["cids", [5]])
    dead = NodeReply("E", (6,), error="no reply within 5 s")
    strings = NodeReply("F", (7,), {"cids": "7", "payloads": [honest(7)], "losses": [0.1]})
    ok = reply("G", [8])
    s = screen_round([short, nolosses, missing, notarecord, dead, strings, ok], LAYOUT, "fp32")
    assert s.accepted_ids == [8]
    r = reasons(s)
    assert "1 payloads" in r[(0, "A")] and "1 payloads" in r[(3, "A")] and "0 losses" in r[(1, "B")]
    assert "no fedxnor record" in r[(2, "C")] and "no fedxnor record" in r[(5, "D")]
    assert "failed: no reply" in r[(6, "E")] and "without lists" in r[(7, "F")]


def test_bad_payloads_and_losses_are_rejected_with_reasons():
    t = codecs.decode(honest(0), LAYOUT)
    absurd = codecs.encode_fp32([np.full((4, 3), 3e38), *t[1:]], LAYOUT)
    negvar = codecs.encode_fp32([*t[:3], -np.ones(4)], LAYOUT)
    bigstat = codecs.encode_fp32([*t[:2], np.full(4, 1e16), t[3]], LAYOUT)
    payloads = [absurd, negvar, bigstat, b"FXU1 not a payload", "text", honest(5), honest(6), honest(7)]
    losses = [0.1, 0.1, 0.1, 0.1, 0.1, float("nan"), "0.3", 0.2]
    s = screen_round([reply("A", range(8), payloads=payloads, losses=losses)], LAYOUT, "fp32")
    assert s.accepted_ids == [7] and s.train_loss == 0.2
    r = {c: why for (c, _), why in reasons(s).items()}
    assert "beyond the limit" in r[0] and "negative variance" in r[1] and "bn.running_mean" in r[2]
    assert "payload" in r[3] and "not bytes" in r[4] and "not a finite number" in r[5] and "not a finite number" in r[6]


def test_outliers_against_the_round_median():
    t = codecs.decode(honest(3), LAYOUT)
    big = codecs.encode_fp32([t[0] * 50, t[1] * 50, *t[2:]], LAYOUT)  # finite, within ENTRY_LIMIT, 50x the others
    odd = codecs.encode_fp32([*t[:2], t[2] + 1e6, t[3]], LAYOUT)  # statistics far from everyone's
    s = screen_round([reply("A", range(6), payloads=[honest(0), honest(1), honest(2), big, odd, honest(5)])], LAYOUT, "fp32")
    assert s.accepted_ids == [0, 1, 2, 5]
    r = {c: why for (c, _), why in reasons(s).items()}
    assert "median" in r[3] and "statistics" in r[4]
    # two updates give no median to speak of: only the absolute limits apply
    assert screen_round([reply("A", [0, 3], payloads=[honest(0), big])], LAYOUT, "fp32").accepted_ids == [0, 3]


def test_a_retry_cannot_count_a_client_twice():
    s = screen_round([reply("A", [2]), reply("B", [2])], LAYOUT, "fp32")
    assert s.accepted_ids == [2] and "duplicate" in s.rejected[0]["reason"]


# ---------------------------------------------------------------- fuzz: random replies never crash the screen

NODES = ["A", "B", "C"]
ids = st.one_of(st.integers(-3, 12), st.booleans(), st.none(), st.text(max_size=3), st.floats(allow_nan=True),
                st.integers(2**63, 2**70))


@st.composite
def payloads(draw):
    cid = draw(st.integers(0, 11))
    kind = draw(st.sampled_from(["honest", "truncated", "random", "absurd", "notbytes", "flipped"]))
    good = honest(cid)
    if kind == "honest":
        return good
    if kind == "truncated":
        return good[: draw(st.integers(0, len(good) - 1))]
    if kind == "random":
        return draw(st.binary(max_size=300))
    if kind == "absurd":
        t = codecs.decode(good, LAYOUT)
        return codecs.encode_fp32([np.full((4, 3), draw(st.sampled_from([3e38, -3e38, 1e4, ENTRY_LIMIT * 2]))), *t[1:]],
                                  LAYOUT)
    if kind == "flipped":
        i = draw(st.integers(0, len(good) - 1))
        return good[:i] + bytes([good[i] ^ draw(st.integers(1, 255))]) + good[i + 1 :]
    return draw(st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2)))


losses = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5), st.none(), st.text(max_size=3))


@st.composite
def node_replies(draw):
    clients = list(range(12))
    out = []
    for node in NODES:
        assigned = sorted(draw(st.sets(st.sampled_from(clients), max_size=4)))
        shape = draw(st.sampled_from(["honest", "lists", "norecord", "garbage", "error"]))
        if shape == "honest":
            out.append(reply(node, assigned))
        elif shape == "lists":
            n = draw(st.integers(0, 5))
            cids = draw(st.lists(st.one_of(st.sampled_from(clients), ids), min_size=n, max_size=n))
            ps = draw(st.lists(payloads(), min_size=max(0, n - 1), max_size=n + 1))
            ls = draw(st.lists(losses, min_size=max(0, n - 1), max_size=n + 1))
            out.append(NodeReply(node, tuple(assigned), {"cids": cids, "payloads": ps, "losses": ls}))
        elif shape == "norecord":
            out.append(NodeReply(node, tuple(assigned), None))
        elif shape == "garbage":
            out.append(NodeReply(node, tuple(assigned), draw(st.one_of(
                st.dictionaries(st.sampled_from(["cids", "payloads", "losses", "x"]), st.one_of(ids, st.binary())),
                st.binary(), st.integers(), st.lists(ids)))))
        else:
            out.append(NodeReply(node, tuple(assigned), error=draw(st.text(max_size=10))))
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(node_replies())
def test_fuzzed_replies_never_raise_and_every_assigned_client_is_accounted_for(replies):
    s = screen_round(replies, LAYOUT, "fp32")
    accepted = s.accepted_ids
    assert accepted == sorted(set(accepted))  # each client at most once
    assigned_to = {}
    for r in replies:
        for c in r.assigned:
            assigned_to.setdefault(c, set()).add(r.node)
    for a in s.accepted:
        assert a.node in assigned_to.get(a.client, set())  # only from a node the server sent that id
        assert math.isfinite(a.loss)
        assert all(np.all(np.isfinite(t)) for t in a.tensors)
        assert np.abs(a.tensors[0]).max() <= ENTRY_LIMIT and a.tensors[3].min() >= 0
    rejected_ids = {r["client"] for r in s.rejected}
    for c in assigned_to:
        assert c in accepted or c in rejected_ids  # nothing silently dropped
    for r in s.rejected:
        assert isinstance(r["reason"], str) and r["reason"]
