"""The fully connected binary layer: one specification that every stage reads.

Bits: 1 means +1 and 0 means -1, for weights and bipolar activations (docs/datapath.md).
Accumulator of one neuron, by the encoding of the layer's input:

* ``bipolar`` (1-bit activations): acc = popcount(XNOR(a, w)) in [0, N]; the ±1 dot
  product is 2·acc − N.
* ``unsigned`` (B-bit unsigned inputs, e.g. 8-bit pixels, first layer only):
  acc = Σ_b 2^b (2·popcount(x_b AND w) − popcount(x_b)) = Σ_i w_i x_i, w_i ∈ {−1, +1},
  in [−N(2^B − 1), N(2^B − 1)].

A hidden neuron outputs bit (acc >= T); the output layer's accumulators are scores.

Folding onto P rows of L lanes (docs/accelerator.md): P divides M, 1 <= L <= N; neuron
m lives in row m % P at local index m // P; its weights are cut into W = ceil(N / L)
words, word c holding inputs [c·L, c·L + L), input c·L + j in bit j; row p's ROM holds
word c of neuron m at (m // P)·W + c. The last word is padded with weight bit 1 and
input 0, so padding never adds to a popcount. Row p's threshold ROM holds neuron m's
threshold at m // P, in two's complement of the threshold width.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from fedxnor.contract import structure as hwc
from fedxnor.contract.bits import bits_for, ceil_div, signed_width
from fedxnor.contract.cost import MODELS, LayerCost, ResourceModel, activation_buffer_cost, image_buffer_cost, rom_cost
from fedxnor.contract.cycles import layer_timing
from fedxnor.contract.devices import Device
from fedxnor.contract.folding import Folding
from fedxnor.errors import FedxnorError

ENCODINGS = ("bipolar", "unsigned")


@dataclass(frozen=True)
class Dense:
    """Fan-in N, fan-out M, input bits B and encoding; `is_output`: no thresholds, argmax of the scores."""

    fan_in: int
    fan_out: int
    input_bits: int = 1
    encoding: str = "bipolar"
    is_output: bool = False
    name: str = ""
    kind: ClassVar[str] = "dense"

    def __post_init__(self) -> None:
        if self.fan_in < 1 or self.fan_out < 1:
            raise FedxnorError(f"a layer needs fan-in and fan-out >= 1, got {self.fan_in} and {self.fan_out}")
        if self.encoding not in ENCODINGS:
            raise FedxnorError(f"unknown input encoding {self.encoding!r}: use 'bipolar' or 'unsigned'")
        if not 1 <= self.input_bits <= 16:
            raise FedxnorError(f"input_bits must be in 1..16, got {self.input_bits}")
        if self.encoding == "bipolar" and self.input_bits != 1:
            raise FedxnorError("a bipolar layer takes 1-bit inputs")

    # ------------------------------------------------------------ shape

    @property
    def in_shape(self) -> tuple[int, ...]:
        return (self.fan_in,)

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.fan_out,)

    @property
    def planes(self) -> int:
        """Bit planes the array walks per input word: B for unsigned inputs, 1 for bipolar ones."""
        return self.input_bits if self.encoding == "unsigned" else 1

    @property
    def weight_bits(self) -> int:
        return self.fan_in * self.fan_out

    @property
    def acc_range(self) -> tuple[int, int]:
        """Smallest and largest accumulator value this layer can produce."""
        if self.encoding == "bipolar":
            return 0, self.fan_in
        m = self.fan_in * ((1 << self.input_bits) - 1)
        return -m, m

    @property
    def acc_width(self) -> int:
        """Two's complement bits that hold every accumulator value and every threshold ([lo, hi + 1])."""
        lo, hi = self.acc_range
        return signed_width(lo, hi + 1)

    @property
    def threshold_width(self) -> int:
        return 0 if self.is_output else self.acc_width

    # ------------------------------------------------------------ folding

    def folding_error(self, fold: Folding, names: tuple[str, str] = ("P=", "L=")) -> str | None:
        """Why (P, L) cannot fold this layer, or None: P must divide M, 1 <= L <= N. `names` prefix the values
        in the message (a CLI says "--pe 3", a config "'export.pe' 3")."""
        if fold.pe < 1 or self.fan_out % fold.pe:
            return f"{names[0]}{fold.pe} does not divide fan-out {self.fan_out}; choose a divisor of {self.fan_out}"
        if not 1 <= fold.simd <= self.fan_in:
            return f"{names[1]}{fold.simd} must be in 1..{self.fan_in} (the fan-in)"
        return None

    def check_folding(self, fold: Folding, where: str = "", names: tuple[str, str] = ("P=", "L=")) -> None:
        err = self.folding_error(fold, names)
        if err:
            raise FedxnorError(f"{where}: {err}" if where else err)

    def candidate_foldings(self) -> list[Folding]:
        """Every legal (P, L). Every L, not only the narrowest per words-per-row count: a wider ROM can cross
        Yosys' logic/block-RAM line and free a block RAM, so narrower is not always cheaper."""
        pes = [d for d in range(1, self.fan_out + 1) if self.fan_out % d == 0]
        return [Folding(p, s) for p in pes for s in range(1, self.fan_in + 1)]

    def words_per_row(self, fold: Folding) -> int:
        return ceil_div(self.fan_in, fold.simd)

    def neurons_per_pe(self, fold: Folding) -> int:
        return self.fan_out // fold.pe

    def weight_depth(self, fold: Folding) -> int:
        """Words per row's weight ROM: (M / P) · ceil(N / L)."""
        return self.neurons_per_pe(fold) * self.words_per_row(fold)

    def threshold_depth(self, fold: Folding) -> int:
        return 0 if self.is_output else self.neurons_per_pe(fold)

    # ------------------------------------------------------------ packing

    def pack_weights(self, weights: np.ndarray, fold: Folding) -> list[list[int]]:
        """Per-row lists of L-bit weight words in ROM address order (Python ints: L may exceed 64)."""
        self.check_folding(fold)
        m, n, lanes = self.fan_out, self.fan_in, fold.simd
        w = self.words_per_row(fold)
        padded = np.ones((m, w * lanes), np.uint8)
        padded[:, :n] = weights
        packed = np.packbits(padded.reshape(m, w, lanes), axis=2, bitorder="little")
        words = [[int.from_bytes(chunk.tobytes(), "little") for chunk in row] for row in packed]
        return [[word for local in range(p, m, fold.pe) for word in words[local]] for p in range(fold.pe)]

    def unpack_weights(self, per_pe: list[list[int]], fold: Folding) -> np.ndarray:
        """Inverse of pack_weights: (M, W·L) bits, the padding bits included."""
        lanes, w = fold.simd, self.words_per_row(fold)
        out = np.zeros((self.fan_out, w * lanes), np.uint8)
        nbytes = ceil_div(lanes, 8)
        for p, words in enumerate(per_pe):
            for local in range(self.fan_out // len(per_pe)):
                row = np.frombuffer(b"".join(int(x).to_bytes(nbytes, "little") for x in words[local * w:(local + 1) * w]),
                                    np.uint8).reshape(w, nbytes)
                out[local * len(per_pe) + p] = np.unpackbits(row, axis=1, bitorder="little")[:, :lanes].reshape(-1)
        return out

    def pack_thresholds(self, thresholds: np.ndarray, fold: Folding) -> list[list[int]]:
        """Per-row lists of thresholds in two's complement of threshold_width bits."""
        mask = (1 << self.threshold_width) - 1
        t = [int(v) & mask for v in thresholds]
        return [t[p::fold.pe] for p in range(fold.pe)]

    # ------------------------------------------------------------ reference

    def accumulate(self, weights: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Accumulators (batch, M), int64, of inputs x (batch, N). Float64 products are exact here (every
        value is far below 2^53) and fast; the result is converted back to integers."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.fan_in:
            raise FedxnorError(f"layer expects inputs of width {self.fan_in}, got shape {x.shape}")
        w = np.asarray(weights, np.float64)
        a = x.astype(np.float64)
        if self.encoding == "bipolar":
            p = a @ w.T + (1.0 - a) @ (1.0 - w).T  # XNOR popcount
        else:
            p = a @ (2.0 * w - 1.0).T  # sum_i (±1)_i x_i
        return np.rint(p).astype(np.int64)

    def forward(self, weights: np.ndarray, thresholds: np.ndarray | None, x: np.ndarray) -> np.ndarray:
        """Output bits (batch, M) of a hidden layer, or the accumulators of the output layer."""
        acc = self.accumulate(weights, x)
        if self.is_output:
            return acc
        return (acc >= np.asarray(thresholds)[None, :]).astype(np.uint8)

    def literal_accumulate(self, per_pe: list[list[int]], fold: Folding, x: np.ndarray) -> np.ndarray:
        """Accumulators (M,) of ONE input vector as the hardware computes them: each row's ROM words, L input
        bits per word, XNOR-popcount (bipolar) or AND-popcount per bit plane, shifted (unsigned). Slow; it pins
        down the contract, and tests check `accumulate` against it."""
        lanes, w = fold.simd, self.words_per_row(fold)
        x = [int(v) for v in np.asarray(x).reshape(-1)] + [0] * (w * lanes - self.fan_in)  # inputs padded with 0
        mask = (1 << lanes) - 1
        acc = np.zeros(self.fan_out, np.int64)
        for p in range(fold.pe):
            for local in range(self.neurons_per_pe(fold)):
                total = 0
                for c in range(w):
                    word = per_pe[p][local * w + c]
                    chunk = x[c * lanes:(c + 1) * lanes]
                    if self.encoding == "bipolar":
                        a = sum(b << j for j, b in enumerate(chunk))
                        total += (~(a ^ word) & mask).bit_count()
                    else:
                        for b in range(self.input_bits):
                            plane = sum(((v >> b) & 1) << j for j, v in enumerate(chunk))
                            total += (2 * (plane & word).bit_count() - plane.bit_count()) << b
                acc[local * fold.pe + p] = total
        return acc

    # ------------------------------------------------------------ cycles

    def tokens(self, fold: Folding) -> int:
        """T: cycles the array is busy per image, one token each: (M / P) · ceil(N / L) · planes."""
        return self.neurons_per_pe(fold) * self.words_per_row(fold) * self.planes

    def intake_tokens(self, fold: Folding) -> int:
        """Cycles the image buffer takes to store one image when this is the first layer: a plane of a beat each."""
        return self.words_per_row(fold) * self.input_bits

    # ------------------------------------------------------------ cost

    def spram_cells(self, fold: Folding) -> int:
        """SB_SPRAM256KA cells the weights take in SPRAM: P rows x ceil(L / 16); 0 if a row is too deep."""
        return fold.pe * hwc.spram_cells(fold.simd, self.weight_depth(fold))

    def cost(self, fold: Folding, device: Device, model: ResourceModel | None = None, *, first: bool = False,
             spram: bool = False) -> LayerCost:
        """Cycles, LUTs, FFs and block RAM of this layer folded onto P rows x L lanes, its input buffer included.

        spram: the weights are in SPRAM (no block RAM or ROM logic; a 14-bit address mux per row)."""
        model = model or MODELS[device.family]
        p, lanes = fold.pe, fold.simd
        words = self.words_per_row(fold)
        depth = self.weight_depth(fold)
        aw = self.acc_width
        if spram:
            tiles, rom_luts, cells = 0, 14.0 * p, self.spram_cells(fold)
        else:
            tiles, rom_luts = rom_cost(lanes, depth, device, model)
            tiles, rom_luts, cells = tiles * p, rom_luts * p, 0
        # read_regs: a weight ROM of LUTs reads through an address register per ROM_BITS_PER_ADDRESS word bits
        address_copy_ffs = (p * hwc.slice_count(lanes, hwc.ROM_BITS_PER_ADDRESS) * bits_for(depth)
                            if device.read_regs and not (spram or tiles) else 0)
        rom_bits = p * lanes * depth
        if not self.is_output:
            tw = self.acc_width  # the threshold width holds [lo, hi + 1], as the accumulator does
            t_tiles, t_luts = rom_cost(tw, self.fan_out // p, device, model, weights=False)
            tiles += t_tiles * p
            rom_luts += t_luts * p
            rom_bits += tw * self.fan_out
        groups = p + (1 if self.encoding == "unsigned" else 0)  # + the pcx popcount of x_b
        levels = hwc.tree_levels(lanes)
        late_ffs = levels * (8 + max(1, (self.fan_out // p - 1).bit_length()) + lanes.bit_length())
        if first:
            b_tiles, b_luts, b_ffs = image_buffer_cost(lanes, words, self.input_bits, device, model)
        else:
            b_tiles, b_luts, b_ffs = activation_buffer_cost(self.fan_in, model)
        luts = (model.layer + p * (model.row + model.row_bit * aw) + groups * lanes * model.lane + rom_luts
                + b_luts) * model.flatten
        ffs = model.ff_layer + p * (lanes + model.ff_row + aw) + groups * lanes * model.ff_lane + late_ffs + b_ffs
        if device.read_regs:  # a, w and the RAM-side w registers of every row (hw/array.py), the lagging chunk
            ffs += (3 * groups * lanes + lanes + hwc.read_stage_bits(lanes, words, first, self.input_bits)
                    + (0 if self.is_output else hwc.door_bits(p))  # the door of the buffer this layer fills
                    + hwc.READ_STAGE_CONTROL_FFS
                    + address_copy_ffs)
        drain, own = layer_timing(self, fold, first=first, read_regs=device.read_regs)
        return LayerCost(self.tokens(fold), luts, ffs, tiles + b_tiles, rom_bits, drain, own, cells)
