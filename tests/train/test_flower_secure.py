"""The documented deployment, for real on loopback: a SuperLink over TLS with SuperNode authentication
(flwr 1.42: --enable-supernode-auth + `flwr supernode register`), SuperNodes with registered keys.

- a SuperNode without a key, and one whose key was never registered, are refused (they exit, never listed online);
- a registered SuperNode that lies about its client ids (fault injection: node config fedxnor-fault="lie-ids")
  gets exactly those updates rejected, with reasons in metrics.json, while the honest node's updates count;
- (slow) a SuperNode SIGKILLed after round 1 is recorded in node_failures, its clients go to the live nodes,
  and the run completes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_flower import free_port, stop, wait_port

from fedxnor.train.federated import FederatedConfig
from fedxnor.train.flower_app import write_app
from fedxnor.train.flower_certs import make_node_key, make_tls

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.skipif(not (BIN / "flower-superlink").exists(), reason="Flower's executables not installed")


class Deployment:
    """SuperLink + SuperNodes as process groups, logs in tmp/logs, all stopped by close()."""

    def __init__(self, tmp: Path):
        self.tmp, self.procs, self.named = tmp, [], {}
        self.logs = tmp / "logs"
        self.logs.mkdir()
        self.certs = make_tls(tmp / "certs", ["127.0.0.1"])
        self.port = free_port()
        home = tmp / "flwr-home"
        home.mkdir()
        (home / "config.toml").write_text(f'[superlink]\ndefault = "secure"\n\n[superlink.secure]\n'
                                          f'address = "127.0.0.1:{self.port}"\n'
                                          f'root-certificates = "{self.certs["ca.crt"]}"\n')
        self.env = dict(os.environ, FLWR_HOME=str(home), PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")

    def start(self, name: str, args: list[str]) -> subprocess.Popen:
        out = open(self.logs / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
        p = subprocess.Popen([str(BIN / args[0]), *args[1:]], stdout=out, stderr=subprocess.STDOUT, env=self.env,
                             cwd=self.tmp, start_new_session=True)
        self.procs.append(p)
        self.named[name] = p
        return p

    def superlink(self) -> None:
        c = self.certs
        self.start("superlink", ["flower-superlink", "--ssl-certfile", str(c["server.crt"]), "--ssl-keyfile",
                                 str(c["server.key"]), "--ssl-ca-certfile", str(c["ca.crt"]), "--enable-supernode-auth",
                                 "--isolation", "subprocess", "--disable-runtime-dependency-installation",
                                 "--host", "127.0.0.1", "--port", str(self.port)])
        wait_port(self.port, 60)

    def flwr(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "flwr"), *args], env=self.env, cwd=self.tmp, capture_output=True, text=True,
                              timeout=timeout)

    def supernode(self, name: str, key: Path | None, fault: str = "") -> subprocess.Popen:
        args = ["flower-supernode", "--root-certificates", str(self.certs["ca.crt"]), "--superlink",
                f"127.0.0.1:{self.port}", "--isolation", "subprocess", "--port", str(free_port())]
        if key is not None:
            args += ["--auth-supernode-private-key", str(key)]
        if fault:
            args += ["--node-config", f'fedxnor-fault="{fault}"']
        else:
            args += ["--max-retries", "3", "--max-wait-time", "20"]
        return self.start(name, args)

    def tails(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-2500:]}" for p in sorted(self.logs.iterdir()))

    def close(self) -> None:
        stop(self.procs)


def online_nodes(dep: Deployment) -> list[str]:
    r = dep.flwr("supernode", "list", "secure", "--format", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    return [str(n.get("node-id", n.get("node_id"))) for n in doc.get("nodes", []) if n.get("status") == "online"]


def run_secure(tmp_path: Path, kill: bool) -> tuple[dict, str, list[str]]:
    dep = Deployment(tmp_path)
    names = ["honest", "liar", *(["victim"] if kill else [])]
    keys = {n: make_node_key(tmp_path / "keys", n) for n in [*names, "rogue"]}
    try:
        dep.superlink()
        for n in names:  # register every node's public key except the rogue's
            r = dep.flwr("supernode", "register", str(keys[n][1]), "secure")
            assert r.returncode == 0, r.stdout + r.stderr + dep.tails()
        dep.supernode("honest", keys["honest"][0])
        dep.supernode("liar", keys["liar"][0], fault="lie-ids")
        if kill:
            dep.supernode("victim", keys["victim"][0])
        rogue = dep.supernode("rogue", keys["rogue"][0])
        anonymous = dep.supernode("anonymous", None)
        cfg = FederatedConfig(algo="fedavg", model="mlp-small", clients=6, per_round=6, rounds=3 if kill else 2,
                              train_limit=2000, test_limit=300).resolved()
        out = tmp_path / "run"
        app = write_app(tmp_path / "app", cfg, out, min_nodes=len(names), min_live_nodes=2,
                        round_timeout_s=30 if kill else 120, wait_nodes_s=90)
        run = subprocess.Popen([str(BIN / "flwr"), "run", str(app), "secure", "--stream"], env=dep.env, cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        dep.procs.append(run)
        if kill:  # SIGKILL the victim once round 1 is saved
            deadline = time.monotonic() + 150
            while time.monotonic() < deadline and run.poll() is None and not (out / "round_state.pt").is_file():
                time.sleep(0.2)
            assert (out / "round_state.pt").is_file(), dep.tails()
            assert torch.load(out / "round_state.pt", weights_only=True)["round"] == 1
            os.killpg(dep.named["victim"].pid, signal.SIGKILL)
        try:
            stdout, _ = run.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            pytest.fail("flwr run did not finish in 300 s\n" + dep.tails())
        if run.returncode != 0 or not (out / "checkpoint.pt").is_file():
            pytest.fail(f"flwr run failed ({run.returncode}):\n{stdout[-3000:]}\n{dep.tails()}")
        # refused: the keyless and the unregistered SuperNode gave up with an error; the SuperLink said 412
        for p in (rogue, anonymous):
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                pytest.fail("an unauthenticated SuperNode is still running\n" + dep.tails())
            assert p.returncode != 0, dep.tails()
        assert "412" in (dep.logs / "superlink.log").read_text()
        online = online_nodes(dep)
        metrics = json.loads((out / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in metrics"))
        return metrics, stdout, online
    finally:
        dep.close()


def check_liar(history: list[dict]) -> str:
    """Every round: the liar's stolen id and duplicate are rejected, and all rejections come from one node (the liar)."""
    liar_nodes = set()
    for row in history:
        why = [r["reason"] for r in row["rejected"]]
        assert any("was not assigned to node" in w for w in why) and any("duplicate update" in w for w in why), row
        liar_nodes |= {r["node"] for r in row["rejected"]}
        assert row["train_loss"] is not None and row["accepted"]
    assert len(liar_nodes) == 1
    return liar_nodes.pop()


