"""How images, classes and hidden activations travel as stream beats: one geometry for the gateware
(hw/top.py), the testbench (sim/), the host link (boards/) and the tests.

image: the first layer's inputs, B bits each, input i in bits [i·B, i·B + B) of the whole image
(little-endian bit concatenation); beat j carries bits [j·in_width, (j + 1)·in_width) of that, zero
padded. The accelerator takes in_width = L·B for its first layer's L lanes (one word of the first layer per
beat: `BeatGeometry.of`); the host link carries any in_width the same way.
On the host link each beat is sent little-endian in ceil(in_width / 8) bytes, so a board only shifts
bytes, never bits.

class: the class index in the low class_width bits of a result payload.

debug: per image, dbg_beats beats of dbg_width bits; `dbg_fields[k]` says which neurons beat k carries:
(layer, first_neuron, count, bit_offset), neuron first_neuron + j of that hidden layer in bit
bit_offset + j. Today: one beat per hidden layer, all of its neurons.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from fedxnor.contract.bits import bits_for, ceil_div

Field = tuple[int, int, int, int]  # (layer, first neuron, count, bit offset)


@dataclass(frozen=True)
class BeatGeometry:
    fan_in: int  # N: inputs of the first layer
    input_bits: int  # B
    in_width: int  # bits per image beat (L·B for the accelerator)
    num_classes: int
    hidden_sizes: tuple[int, ...] = ()  # outputs of every hidden layer
    debug: bool = False  # a debug stream carries every hidden activation

    @classmethod
    def of(cls, specs, first_lanes: int, *, debug: bool = False) -> BeatGeometry:
        """The geometry of a network of layer specifications whose first layer has `first_lanes` lanes: a word of
        the first layer per beat, or, when it is a convolution, one pixel (its C channels) per beat."""
        first = specs[0]
        per_beat = first.in_c if first.kind == "conv" else first_lanes
        return cls(first.in_size, first.input_bits, per_beat * first.input_bits, specs[-1].fan_out,
                   tuple(s.out_size for s in specs[:-1]), debug)

    def for_link(self) -> BeatGeometry:
        """What the host link carries and IDENT describes: images in and classes out, no debug stream."""
        return replace(self, hidden_sizes=(), debug=False)

    # ------------------------------------------------------------ image stream

    @property
    def in_beats(self) -> int:
        return ceil_div(self.fan_in * self.input_bits, self.in_width)

    @property
    def image_width(self) -> int:
        return self.in_width * self.in_beats

    @property
    def beat_bytes(self) -> int:
        return ceil_div(self.in_width, 8)

    @property
    def image_bytes(self) -> int:
        return self.in_beats * self.beat_bytes

    def _bits(self, x: np.ndarray) -> np.ndarray:
        """Prepared images (n, N) of unsigned B-bit integers -> (n, in_beats, in_width) bits, zero padded."""
        x = np.asarray(x, np.int64)
        if x.ndim != 2 or x.shape[1] != self.fan_in:
            raise ValueError(f"images of shape {x.shape}: the model takes {self.fan_in} inputs each")
        n, b = x.shape[0], self.input_bits
        bits = ((x[:, :, None] >> np.arange(b)[None, None, :]) & 1).astype(np.uint8).reshape(n, self.fan_in * b)
        out = np.zeros((n, self.image_width), np.uint8)
        out[:, :bits.shape[1]] = bits
        return out.reshape(n, self.in_beats, self.in_width)

    def pack_images(self, x: np.ndarray) -> list[int]:
        """Prepared images (n, N) -> one image-wide integer each (beat j in bits [j·in_width, ...))."""
        bits = self._bits(x).reshape(len(x), -1)
        packed = np.packbits(bits, axis=1, bitorder="little")
        return [int.from_bytes(row.tobytes(), "little") for row in packed]

    def beats_of(self, image: int) -> list[int]:
        """An image-wide integer -> its in_beats beats."""
        mask = (1 << self.in_width) - 1
        return [(image >> (j * self.in_width)) & mask for j in range(self.in_beats)]

    def image_beats(self, x: np.ndarray) -> list[int]:
        """One prepared image (N,) -> its beats."""
        return self.beats_of(self.pack_images(np.asarray(x).reshape(1, -1))[0])

    def link_bytes(self, x: np.ndarray) -> bytes:
        """One prepared image (N,) -> the host link's CLASSIFY payload: each beat in beat_bytes bytes."""
        beats = self._bits(np.asarray(x).reshape(1, -1))[0]
        pad = self.beat_bytes * 8 - self.in_width
        if pad:
            beats = np.concatenate([beats, np.zeros((self.in_beats, pad), np.uint8)], axis=1)
        return np.packbits(beats.reshape(-1), bitorder="little").tobytes()

    # ------------------------------------------------------------ result stream

    @property
    def class_width(self) -> int:
        return bits_for(self.num_classes)

    def decode_class(self, payload: int) -> int:
        return payload & ((1 << self.class_width) - 1)

    # ------------------------------------------------------------ debug stream

    @property
    def has_debug(self) -> bool:
        return self.debug and bool(self.hidden_sizes)

    @property
    def dbg_width(self) -> int:
        return max(self.hidden_sizes) if self.has_debug else 0

    @property
    def dbg_beats(self) -> int:
        return len(self.hidden_sizes) if self.has_debug else 0

    @property
    def dbg_fields(self) -> tuple[tuple[Field, ...], ...]:
        return tuple(((layer, 0, m, 0),) for layer, m in enumerate(self.hidden_sizes)) if self.has_debug else ()

    def decode_debug(self, beats: list[int], fields=None) -> list[np.ndarray]:
        """Debug beats of one image -> activation bits per hidden layer."""
        acts = [np.zeros(m, np.uint8) for m in self.hidden_sizes]
        for beat, beat_fields in zip(beats, self.dbg_fields if fields is None else fields):
            for layer, first, count, offset in beat_fields:
                v = beat >> offset
                acts[layer][first:first + count] = [(v >> k) & 1 for k in range(count)]
        return acts
