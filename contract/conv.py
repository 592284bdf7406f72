"""The binary k x k convolution: one specification that every stage reads.

Feature maps are NHWC: an (H, W, C) map of bits (or of B-bit unsigned pixels for the first layer), flattened
with channels innermost, index (y·W + x)·C + c. A convolution is the matrix-vector product of the M x K weight
matrix (M = out_c, K = k·k·in_c, columns in (ky, kx, c) order, FINN's sliding-window order) with each output
pixel's window, output pixels in row-major (oy, ox) order: folding, packing, accumulator range and the walk of
the packed words are the matrix's (contract/matrix.py). Output pixel (oy, ox) reads input pixel
(oy·stride + ky − pad, ox·stride + kx − pad); outside the map the input value is 0: the bit 0 (−1) for a binary
layer, the pixel 0 for the unsigned first layer (docs/datapath.md, "Convolution, pooling, padding and flatten").
A hidden conv outputs the bit (acc >= T[c]), one threshold per output channel; a conv is never the output layer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from fedxnor.contract.cost import (
    MODELS,
    LayerCost,
    array_cost,
    collector_cost,
    column_window_cost,
    line_buffer_cost,
    pixel_collector_cost,
    vector_buffer_cost,
)
from fedxnor.contract.cycles import layer_timing
from fedxnor.contract.folding import Folding
from fedxnor.contract.matrix import CHUNK_VALUES, MatrixKind, check_encoding, matrix_accumulate
from fedxnor.contract.structure import DRAIN_FIXED, tree_levels
from fedxnor.errors import FedxnorError

PAD_VALUE = 0  # the stored input value of a padded position: bit 0 (= −1) or pixel 0


def check_sizes(kind: str, **sizes: int) -> None:
    """Every size a positive int (pad: non-negative), one line naming the first bad one."""
    for key, v in sizes.items():
        low = 0 if key == "pad" else 1
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise FedxnorError(f"{kind}: {key} must be an integer >= {low}, got {v!r}")


def out_side(side: int, k: int, stride: int, pad: int) -> int:
    """Output positions along one axis: (side + 2·pad − k) // stride + 1 (0 or less: the window does not fit)."""
    return (side + 2 * pad - k) // stride + 1


def windows(x: np.ndarray, h: int, w: int, c: int, k: int, stride: int, pad: int) -> np.ndarray:
    """im2col: (batch, h·w·c) NHWC inputs -> (batch·oh·ow, k·k·c) windows, rows in (image, oy, ox) order, columns
    in (ky, kx, c) order, padded positions PAD_VALUE."""
    b = x.shape[0]
    oh, ow = out_side(h, k, stride, pad), out_side(w, k, stride, pad)
    xp = np.full((b, h + 2 * pad, w + 2 * pad, c), PAD_VALUE, x.dtype)
    xp[:, pad:pad + h, pad:pad + w, :] = x.reshape(b, h, w, c)
    cols = [xp[:, ky:ky + stride * (oh - 1) + 1:stride, kx:kx + stride * (ow - 1) + 1:stride, :]
            for ky in range(k) for kx in range(k)]
    return np.stack(cols, axis=3).reshape(b * oh * ow, k * k * c)


