"""Build flow: fit checks before synthesis, PLL settings, and one real (small) iCEBreaker bitstream."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from board_helpers import small_export
from tool_paths import YOSYS

from fedxnor.boards.build import board_core, build_board, check_fit_specs, make_pll
from fedxnor.boards.platforms import BOARDS, ecp5_pll, get_board, ice40_pll
from fedxnor.boards.top import BoardTop
from fedxnor.contract.folding import Folding
from fedxnor.errors import FedxnorError


def test_ice40_pll_matches_icepll_and_stays_in_range():
    p = ice40_pll(12e6, 40e6)  # yowasp-icepll -i 12 -o 40: DIVR 0, DIVF 52, DIVQ 4, FILTER_RANGE 1, 39.750 MHz
    assert (p.divr, p.divf, p.divq, p.filter_range, p.fout_hz) == (0, 52, 4, 1, 39.75e6)
    for target in (16e6, 24e6, 36e6, 48.5e6, 80e6, 100e6):
        p = ice40_pll(12e6, target)
        fpfd = 12 / (p.divr + 1)
        assert 10 <= fpfd <= 133 and 533 <= fpfd * (p.divf + 1) <= 1066
        assert p.fout_hz <= target + 1 and p.fout_hz > 0.95 * target


def test_ecp5_pll_reaches_the_goal_clock():
    p = ecp5_pll(25e6, 120e6)  # yowasp-ecppll -i 25 -o 120: refclk div 5, feedback div 24
    assert (p.clki_div, p.clkfb_div, p.fout_hz) == (5, 24, 120e6)
    assert 400 <= p.fout_hz / 1e6 * p.clkop_div <= 800
    for target in (50e6, 97e6, 133e6):
        q = ecp5_pll(25e6, target)
        assert q.fout_hz <= target + 1 and q.fout_hz > 0.95 * target


def test_every_board_has_a_real_uart_divisor():
    from fedxnor.boards.uart import divisor_for

    for b in BOARDS.values():
        assert divisor_for(b.target_mhz * 1e6, b.baud) >= 4


def specs(model: str):
    from fedxnor.train.models import get_config

    return get_config(model).layer_specs()


def test_check_fit_specs_before_training():
    check_fit_specs(specs("mlp-small"), "icebreaker")
    check_fit_specs(specs("sfc"), "ulx3s-85f")
    with pytest.raises(FedxnorError) as e:
        check_fit_specs(specs("sfc"), "icebreaker")
    assert "block RAM" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(FedxnorError) as e:  # a manual folding far too wide: the message names one that fits
        check_fit_specs(specs("sfc"), "ulx3s-85f", [Folding(p, q) for p, q in zip([256, 256, 256, 10], [784, 256, 256, 256])])
    assert "LUT" in str(e.value) and "would fit" in str(e.value) and "\n" not in str(e.value)


def test_build_refuses_an_export_that_does_not_fit_before_synthesis(tmp_path):
    export = small_export(tmp_path, 3, [784, 512, 10], [(1, 16), (1, 16)], 8)  # 400 Kbit of weights
    with pytest.raises(FedxnorError) as e:
        build_board(export.directory, "icebreaker", tmp_path / "out", progress=False)
    assert "icebreaker" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "out" / "build").exists()


def test_real_icebreaker_build_of_a_small_export(tmp_path, monkeypatch):
    export = small_export(tmp_path, 21, [50, 16, 12, 10], [(4, 16), (4, 8), (2, 6)], 8)
    monkeypatch.chdir(tmp_path)  # a relative output directory, as users give it
    (tmp_path / "out.failed" / "try0").mkdir(parents=True)  # an earlier failure's logs: a success removes them
    rep = build_board(export.directory, "icebreaker", Path("out"), progress=False, seeds=[1, 2])
    assert (tmp_path / "out" / "icebreaker.bin").stat().st_size == 104090  # a whole UP5K configuration image
    assert rep["bitstream"] == str(Path("out") / "icebreaker.bin") and Path(rep["build_dir"]).is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export21", "out"]  # no temporary directory, no old logs
    # both seeds placed and routed; the report and the bitstream are the faster one's
    (first, *_) = rep["attempts"]
    assert [s["seed"] for s in first["seeds"]] == [1, 2]
    assert first["fmax_mhz"] == max(s["fmax_mhz"] for s in first["seeds"])
    assert json.loads((tmp_path / "out" / "report.json").read_text()) == rep
    assert rep["timing_met"] and rep["fmax_mhz"] >= rep["clock_mhz"] > 10
    u = rep["utilisation"]
    assert 0 < u["lut"]["used"] < u["lut"]["available"] == 5280 and u["ff"]["used"] > 0
    assert u["bram"]["available"] == 30 and u["spram"]["available"] == 4
    assert rep["inferences_per_s"] == pytest.approx(rep["clock_mhz"] * 1e6 / rep["cycles_per_inference"], rel=1e-3)
    assert 0 < rep["bram_bound_share"] <= 1
    assert rep["manifest_sha256"] == export.sha256
    # the checkout it was built from (this test runs in one); iCE40 builds move no registers into block RAM
    assert rep["source"]["commit"] == subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                                     text=True, cwd=Path(__file__).parent).stdout.strip()
    assert "ram_output_registers" not in rep


def test_ecp5_reset_leaves_its_flip_flop_only_through_a_global_buffer(tmp_path):
    """ULX3S top: the power-on reset's flip-flop drives nothing but a DCCA (a global line to the fabric), whose
    output resets the design: no fabric net carries the reset across the die (a 10 ns route on the sfc build)."""
    export = small_export(tmp_path, 5, [16, 8, 4], [(2, 8), (1, 4)])
    b = get_board("ulx3s-85f")
    pll = make_pll(b, 100e6)
    plan = b.make_platform().prepare(BoardTop(b, board_core(export, b, pll.fout_hz, b.baud), pll), name="top")
    (tmp_path / "top.il").write_text(plan.files["top.il"])
    subprocess.run([YOSYS, "-q", "-p", "read_rtlil top.il; hierarchy -top top; proc; flatten; opt_clean; write_json top.json"],
                   check=True, capture_output=True, text=True, cwd=tmp_path)
    cells = json.loads((tmp_path / "top.json").read_text())["modules"]["top"]["cells"].values()
    loads: dict[int, list[str]] = {}
    for c in cells:
        for port, bits in c["connections"].items():
            # (the DCCA is a black box to Yosys here: no port directions)
            if c.get("port_directions", {}).get(port, "input" if port == "CLKI" else None) == "input":
                for bit in bits:
                    loads.setdefault(bit, []).append(c["type"])
    (dcc,) = [c for c in cells if c["type"] == "DCCA"]
    (held,) = dcc["connections"]["CLKI"]
    (rst,) = dcc["connections"]["CLKO"]
    assert loads[held] == ["DCCA"]
    assert len(loads[rst]) > 20  # the whole design's reset logic
