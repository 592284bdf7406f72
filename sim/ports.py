"""What the testbench knows of a DUT: port names, and the stream layouts of fedxnor.contract.beats.

The adapter (fedxnor.sim.adapter) fills a SimPorts from hw's generator (or the stand-in's); the
wrapper (fedxnor.sim.wrapper) and the testbench (fedxnor.sim.tb) read only this. The payload layouts
(image beats, class, debug fields) are the one geometry the gateware and the host link use too:
`beats` (a BeatGeometry); its fields (in_width, in_beats, dbg_fields, ...) read through SimPorts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from fedxnor.contract.beats import BeatGeometry


@dataclass(frozen=True)
class SimPorts:
    dut_module: str
    clk: str
    rst: str
    rst_active_high: bool
    in_valid: str
    in_ready: str
    in_payload: str
    out_valid: str
    out_ready: str
    out_payload: str
    beats: BeatGeometry
    dbg_valid: str | None = None
    dbg_ready: str | None = None
    dbg_payload: str | None = None
    extra_inputs: tuple[tuple[str, int, int], ...] = ()  # (name, width, constant value) tied off by the wrapper
    extra_outputs: tuple[tuple[str, int], ...] = ()  # (name, width) left unconnected

    def __getattr__(self, name: str):
        if name.startswith("__") or name == "beats":
            raise AttributeError(name)
        return getattr(self.beats, name)

    @property
    def out_width(self) -> int:
        return self.beats.class_width

    @property
    def has_debug(self) -> bool:
        return self.dbg_valid is not None and self.beats.dbg_beats > 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SimPorts:
        d = dict(d)
        g = dict(d["beats"])
        g["hidden_sizes"] = tuple(g["hidden_sizes"])
        g["hidden_pieces"] = tuple(g.get("hidden_pieces", ()))
        d["beats"] = BeatGeometry(**g)
        d["extra_inputs"] = tuple(tuple(e) for e in d.get("extra_inputs", ()))
        d["extra_outputs"] = tuple(tuple(e) for e in d.get("extra_outputs", ()))
        return cls(**d)

    def decode_debug_word(self, word: int) -> list[np.ndarray]:
        """One wide word of an image's debug beats (beat j in bits [j·dbg_width, ...)) -> bits per hidden layer."""
        mask = (1 << self.dbg_width) - 1
        return self.decode_debug([(word >> (j * self.dbg_width)) & mask for j in range(self.dbg_beats)])
