"""What the testbench knows of a DUT: port names, stream widths, and how payloads are laid out.

The adapter (fedxnor.sim.adapter) fills a SimPorts from hw's generator; the
wrapper (fedxnor.sim.wrapper) and the testbench (fedxnor.sim.tb) read only this.

Payload layouts (all little-endian bit concatenations):

* image: the first layer's inputs, B bits each, input i in bits [i*B, i*B + B) of the
  whole image; beat j carries bits [j*in_width, (j+1)*in_width) of that (zero padded).
* class: the class index in the low bits of the output payload.
* debug: dbg_beats beats per image; `dbg_fields` says, per beat, which layer it carries
  and which neurons: (layer, first_neuron, count, bit_offset), neuron first_neuron + k
  in bit bit_offset + k of the beat's payload.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SimPorts:
    dut_module: str
    clk: str
    rst: str
    rst_active_high: bool
    in_valid: str
    in_ready: str
    in_payload: str
    in_width: int
    in_beats: int  # beats per image
    input_bits: int  # B
    fan_in: int  # N (inputs per image)
    out_valid: str
    out_ready: str
    out_payload: str
    out_width: int
    class_width: int  # bits of the class index in the output payload (its low bits)
    hidden_sizes: tuple[int, ...]  # fan-out of every hidden layer
    dbg_valid: str | None = None
    dbg_ready: str | None = None
    dbg_payload: str | None = None
    dbg_width: int = 0
    dbg_beats: int = 0  # beats per image
    dbg_fields: tuple[tuple[tuple[int, int, int, int], ...], ...] = field(default=())  # per beat: fields
    extra_inputs: tuple[tuple[str, int, int], ...] = ()  # (name, width, constant value) tied off by the wrapper
    extra_outputs: tuple[tuple[str, int], ...] = ()  # (name, width) left unconnected

    @property
    def has_debug(self) -> bool:
        return self.dbg_valid is not None and self.dbg_beats > 0

    @property
    def image_width(self) -> int:
        return self.in_width * self.in_beats

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SimPorts:
        d = dict(d)
        d["hidden_sizes"] = tuple(d["hidden_sizes"])
        d["dbg_fields"] = tuple(tuple(tuple(f) for f in beat) for beat in d.get("dbg_fields", ()))
        d["extra_inputs"] = tuple(tuple(e) for e in d.get("extra_inputs", ()))
        d["extra_outputs"] = tuple(tuple(e) for e in d.get("extra_outputs", ()))
        return cls(**d)

    # ------------------------------------------------------------ payloads

    def pack_images(self, x: np.ndarray) -> list[int]:
        """Prepared integer inputs (images, N) -> one image-wide integer per image."""
        x = np.asarray(x, np.int64)
        n, nin = x.shape
        b = self.input_bits
        bits = ((x[:, :, None] >> np.arange(b)[None, None, :]) & 1).astype(np.uint8).reshape(n, nin * b)
        total = self.image_width
        if bits.shape[1] > total:
            raise ValueError(f"image of {bits.shape[1]} bits does not fit {self.in_beats} beats of {self.in_width}")
        padded = np.zeros((n, -(-total // 8) * 8), np.uint8)
        padded[:, : bits.shape[1]] = bits
        packed = np.packbits(padded, axis=1, bitorder="little")
        return [int.from_bytes(row.tobytes(), "little") for row in packed]

    def beats_of(self, image: int) -> list[int]:
        mask = (1 << self.in_width) - 1
        return [(image >> (j * self.in_width)) & mask for j in range(self.in_beats)]

    def decode_class(self, payload: int) -> int:
        return payload & ((1 << self.class_width) - 1)

    def decode_debug(self, beats: list[int]) -> list[np.ndarray]:
        """Debug beats of one image -> activation bits per hidden layer."""
        acts = [np.zeros(m, np.uint8) for m in self.hidden_sizes]
        for beat, fields in zip(beats, self.dbg_fields):
            for layer, first, count, offset in fields:
                v = beat >> offset
                bits = np.array([(v >> k) & 1 for k in range(count)], np.uint8)
                acts[layer][first : first + count] = bits
        return acts

    def decode_debug_word(self, word: int) -> list[np.ndarray]:
        mask = (1 << self.dbg_width) - 1
        return self.decode_debug([(word >> (j * self.dbg_width)) & mask for j in range(self.dbg_beats)])
