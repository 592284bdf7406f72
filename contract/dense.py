"""The fully connected binary layer: one specification that every stage reads.

Bits: 1 means +1 and 0 means -1, for weights and bipolar activations (docs/datapath.md).
Accumulator of one neuron, by the encoding of the layer's input:

* ``bipolar`` (1-bit activations): acc = popcount(XNOR(a, w)) in [0, N]; the ±1 dot
  product is 2·acc − N.
* ``unsigned`` (B-bit unsigned inputs, e.g. 8-bit pixels, first layer only):
  acc = Σ_b 2^b (2·popcount(x_b AND w) − popcount(x_b)) = Σ_i w_i x_i, w_i ∈ {−1, +1},
  in [−N(2^B − 1), N(2^B − 1)].
* ``signed`` (B-bit two's complement inputs, first layer only): the same, the MSB plane's term negated
  (contract/matrix.py), in [−N·2^(B−1), N·2^(B−1)].

A hidden neuron outputs bit (acc >= T); the output layer's accumulators are scores.

Folding, ROM packing and the hardware's walk of the weight words are the M x N matrix's,
shared with convolution (contract/matrix.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from fedxnor.contract import structure as hwc
from fedxnor.contract.cost import (
    MODELS,
    LayerCost,
    ResourceModel,
    activation_buffer_cost,
    array_cost,
    image_buffer_cost,
    vector_buffer_cost,
)
from fedxnor.contract.cycles import layer_timing
from fedxnor.contract.devices import Device
from fedxnor.contract.folding import Folding
from fedxnor.contract.matrix import ENCODINGS, MatrixKind, check_encoding, matrix_accumulate
from fedxnor.errors import FedxnorError

__all__ = ["ENCODINGS", "Dense"]


@dataclass(frozen=True)
class Dense(MatrixKind):
    """Fan-in N, fan-out M, input bits B and encoding; `is_output`: no thresholds, argmax of the scores.

    Folding, packing and the accumulator range are the weight matrix's (contract/matrix.py), M x N here."""

    fan_in: int
    fan_out: int
    input_bits: int = 1
    encoding: str = "bipolar"
    is_output: bool = False
    name: str = ""
    kind: ClassVar[str] = "dense"
    in_hardware: ClassVar[bool] = True  # the accelerator (hw/) builds this kind

    def __post_init__(self) -> None:
        if self.fan_in < 1 or self.fan_out < 1:
            raise FedxnorError(f"a layer needs fan-in and fan-out >= 1, got {self.fan_in} and {self.fan_out}")
        check_encoding(self.input_bits, self.encoding)

    # ------------------------------------------------------------ shape

    @property
    def in_shape(self) -> tuple[int, ...]:
        return (self.fan_in,)

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.fan_out,)

    # ------------------------------------------------------------ reference

    def accumulate(self, weights: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Accumulators (batch, M), int64, of inputs x (batch, N): the shared matrix product, exact."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.fan_in:
            raise FedxnorError(f"layer expects inputs of width {self.fan_in}, got shape {x.shape}")
        return matrix_accumulate(weights, x, self.encoding)

    def forward(self, weights: np.ndarray, thresholds: np.ndarray | None, x: np.ndarray) -> np.ndarray:
        """Output bits (batch, M) of a hidden layer, or the accumulators of the output layer."""
        acc = self.accumulate(weights, x)
        if self.is_output:
            return acc
        return (acc >= np.asarray(thresholds)[None, :]).astype(np.uint8)

    def literal_accumulate(self, per_pe: list[list[int]], fold: Folding, x: np.ndarray) -> np.ndarray:
        """Accumulators (M,) of ONE input vector as the hardware computes them (contract/matrix.py's walk of the
        packed words). Slow; it pins down the contract, and tests check `accumulate` against it."""
        return self.literal_matvec(per_pe, fold, x)

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
             spram: bool = False, after_map: bool | int = False) -> LayerCost:
        """Cycles, LUTs, FFs and block RAM of this layer folded onto P rows x L lanes, its input buffer included.

        spram: the weights are in SPRAM (no block RAM or ROM logic; a 14-bit address mux per row).
        after_map: the layer reads the flattened map of a conv front (hw/convfront.py's VectorBuffer), not an
        activation buffer; an int gives the map's channels (True: 1)."""
        model = model or MODELS[device.family]
        arr = array_cost(self, fold, device, model, spram=spram)
        lanes, words = fold.simd, self.words_per_row(fold)
        if first:
            b_tiles, b_luts, b_ffs = image_buffer_cost(lanes, words, self.input_bits, device, model)
        elif after_map:  # the map's channels C (True: 1): H·W pieces of C bits (hw/convfront.py)
            c = int(after_map)
            b_tiles, b_luts, b_ffs = vector_buffer_cost(self.fan_in // c, c, lanes, 1, device, model, split=True)
        else:
            b_tiles, b_luts, b_ffs = activation_buffer_cost(self.fan_in, model)
        luts = (arr.luts + b_luts) * model.flatten
        ffs = arr.ffs + b_ffs
        if device.read_regs:  # the array's registers (array_cost), the input buffer's read stage, its door
            ffs += (arr.read_regs_ffs + hwc.read_stage_bits(lanes, words, first, self.input_bits)
                    + (0 if self.is_output else hwc.door_bits(fold.pe))  # the door of the buffer this layer fills
                    + hwc.READ_STAGE_CONTROL_FFS)
        drain, own = layer_timing(self, fold, first=first, read_regs=device.read_regs)
        return LayerCost(self.tokens(fold), luts, ffs, arr.bram + b_tiles, arr.rom_bits, drain, own, arr.spram)
