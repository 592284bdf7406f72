"""cocotb tests of each board's top through its UART pins: a UART model on uart_rx/uart_tx, the real
accelerator (fedxnor.hw.top.NetworkTop) behind the host link, every class compared with the reference.

Each board's design is simulated as its bitstream has it minus the PLL and pad buffers (its LinkedCore
with the board's clock in IDENT), with a 4-cycle UART bit so that Icarus gets through whole images.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from board_helpers import SIM_DIVISOR, SIM_TIMEOUT, corrupt, error_code, one_reply, sim_core, small_export

from fedxnor.boards import frames as fr
from fedxnor.boards.platforms import get_board
from fedxnor.boards.simlink import SimLink, sim_verilog
from fedxnor.export.reference import Reference

# per board: a different network shape and image geometry (in_width 128, 13 (not a byte multiple), 320)
CASES = {
    "icebreaker": dict(seed=21, sizes=[50, 16, 12, 10], folds=[(4, 16), (4, 8), (2, 6)], input_bits=8),
    "ice40-hx8k": dict(seed=22, sizes=[61, 20, 10], folds=[(5, 13), (2, 10)], input_bits=1),
    "ulx3s-85f": dict(seed=23, sizes=[40, 24, 16, 7], folds=[(8, 40), (4, 12), (7, 16)], input_bits=8),
}


def classify_req(geom, x):
    return {"bytes": fr.request(fr.CMD_CLASSIFY, geom.link_bytes(x))}


def check_classes(replies, ref_classes, cycles_out=None):
    for rb, want in zip(replies, ref_classes):
        payload = one_reply(rb, fr.CMD_CLASSIFY | fr.REPLY_OK)
        cls, cyc = struct.unpack(fr.CLASSIFY_REPLY_FORMAT, payload)
        assert cls == want
        if cycles_out is not None:
            cycles_out.append(cyc)


@pytest.mark.parametrize("board", list(CASES))
def test_board_serves_classifies_and_recovers(tmp_path, board):
    case = CASES[board]
    export = small_export(tmp_path, case["seed"], case["sizes"], case["folds"], case["input_bits"])
    core = sim_core(export, board)
    geom = core.geometry
    link = SimLink(sim_verilog(core), tmp_path / "sim", SIM_DIVISOR)
    rng = np.random.default_rng(case["seed"])
    x = rng.integers(0, 1 << case["input_bits"], (8, export.layers[0].fan_in))
    x[0] = 0
    x[1] = (1 << case["input_bits"]) - 1
    ref = Reference(export).run(x).classes
    good = fr.request(fr.CMD_CLASSIFY, geom.link_bytes(x[3]))
    script = [
        {"bytes": fr.request(fr.CMD_IDENT)},                          # 0
        *[classify_req(geom, v) for v in x[:3]],                      # 1-3
        {"bytes": corrupt(good, 4 + geom.image_bytes // 2, 3)},       # 4 payload bit flipped
        classify_req(geom, x[3]),                                     # 5
        {"bytes": corrupt(good, len(good) - 1, 0)},                   # 6 CRC byte flipped
        {"bytes": fr.request(fr.CMD_CLASSIFY, b"\x01\x02\x03")},      # 7 wrong length
        {"bytes": fr.request(0x42)},                                  # 8 unknown command
        {"bytes": good[:9], "gap": 2 * SIM_TIMEOUT},                  # 9 truncated: the line goes quiet
        {"bytes": b"\x00\x17\x5a" + fr.request(fr.CMD_CLASSIFY, geom.link_bytes(x[4]))},  # 10 junk before the sync byte
        *[classify_req(geom, v) for v in x[5:8]],                     # 11-13
        {"bytes": fr.request(fr.CMD_STATS)},                          # 14
    ]
    out = link.run(script)
    r = out["replies"]
    assert len(r) == len(script) and out["rx_errors"] == 0

    ident = fr.Ident.parse(one_reply(r[0], fr.CMD_IDENT | fr.REPLY_OK))
    assert ident.sha256 == export.sha256
    assert ident.geometry == geom and ident.clock_hz == int(get_board(board).target_mhz * 1e6) and ident.ready

    cycles: list[int] = []
    check_classes(r[1:4], ref[:3], cycles)
    assert error_code(r[4]) == fr.ERR_CRC
    check_classes([r[5]], ref[3:4])
    assert error_code(r[6]) == fr.ERR_CRC
    assert error_code(r[7]) == fr.ERR_LENGTH
    assert error_code(r[8]) == fr.ERR_COMMAND
    assert error_code(r[9]) == fr.ERR_TIMEOUT
    check_classes([r[10]], ref[4:5])
    check_classes(r[11:14], ref[5:8])
    busy, images, errors, _ = struct.unpack(fr.STATS_FORMAT, one_reply(r[14], fr.CMD_STATS | fr.REPLY_OK))
    assert images == 8 and errors == 5
    assert busy > 0 and cycles == sorted(cycles) and cycles[0] > 0  # the core's busy counter grows per image


@pytest.fixture(scope="module")
def trained_board(tmp_path_factory, small_checkpoint):
    from fedxnor.export.manifest import load_export
    from fedxnor.train.to_export import export_checkpoint

    out = tmp_path_factory.mktemp("board_mlp_small") / "export"
    export_checkpoint(small_checkpoint, out, pe=[16, 8, 2], simd=[32, 16, 16], check_images=200)
    return load_export(out)


def test_icebreaker_trained_model_on_test_images(tmp_path, trained_board, fashion_test):
    """mlp-small trained on Fashion-MNIST, real test images (784 8-bit pixels, 800-byte frames)."""
    export = trained_board
    core = sim_core(export, "icebreaker")
    link = SimLink(sim_verilog(core), tmp_path / "sim", SIM_DIVISOR)
    ref = Reference(export)
    x = ref.prepare(fashion_test.images[:3])
    want = ref.run(x).classes
    good = fr.request(fr.CMD_CLASSIFY, core.geometry.link_bytes(x[2]))
    script = [classify_req(core.geometry, v) for v in x[:2]] + [{"bytes": corrupt(good, 300, 5)},
                                                                 classify_req(core.geometry, x[2])]
    r = link.run(script)["replies"]
    check_classes(r[:2], want[:2])
    assert error_code(r[2]) == fr.ERR_CRC
    check_classes(r[3:], want[2:])


def test_driver_over_a_pty_against_the_simulated_board(tmp_path, capsys):
    """`fedxnor board classify` and the host driver (pyserial on a pseudo-terminal, as on /dev/ttyUSB1)
    against the board's RTL."""
    import json

    from fxnets import random_network

    from fedxnor.app.cli import main
    from fedxnor.boards.driver import BoardLink
    from fedxnor.export.manifest import Folding, load_export, write_export

    case = CASES["icebreaker"]
    rng = np.random.default_rng(case["seed"])
    net = random_network(rng, case["sizes"])
    x = rng.integers(0, 256, (4, case["sizes"][0])).astype(np.uint8)
    labels = net.run(x.astype(np.int64))[2].astype(np.uint8)  # the reference classes, as labels
    export = load_export(write_export(net, tmp_path / "export", [Folding(p, s) for p, s in case["folds"]],
                                      extra_files={"test_inputs.u8": x.tobytes(), "test_labels.u8": labels.tobytes()}))
    link = SimLink(sim_verilog(sim_core(export, "icebreaker")), tmp_path / "sim", SIM_DIVISOR)
    with link.serve() as port:
        assert Path(port).exists()
        code = main(["board", "classify", "--port", port, "--images", "4", "--export", str(export.directory),
                     "--timeout", "30", "--json"])
        res = json.loads(capsys.readouterr().out)
        with BoardLink(port, timeout=30) as host:
            geom = host.ident().geometry
            bad = host.transact(0, raw=corrupt(fr.request(fr.CMD_CLASSIFY, geom.link_bytes(x[0])), 6))
            stats = host.stats()
    assert code == 0
    assert res["images"] == 4 and res["mismatches"] == 0 and res["accuracy"] == 1.0
    assert res["model_sha256"] == export.sha256 and res["cycles_per_image"] > 0
    assert bad.error == fr.ERR_CRC
    assert stats["images"] == 4 and stats["errors"] == 1
