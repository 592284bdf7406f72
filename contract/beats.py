"""How images, classes and hidden activations travel as stream beats: one geometry for the gateware
(hw/top.py), the testbench (sim/), the host link (boards/) and the tests.

image: the first layer's inputs, B bits each (unsigned, or B-bit two's complement for a signed first
layer: −1 is B ones), input i in bits [i·B, i·B + B) of the whole image (little-endian bit concatenation);
beat j carries bits [j·in_width, (j + 1)·in_width) of that, zero padded. The accelerator takes
in_width = L·B for its first layer's L lanes (one word of the first layer per beat: `BeatGeometry.of`);
the host link carries any in_width the same way.
On the host link each beat is sent little-endian in ceil(in_width / 8) bytes, so a board only shifts
bytes, never bits.

class: the class index in the low class_width bits of a result payload.

debug: every hidden layer's output bits, per image. A fully connected layer sends one beat (all of its
neurons); a feature-map layer (conv, max-pool) one beat per output pixel (its C channels, raster order: pixel
p carries neurons [p·C, p·C + C) of the NHWC map). `hidden_pieces[l]` is layer l's beats per image.
Dense-only networks send an image's beats in layer order, images in order (untagged). A network with map
layers produces them at the same time in different layers (image n in conv1 while image n + 1 is in conv0),
so each beat carries its layer's index in a tag above the data bits: beats of one layer come in order, the
layers interleave in any order, and the receiver splits them by tag (`split_debug`). `dbg_fields[k]` says
which neurons the k-th beat of an image (in layer order) carries: (layer, first_neuron, count, bit_offset).
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
    hidden_pieces: tuple[int, ...] = ()  # debug beats per image of each hidden layer (default: one each)

    @classmethod
    def of(cls, specs, first_lanes: int, *, debug: bool = False) -> BeatGeometry:
        """The geometry of a network of layer specifications whose first layer has `first_lanes` lanes: a word of
        the first layer per beat, or, when it is a convolution, one pixel (its C channels) per beat."""
        first = specs[0]
        per_beat = first.in_c if first.kind == "conv" else first_lanes
        pieces = tuple(s.out_h * s.out_w if hasattr(s, "out_h") else 1 for s in specs[:-1])
        return cls(first.in_size, first.input_bits, per_beat * first.input_bits, specs[-1].fan_out,
                   tuple(s.out_size for s in specs[:-1]), debug, pieces if any(p > 1 for p in pieces) else ())

    def for_link(self) -> BeatGeometry:
        """What the host link carries and IDENT describes: images in and classes out, no debug stream."""
        return replace(self, hidden_sizes=(), debug=False, hidden_pieces=())

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
        """Prepared images (n, N) of B-bit integers -> (n, in_beats, in_width) bits, zero padded. numpy's >> is
        arithmetic, so a negative (signed) input gives its B-bit two's complement."""
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
    def pieces(self) -> tuple[int, ...]:
        """Debug beats per image of each hidden layer."""
        return self.hidden_pieces or (1,) * len(self.hidden_sizes)

    @property
    def tagged(self) -> bool:
        """Beats carry their layer's index (a network with feature-map layers)."""
        return self.has_debug and any(p > 1 for p in self.pieces)

    @property
    def dbg_data_width(self) -> int:
        """Data bits of a debug beat: the widest piece."""
        return max(m // p for m, p in zip(self.hidden_sizes, self.pieces)) if self.has_debug else 0

    @property
    def dbg_tag_width(self) -> int:
        return bits_for(len(self.hidden_sizes)) if self.tagged else 0

    @property
    def dbg_width(self) -> int:
        """Bits of a debug beat: the tag (if any) above the data."""
        return self.dbg_data_width + self.dbg_tag_width

    @property
    def dbg_beats(self) -> int:
        return sum(self.pieces) if self.has_debug else 0

    @property
    def dbg_fields(self) -> tuple[tuple[Field, ...], ...]:
        if not self.has_debug:
            return ()
        return tuple(((layer, j * (m // p), m // p, 0),)
                     for layer, (m, p) in enumerate(zip(self.hidden_sizes, self.pieces)) for j in range(p))

    def decode_debug(self, beats: list[int], fields=None) -> list[np.ndarray]:
        """Debug beats of one image, in layer order (tags, if any, ignored) -> activation bits per hidden layer."""
        acts = [np.zeros(m, np.uint8) for m in self.hidden_sizes]
        for beat, beat_fields in zip(beats, self.dbg_fields if fields is None else fields):
            for layer, first, count, offset in beat_fields:
                v = beat >> offset
                acts[layer][first:first + count] = [(v >> k) & 1 for k in range(count)]
        return acts

    def beat_layer(self, beat: int) -> int:
        """The hidden layer a tagged debug beat belongs to."""
        return beat >> self.dbg_data_width

    def split_debug(self, beats: list[int], n: int) -> list[np.ndarray]:
        """Every debug beat of n images, as the stream delivered them -> per hidden layer an (n, M) bit array.
        Tagged beats are split by their tag; untagged ones come image by image, layer by layer.
        ValueError if a layer's beat count is not n images' worth."""
        if self.tagged:
            per_layer: list[list[int]] = [[] for _ in self.hidden_sizes]
            for b in beats:
                layer = self.beat_layer(b)
                if layer >= len(per_layer):
                    raise ValueError(f"a debug beat tagged {layer}: the network has {len(per_layer)} hidden layers")
                per_layer[layer].append(b)
        else:
            k = len(self.hidden_sizes)
            per_layer = [beats[layer::k] for layer in range(k)]
        out = []
        for layer, (got, m, p) in enumerate(zip(per_layer, self.hidden_sizes, self.pieces)):
            if len(got) != n * p:
                raise ValueError(f"hidden layer {layer}: {len(got)} debug beats for {n} images ({p} per image expected)")
            out.append(int_bits(got, m // p).reshape(n, m))
        return out


def int_bits(values: list[int], width: int) -> np.ndarray:
    """Python ints -> (len, width) uint8, bit j of each value in column j (the bits above width ignored)."""
    nbytes = ceil_div(width, 8) + 1  # + 1: a tag above the data bits
    raw = b"".join((int(v) & ((1 << (8 * nbytes)) - 1)).to_bytes(nbytes, "little") for v in values)
    bits = np.unpackbits(np.frombuffer(raw, np.uint8).reshape(len(values), nbytes), axis=1, bitorder="little")
    return bits[:, :width]