@dataclass(frozen=True)
class Conv(MatrixKind):
    """in_h x in_w x in_c maps -> out_h x out_w x out_c maps; k x k windows, stride, pad; input bits and encoding."""

    in_h: int
    in_w: int
    in_c: int
    out_c: int
    k: int
    stride: int = 1
    pad: int = 0
    input_bits: int = 1
    encoding: str = "bipolar"
    name: str = ""
    kind: ClassVar[str] = "conv"
    is_output: ClassVar[bool] = False  # the output layer is dense: scores, then argmax
    in_hardware: ClassVar[bool] = True  # hw/convfront.py

    def __post_init__(self) -> None:
        check_sizes("conv", in_h=self.in_h, in_w=self.in_w, in_c=self.in_c, out_c=self.out_c, k=self.k,
                    stride=self.stride, pad=self.pad)
        check_encoding(self.input_bits, self.encoding)
        if self.pad >= self.k:
            raise FedxnorError(f"conv: pad {self.pad} must be below the kernel size {self.k} (a window of padding only)")
        if self.out_h < 1 or self.out_w < 1:
            raise FedxnorError(f"conv: a {self.k}x{self.k} window with pad {self.pad} does not fit a "
                               f"{self.in_h}x{self.in_w} map")

    # ------------------------------------------------------------ shape

    @property
    def out_h(self) -> int:
        return out_side(self.in_h, self.k, self.stride, self.pad)

    @property
    def out_w(self) -> int:
        return out_side(self.in_w, self.k, self.stride, self.pad)

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return (self.in_h, self.in_w, self.in_c)

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return (self.out_h, self.out_w, self.out_c)

    @property
    def fan_in(self) -> int:
        """K, the weight matrix's width: one window."""
        return self.k * self.k * self.in_c

    @property
    def fan_out(self) -> int:
        """M, the weight matrix's height: the output channels."""
        return self.out_c

    # ------------------------------------------------------------ reference

    def accumulate(self, weights: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Accumulators (batch, out_h·out_w·out_c), NHWC, of NHWC-flattened inputs x (batch, in_h·in_w·in_c):
        im2col on the integers, then the exact matrix product, a few images at a time."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.in_size:
            raise FedxnorError(f"conv layer expects inputs of width {self.in_size} ({self.in_h}x{self.in_w}x{self.in_c} "
                               f"NHWC), got shape {x.shape}")
        pixels = self.out_h * self.out_w
        step = max(1, CHUNK_VALUES // (pixels * self.fan_in))
        out = np.empty((x.shape[0], self.out_size), np.int64)
        for s in range(0, x.shape[0], step):
            part = x[s:s + step]
            cols = windows(part, self.in_h, self.in_w, self.in_c, self.k, self.stride, self.pad)
            out[s:s + step] = matrix_accumulate(weights, cols, self.encoding).reshape(len(part), self.out_size)
        return out

    def forward(self, weights: np.ndarray, thresholds: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Output bits (batch, out_h·out_w·out_c), NHWC: acc >= T[c] per output channel c."""
        acc = self.accumulate(weights, x).reshape(len(x), -1, self.out_c)
        return (acc >= np.asarray(thresholds)[None, None, :]).astype(np.uint8).reshape(len(x), self.out_size)

    def window(self, x: np.ndarray, oy: int, ox: int) -> list[int]:
        """Output pixel (oy, ox)'s window of ONE NHWC-flattened image, as the sliding-window generator emits it:
        (ky, kx, c) order, PAD_VALUE outside the map."""
        flat = np.asarray(x).reshape(-1)
        out = []
        for ky in range(self.k):
            for kx in range(self.k):
                y, xx = oy * self.stride + ky - self.pad, ox * self.stride + kx - self.pad
                inside = 0 <= y < self.in_h and 0 <= xx < self.in_w
                for c in range(self.in_c):
                    out.append(int(flat[(y * self.in_w + xx) * self.in_c + c]) if inside else PAD_VALUE)
        return out

    def literal_accumulate(self, per_pe: list[list[int]], fold: Folding, x: np.ndarray) -> np.ndarray:
        """Accumulators (out_h·out_w·out_c,), NHWC, of ONE image as the hardware computes them: per output pixel
        in row-major order, the window in (ky, kx, c) order, then the packed words' walk (contract/matrix.py).
        Slow; it pins down the contract, and tests check `accumulate` against it."""
        acc = [self.literal_matvec(per_pe, fold, np.array(self.window(x, oy, ox), np.int64))
               for oy in range(self.out_h) for ox in range(self.out_w)]
        return np.concatenate(acc)

    # ------------------------------------------------------------ cycles and cost

    def tokens(self, fold: Folding) -> int:
        """Cycles the array is busy per image: out_h·out_w·(M / P)·ceil(K / L)·planes."""
        return self.out_h * self.out_w * self.neurons_per_pe(fold) * self.words_per_row(fold) * self.planes

    def window_tokens(self, fold: Folding) -> int:
        """T_w: the array's cycles per window (output pixel): (M / P)·ceil(K / L)·planes."""
        return self.neurons_per_pe(fold) * self.words_per_row(fold) * self.planes

    def window_drain(self, fold: Folding) -> int:
        """D of the default build (one register per adder-tree level): last token of a window -> its pixel done."""
        return tree_levels(fold.simd) + fold.pe + DRAIN_FIXED

    def column_window(self, fold: Folding) -> bool:
        """Which sliding-window generator hw/convlayer.py builds for this folding (a structural choice the cost
        model prices and the cycle model times): the column-parallel one (hw/colwindow.py, a window per output
        pixel, the pixel ring collector of hw/collector.py) when the serial one would hold the array up, i.e. the
        array needs fewer cycles per window than the serial generator's k·k taps or the two-bank collector's
        drain turn (T_w < max(k·k, D + 1)); else the one-memory serial generator (hw/window.py), which costs
        fewer flip-flops (no window register, no slots): what small devices, with slow foldings, keep."""
        return self.window_tokens(fold) < max(self.k * self.k, self.window_drain(fold) + 1)

    def window_parallelism(self, fold: Folding) -> int:
        """Q: arrays of the column build taking alternate windows (hw/convlayer.py; 1 for the serial build). 2 at
        the fastest folding of a layer on B-bit pixels (P = M, L >= K), where a window still costs its B bit planes,
        one token each, and the first layer of a CNV (8-bit pixels, 9 lanes) would bound the network at B cycles per
        output pixel; else 1. The second array copies the weight and threshold ROMs (M x K bits: a constant word per
        row at this folding)."""
        fastest = fold.pe == self.out_c and fold.simd >= self.fan_in
        return 2 if self.planes > 1 and fastest and self.column_window(fold) else 1

    def collector_slots(self, fold: Folding) -> int:
        """S of the column build's collector (hw/collector.py): a window holds a slot from its first token to its
        pixel sent, T_w + D cycles with the output always ready, so 1 + ceil(D / T_w) slots keep windows a T_w
        apart; one more absorbs a consumer's pause of up to T_w cycles."""
        return 2 + -(-self.window_drain(fold) // self.window_tokens(fold))

    def cost(self, fold: Folding, device, model=None, *, first: bool = False, spram: bool = False,
             after_map: bool = False):
        """Cycles, LUTs, FFs and block RAM of hw/convlayer.py's ConvLayer folded onto P rows x L lanes: the sliding
        window (line buffer of k + stride rows in block RAM, a two-bank window buffer in FFs; or, when
        `column_window(fold)`, hw/colwindow.py's column memory, window register and hold banks), the dense layer's
        sequencer, rows, lane groups and ROMs (contract/cost.py array_cost), the collector of each output pixel
        (two banks, or the column build's ring of `collector_slots` pixels). Its input buffer is the window (a first
        conv layer needs no image buffer); what it fills is the next map layer's line buffer, or the flattened map,
        which the dense layer after it prices as its input buffer."""
        if spram:
            raise FedxnorError(f"conv layer {self.name or ''}: the run-time weight store (SPRAM) takes dense layers only; "
                               "keep its weights in block RAM")
        self.check_folding(fold)
        model = model or MODELS[device.family]
        # hw/convlayer.py builds its array with Yosys choosing each ROM's place and no read registers (issue 21)
        arr = array_cost(self, fold, dataclasses.replace(device, weight_roms="auto", read_regs=False), model)
        bits, q = self.planes, 1
        if self.column_window(fold):  # hw/colwindow.py + hw/collector.py (its window buffer is the hold banks)
            q = self.window_parallelism(fold)  # Q arrays, Q pairs of hold banks, Q pixel rings
            l_tiles, l_luts, l_ffs = column_window_cost(self.k, self.in_w + 2 * self.pad, self.in_c * bits,
                                                        q * bits * self.words_per_row(fold) * fold.simd, fold.simd,
                                                        device, model, groups=q, planes=bits)
            w_tiles, w_luts, w_ffs = 0, 0.0, 0.0
            _, c_luts, c_ffs = pixel_collector_cost(self.out_c, fold.pe, self.collector_slots(fold), model)
            c_luts, c_ffs = q * c_luts, q * c_ffs
        else:
            l_tiles, l_luts, l_ffs = line_buffer_cost(self.k + self.stride, self.in_w, self.in_c * bits, device, model)
            w_tiles, w_luts, w_ffs = vector_buffer_cost(self.k * self.k, self.in_c, fold.simd, bits, device, model)
            _, c_luts, c_ffs = collector_cost(self.out_c, model)
        luts = (q * model.conv_array * arr.luts + l_luts + w_luts + c_luts + model.conv_glue) * model.flatten
        ffs = q * arr.ffs + l_ffs + w_ffs + c_ffs + 2
        # NetworkTop refuses read_regs with a conv front so far: timed without them on every device
        drain, own = layer_timing(self, fold, first=first, read_regs=False)
        per_array = -(-self.out_h * self.out_w // q) * self.window_tokens(fold)  # T of one array: its windows' tokens
        return LayerCost(per_array, luts, ffs, q * arr.bram + l_tiles + w_tiles, q * arr.rom_bits, drain,
                         own, 0)
