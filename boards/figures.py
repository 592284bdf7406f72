"""The figures a build report adds to nextpnr's: the accelerator's rate, its share of the block-RAM bound, and
what `fedxnor board load` sends for a run-time weight store."""

from __future__ import annotations

import struct
from typing import Any

from fedxnor.boards import frames as fr
from fedxnor.boards.driver import LOAD_CHUNK
from fedxnor.boards.platforms import Board
from fedxnor.contract.cycles import cycles_per_inference
from fedxnor.hw.plan.plan import as_built, specs_of, weight_bit_ops
from fedxnor.hw.weightstore import writable_images


def performance(export, board: Board, clock_hz: float) -> dict[str, Any]:
    """Cycles per inference (the accelerator's initiation interval), inferences/s at clock_hz, and the share of
    the block-RAM bound reached: the bound is every weight bit read (once per input bit plane) at the full
    read width of every block RAM of the device, each cycle."""
    read_regs = as_built(board.resources, [info.spec for info in export.layers]).read_regs  # conv: none yet
    cycles = int(cycles_per_inference(export.layers, read_regs=read_regs))
    ops = int(weight_bit_ops(specs_of(export)))
    bandwidth = board.resources.bram_bandwidth_bits
    bound = -(-ops // bandwidth)
    return {"cycles_per_inference": cycles, "inferences_per_s": round(clock_hz / cycles, 1),
            "bram_bound_cycles": bound, "bram_bound_share": round(bound / cycles, 4),
            "bram_bandwidth_fraction": round(bound / cycles, 4),  # the same share, under the name flow_report reads
            "weight_bits_read": ops, "bram_bits_per_cycle": bandwidth}


def load_figures(export, weight_store: dict[int, str], baud: int, chunk: int | None = None) -> dict[str, Any]:
    """What `fedxnor board load` sends for a weight store: files, bytes, frames, and the seconds the
    request and reply bytes take on the wire at `baud` (10 bits a byte; stop and wait, so they add up)."""
    chunk = chunk or LOAD_CHUNK
    imgs = writable_images(export, weight_store)
    total = sum(w.nbytes for w in imgs)
    frames = sum(-(-w.nbytes // chunk) for w in imgs)
    reply = 6 + struct.calcsize(fr.LOAD_REPLY_FORMAT) + 2 * len(imgs)
    wire = total + frames * (6 + fr.LOAD_HEADER_LEN + reply)
    return {"files": len(imgs), "bytes": total, "frames": frames, "chunk": chunk, "wire_bytes": wire,
            "seconds_at_baud": round(wire * 10 / baud, 2)}
