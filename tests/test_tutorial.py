"""docs/tutorial.md stays true: its scripts run and its commands are accepted as written."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "docs" / "tutorial.md"


def run_script(*args: str) -> str:
    r = subprocess.run([sys.executable, str(ROOT / "docs" / "tutorial" / "one_layer.py"), *args],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("pe,simd", [("1", "1"), ("2", "4"), ("8", "16")])
def test_part1_foldings_are_bit_exact_and_change_cycles(pe, simd):
    out = run_script("--pe", pe, "--simd", simd)
    assert out.strip().endswith("bit-exact")


def test_folding_changes_cycles():
    cycles = [int(re.search(r"(\d+) cycles", run_script("--pe", p, "--simd", s)).group(1))
              for p, s in [("1", "1"), ("8", "16")]]
    assert cycles[0] > 10 * cycles[1]


def test_part2_writes_a_waveform(tmp_path):
    vcd = tmp_path / "layer.vcd"
    run_script("--pe", "4", "--simd", "4", "--vcd", str(vcd))
    text = vcd.read_text()
    for name in ("image__valid", "result__valid", "chunk", "pipe_l"):
        assert name in text, name
    assert vcd.with_suffix(".gtkw").is_file()


def test_part3_export_commands_as_written(small_checkpoint, tmp_path):
    """The tutorial's `fedxnor export` lines work on an mlp-small checkpoint (the demo's model)."""
    lines = [ln.strip() for ln in TUTORIAL.read_text().splitlines() if ln.strip().startswith(".venv/bin/fedxnor export")]
    assert len(lines) == 2
    for i, line in enumerate(lines):
        argv = shlex.split(line)[1:]  # export CKPT --out DIR ...
        argv[1] = str(small_checkpoint)
        argv[argv.index("--out") + 1] = str(tmp_path / f"f{i}")
        r = subprocess.run([sys.executable, "-m", "fedxnor", *argv, "--check-images", "100"], capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert (tmp_path / f"f{i}" / "manifest.json").is_file()


def brevitas_commands() -> list[str]:
    """The shell lines of section 4 ("Bring a Brevitas model to the iCEBreaker"), in order, as written."""
    text = TUTORIAL.read_text()
    section = text[text.index("## 4. Bring a Brevitas model"):]
    section = section.split("\n## ")[0]  # up to the next section
    return [ln.strip() for ln in section.splitlines() if ln.startswith("    .venv/bin/")]


def test_part4_lists_the_whole_flow():
    """The bench (bench/bench_qonnx_board.py --tutorial) and the slow test below run these lines: keep them the flow."""
    steps = [shlex.split(line)[1] for line in brevitas_commands()]
    assert steps == ["docs/tutorial/brevitas_mlp.py", "import", "fold", "verify", "build"]


@pytest.mark.slow
def test_part4_brevitas_commands_as_written(tmp_path):
    """Section 4 as written, with /tmp/brevitas moved to tmp_path and a tiny budget: a Brevitas MLP trained on 500
    images, imported (qonnx's executor on all 10,000 test images), folded for the UP5K and verified on Verilator.
    The build is left to bench/bench_qonnx_board.py --tutorial (minutes)."""
    pytest.importorskip("brevitas")
    pytest.importorskip("qonnx")
    budget = {"brevitas_mlp.py": ["--epochs", "1", "--train-images", "500", "--hidden", "32", "32"],
              "verify": [], "import": [], "fold": []}
    printed = {}
    for line in brevitas_commands()[:-1]:  # every line but the build
        argv = shlex.split(line.replace("/tmp/brevitas", str(tmp_path)))
        step = Path(argv[1]).name
        if step == "verify":
            argv[argv.index("--images") + 1] = "20"
        exe = [sys.executable] if argv[0].endswith("/python") else [sys.executable, "-m", "fedxnor"]
        r = subprocess.run([*exe, *argv[1:], *budget[step]], capture_output=True, text=True, timeout=900, cwd=ROOT)
        assert r.returncode == 0, f"{line}\n{r.stderr[-3000:]}"
        printed[step] = r.stdout
    assert "equals qonnx's executor on 10000 images" in printed["import"]
    assert (tmp_path / "up5k" / "manifest.json").is_file()
    assert re.search(r"20 images on verilator: 0 mismatches", printed["verify"]), printed["verify"]


def test_part5_conv_windows_are_bit_exact_and_written_to_a_waveform(tmp_path):
    vcd = tmp_path / "conv.vcd"
    for args in (["--vcd", str(vcd)], ["--pad", "0", "--stride", "2"]):
        r = subprocess.run([sys.executable, str(ROOT / "docs" / "tutorial" / "conv_window.py"), *args],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip().endswith("bit-exact")
    assert "output pixel (1, 1)" in r.stdout and "output pixel (2, 0)" not in r.stdout  # stride 2: 2 x 2 windows
    text = vcd.read_text()
    for name in ("image__valid", "debug__payload", "map0"):
        assert name in text, name
