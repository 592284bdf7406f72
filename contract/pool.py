"""Max-pooling on binary feature maps: one specification that every stage reads.

A max-pool takes an NHWC map of bits (1 = +1, 0 = −1) and outputs, per channel, the max over each k x k window
(stride s, no padding). On ±1 values max is OR: the output bit is 1 if any bit in the window is 1. Pooling
always follows BatchNorm + sign (it commutes with them only for positive BN scales), so it sees bits, in torch,
the reference and the hardware alike (docs/datapath.md). No weights, no thresholds; never the output layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from fedxnor.contract.conv import check_sizes, out_side
from fedxnor.contract.cost import MODELS, LayerCost, line_buffer_cost
from fedxnor.contract.cycles import layer_timing
from fedxnor.contract.matrix import Sized
from fedxnor.errors import FedxnorError


@dataclass(frozen=True)
class MaxPool(Sized):
    """in_h x in_w x c bit maps -> out_h x out_w x c; k x k windows, stride."""

    in_h: int
    in_w: int
    c: int
    k: int
    stride: int
    name: str = ""
    kind: ClassVar[str] = "maxpool"
    is_output: ClassVar[bool] = False
    has_weights: ClassVar[bool] = False
    encoding: ClassVar[str] = "bipolar"  # it reads bits
    input_bits: ClassVar[int] = 1
    in_hardware: ClassVar[bool] = True  # hw/convfront.py

    def __post_init__(self) -> None:
        check_sizes("maxpool", in_h=self.in_h, in_w=self.in_w, c=self.c, k=self.k, stride=self.stride)
        if self.out_h < 1 or self.out_w < 1:
            raise FedxnorError(f"maxpool: a {self.k}x{self.k} window does not fit a {self.in_h}x{self.in_w} map")

    @property
    def out_h(self) -> int:
        return out_side(self.in_h, self.k, self.stride, 0)

    @property
    def out_w(self) -> int:
        return out_side(self.in_w, self.k, self.stride, 0)

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return (self.in_h, self.in_w, self.c)

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return (self.out_h, self.out_w, self.c)

    def forward(self, weights: None, thresholds: None, x: np.ndarray) -> np.ndarray:
        """Output bits (batch, out_h·out_w·c), NHWC: the OR of each window, per channel."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.in_size:
            raise FedxnorError(f"maxpool layer expects inputs of width {self.in_size} ({self.in_h}x{self.in_w}x{self.c} "
                               f"NHWC), got shape {x.shape}")
        b, oh, ow, s = x.shape[0], self.out_h, self.out_w, self.stride
        maps = x.reshape(b, self.in_h, self.in_w, self.c)
        out = np.zeros((b, oh, ow, self.c), np.uint8)
        for ky in range(self.k):
            for kx in range(self.k):
                out |= maps[:, ky:ky + s * (oh - 1) + 1:s, kx:kx + s * (ow - 1) + 1:s, :].astype(np.uint8)
        return out.reshape(b, self.out_size)

    def literal_forward(self, x: np.ndarray) -> np.ndarray:
        """Output bits (out_h·out_w·c,) of ONE image, walked pixel by pixel, channel by channel, window bit by
        window bit. Slow; tests check `forward` against it."""
        flat = [int(v) for v in np.asarray(x).reshape(-1)]
        out = []
        for oy in range(self.out_h):
            for ox in range(self.out_w):
                for ch in range(self.c):
                    bit = 0
                    for ky in range(self.k):
                        for kx in range(self.k):
                            bit |= flat[((oy * self.stride + ky) * self.in_w + ox * self.stride + kx) * self.c + ch]
                    out.append(bit)
        return np.array(out, np.uint8)

    def cost(self, fold, device, model=None, *, first: bool = False, spram: bool = False, after_map: bool = False):
        """Cycles, LUTs, FFs and block RAM of hw/pool.py's MaxPoolUnit: a line buffer of k + stride rows (block RAM)
        sending k·k taps per pooled pixel, one per cycle, and the OR register. No folding (fold None), no weights.
        cycles = own: the unit's own per-image cycles (contract/cycles.py layer_timing)."""
        if fold is not None:
            raise FedxnorError(f"a max-pool has no weights to fold: give None as its folding, not {fold}")
        if spram:
            raise FedxnorError("a max-pool has no weights to keep in SPRAM")
        model = model or MODELS[device.family]
        tiles, luts, ffs = line_buffer_cost(self.k + self.stride, self.in_w, self.c, device, model)
        luts = (luts + model.pool_bit * self.c) * model.flatten
        ffs += 2 * self.c + 1
        drain, own = layer_timing(self, None, first=first, read_regs=False)  # no read registers in a conv front yet
        return LayerCost(own, luts, ffs, tiles, 0, drain, own, 0)