def test_tls_auth_refuses_strangers_and_rejects_a_lying_node(tmp_path):
    metrics, stdout, online = run_secure(tmp_path, kill=False)
    assert "2 SuperNodes" in stdout and len(online) == 2  # the two registered nodes, not the rogue or the anonymous one
    history = metrics["history"]
    assert [h["round"] for h in history] == [1, 2]
    assert check_liar(history) in online
    for row in history:  # with all 6 clients sampled, the honest node's 3 updates count, plus the liar's first id
        assert len(row["accepted"]) == 4 and row["node_failures"] == []


@pytest.mark.slow
def test_tls_auth_node_killed_mid_run_is_recorded_and_run_completes(tmp_path):
    metrics, stdout, online = run_secure(tmp_path, kill=True)
    assert "3 SuperNodes" in stdout and 2 <= len(online) <= 3  # the SuperLink marks the victim offline after 60 s
    history = metrics["history"]
    assert [h["round"] for h in history] == [1, 2, 3]
    liar = check_liar(history)
    failures = [f for h in history for f in h["node_failures"]]
    assert history[0]["node_failures"] == [] and failures and all(f["node"] != liar for f in failures)
    assert history[1]["node_failures"] and "no reply" in history[1]["node_failures"][0]["reason"]
    # the dead node's clients were trained by the live nodes: nobody's update is missing apart from the liar's lies
    for row in history[1:]:
        assert not any("failed" in r["reason"] or "no live SuperNode" in r["reason"] for r in row["rejected"])
