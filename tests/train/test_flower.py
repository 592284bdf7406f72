"""Flower deployment engine on loopback: a real SuperLink, two SuperNodes and `flwr run`, two rounds,
and the same global model, bit for bit, as the in-process run with the same seed."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fedxnor.train.federated import FederatedConfig, train_federated
from fedxnor.train.flower_app import write_app

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.skipif(not (BIN / "flower-superlink").exists(), reason="Flower's executables not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on port {port}")


def stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM each process group (SuperNodes start helper processes), then SIGKILL what is left."""
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()


@pytest.mark.parametrize("model", ["mlp-small", pytest.param("cnv-small", marks=pytest.mark.slow)])
def test_flower_deployment_equals_in_process(tmp_path, model):
    cfg = FederatedConfig(algo="efsign", model=model, clients=4, per_round=3, rounds=2, train_limit=3000,
                          test_limit=500).resolved()
    home = tmp_path / "flwr-home"
    home.mkdir()
    link = free_port()
    (home / "config.toml").write_text(f'[superlink]\ndefault = "local-test"\n\n[superlink.local-test]\n'
                                      f'address = "127.0.0.1:{link}"\ninsecure = true\n')
    env = dict(os.environ, FLWR_HOME=str(home), PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    logs = tmp_path / "logs"
    logs.mkdir()
    procs: list[subprocess.Popen] = []

    def start(name: str, args: list[str]) -> None:
        out = open(logs / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
        procs.append(subprocess.Popen([str(BIN / args[0]), *args[1:]], stdout=out, stderr=subprocess.STDOUT, env=env,
                                      cwd=tmp_path, start_new_session=True))

    try:
        start("superlink", ["flower-superlink", "--insecure", "--isolation", "subprocess",
                            "--disable-runtime-dependency-installation", "--host", "127.0.0.1", "--port", str(link)])
        wait_port(link, 60)
        for i in range(2):
            start(f"supernode{i}", ["flower-supernode", "--insecure", "--superlink", f"127.0.0.1:{link}",
                                    "--isolation", "subprocess", "--port", str(free_port())])
        app = write_app(tmp_path / "app", cfg, tmp_path / "flower-run", min_nodes=2)
        r = subprocess.run([str(BIN / "flwr"), "run", str(app), "local-test", "--stream"], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=150)
        ckpt = tmp_path / "flower-run" / "checkpoint.pt"
        if r.returncode != 0 or not ckpt.is_file():
            tails = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(logs.iterdir()))
            pytest.fail(f"flwr run failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}\n{tails}")
    finally:
        stop(procs)
    assert "2 SuperNodes" in r.stdout + r.stderr
    inproc = train_federated(cfg, tmp_path / "in-process", progress=False)
    a = torch.load(ckpt, weights_only=True)
    b = torch.load(inproc, weights_only=True)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert a["meta"]["uplink_bytes_total"] == b["meta"]["uplink_bytes_total"]
    assert a["meta"]["test_accuracy"] == b["meta"]["test_accuracy"]
    shutil.rmtree(home, ignore_errors=True)


def test_flower_app_command_and_run_config(tmp_path, capsys):
    import tomllib

    from fedxnor.app.cli import main
    from fedxnor.train.flower_app import config_from_run

    assert main(["flower-app", "--out", str(tmp_path / "app"), "--algo", "fedbnn", "--model", "mlp-small",
                 "--partition", "cls3", "--rounds", "7", "--min-nodes", "3"]) == 0
    doc = tomllib.loads((tmp_path / "app" / "pyproject.toml").read_text())
    assert doc["tool"]["flwr"]["app"]["components"]["serverapp"].endswith(":server_app")
    run_cfg = doc["tool"]["flwr"]["app"]["config"]
    cfg = config_from_run(run_cfg)
    assert (cfg.algo, cfg.model, cfg.partition, cfg.rounds, run_cfg["min-nodes"]) == ("fedbnn", "mlp-small", "cls3", 7, 3)
    assert main(["flower-app", "--out", str(tmp_path / "x"), "--algo", "central"]) == 2
    assert "federated --algo" in capsys.readouterr().err


def test_flower_app_server_settings_checked_before_writing(tmp_path):
    import tomllib

    from cli_helpers import assert_refused, run_cli

    base = ["flower-app", "--algo", "fedavg", "--model", "mlp-small"]
    for bad in (["--min-live-nodes", "0"], ["--round-timeout", "nan"], ["--round-timeout", "-5"], ["--min-nodes", "0"]):
        assert_refused(run_cli([*base, "--out", str(tmp_path / "bad"), *bad]), nothing_in=tmp_path)
    assert run_cli([*base, "--out", str(tmp_path / "ok"), "--min-live-nodes", "2", "--round-timeout", "90"]).code == 0
    run_cfg = tomllib.loads((tmp_path / "ok" / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    assert (run_cfg["min-live-nodes"], run_cfg["round-timeout-s"], run_cfg["wait-nodes-s"]) == (2, 90.0, 120.0)
