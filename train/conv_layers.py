"""Binary convolution layers: ±1 k x k kernels with latent floats, BatchNorm2d + sign, max-pool on the signs.

The integer contract (docs/datapath.md, /contract/conv.py) fixes three things torch must do the same way:
- padding: the first layer pads its unsigned pixels with 0; a binary layer pads its ±1 activations with -1
  (the bit 0), so the input is padded explicitly (F.pad) and the convolution itself runs with padding 0;
- the weight matrix of a layer is M x (k·k·C) with columns in (ky, kx, c) order (weight_bits);
- pooling is an OR of the bits, i.e. max-pool of the ±1 signs, after BatchNorm + sign.
Every pre-activation is an integer below 2^24, so a float32 convolution that sums products (oneDNN's direct
algorithm, im2col + GEMM) is exact in any order. Winograd/FFT transforms (NNPACK) round: they are switched
off, in training and eval alike; the exporter still proves torch eval == reference on every test image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fedxnor.train.layers import BatchNormSign, sign_ste

BINARY_PAD = -1.0  # a ±1 network has no zero: its padding is the bit 0, i.e. -1
PIXEL_PAD = 0.0  # unsigned pixels pad with 0, which adds nothing to the first layer's sum


class BinaryConv2d(nn.Module):
    """k x k convolution with latent float weights (out_c, in_c, k, k), ±1 in the forward pass, no bias.

    pad_value: BINARY_PAD for a layer on ±1 activations, PIXEL_PAD for the first layer on pixels.
    The latent weights are clipped to [-1, 1] after each optimizer step, like BinaryLinear's."""

    def __init__(self, in_c: int, out_c: int, k: int, stride: int = 1, pad: int = 0, pad_value: float = BINARY_PAD):
        super().__init__()
        self.in_c, self.out_c, self.k, self.stride, self.pad, self.pad_value = in_c, out_c, k, stride, pad, pad_value
        self.weight = nn.Parameter(torch.empty(out_c, in_c, k, k).uniform_(-0.1, 0.1))

    @property
    def fan_in(self) -> int:
        return self.in_c * self.k * self.k

    @property
    def fan_out(self) -> int:
        return self.out_c

    def binary_weight(self) -> torch.Tensor:
        return sign_ste(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad:
            x = F.pad(x, (self.pad,) * 4, value=self.pad_value)
        with torch.backends.nnpack.flags(enabled=False):  # no Winograd: integer sums stay exact
            return F.conv2d(x, self.binary_weight(), stride=self.stride)

    @torch.no_grad()
    def clip_latent(self) -> None:
        self.weight.clamp_(-1.0, 1.0)

    def weight_bits(self) -> torch.Tensor:
        """(M, k·k·C) uint8, 1 = +1, columns in (ky, kx, c) order (the contract's sliding-window order)."""
        return (self.weight.detach() >= 0).to(torch.uint8).permute(0, 2, 3, 1).reshape(self.out_c, -1)


class BatchNormSign2d(BatchNormSign):
    """BatchNorm2d followed by sign; eval is BatchNormSign's exact float32 formula, per channel."""

    def __init__(self, channels: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__(channels, eps, momentum)
        self.bn = nn.BatchNorm2d(channels, eps=eps, momentum=momentum)

    def pre_sign(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.bn(x)
        shift, scale, bias = (t.reshape(1, -1, 1, 1) for t in self.folded_affine())
        return (x - shift) * scale + bias


def max_pool_signs(x: torch.Tensor, k: int) -> torch.Tensor:
    """Max-pool of ±1 signs over k x k windows, stride k, no padding: the OR of the bits (1 = +1)."""
    return F.max_pool2d(x, k, stride=k)


def nhwc_flatten(x: torch.Tensor) -> torch.Tensor:
    """(n, C, H, W) -> (n, H·W·C), channels innermost: index (y·W + x)·C + c, the contract's flatten order."""
    return x.permute(0, 2, 3, 1).flatten(1)


def images_to_nchw(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (n, H, W) or (n, H, W, C) -> float (n, C, H, W)."""
    x = images.float()
    return x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
