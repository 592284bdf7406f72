"""Binary layers: ±1 weights with latent floats, sign activations, BatchNorm whose eval
path is the exact float32 formula the exporter folds into integer thresholds."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sign_pm1(x: torch.Tensor) -> torch.Tensor:
    """sign with sign(0) = +1, the convention shared by training, reference and RTL."""
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


class _SignSTE(torch.autograd.Function):
    """Forward sign(x); backward the straight-through estimator clipped to |x| <= 1."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return sign_pm1(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


def sign_ste(x: torch.Tensor) -> torch.Tensor:
    return _SignSTE.apply(x)


class BinaryLinear(nn.Module):
    """Linear layer with latent float weights, ±1 in the forward pass, no bias.

    The latent weights are clipped to [-1, 1] after each optimizer step
    (clip_latent), so the straight-through gradient never dies for good.
    """

    def __init__(self, fan_in: int, fan_out: int):
        super().__init__()
        self.fan_in, self.fan_out = fan_in, fan_out
        self.weight = nn.Parameter(torch.empty(fan_out, fan_in).uniform_(-0.1, 0.1))

    def binary_weight(self) -> torch.Tensor:
        return sign_ste(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.binary_weight())

    @torch.no_grad()
    def clip_latent(self) -> None:
        self.weight.clamp_(-1.0, 1.0)

    def weight_bits(self) -> torch.Tensor:
        """(M, N) uint8, 1 = +1."""
        return (self.weight.detach() >= 0).to(torch.uint8)


class BatchNormSign(nn.Module):
    """BatchNorm1d followed by sign.

    Training uses batch statistics. Eval computes, in float32, one op at a time,
        y = (x - shift) * scale + bias,   shift = running_mean,
        scale = gamma / sqrt(running_var + eps),   bias = beta,
    and outputs sign(y). The exporter evaluates exactly these ops (folded_affine)
    to find each neuron's integer threshold, so torch eval and the integer
    reference agree on every input, ties included.
    """

    def __init__(self, features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.bn = nn.BatchNorm1d(features, eps=eps, momentum=momentum)

    def folded_affine(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        bn = self.bn
        scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        return bn.running_mean.detach().clone(), scale, bn.bias.detach().clone()

    def pre_sign(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.bn(x)
        shift, scale, bias = self.folded_affine()
        return (x - shift) * scale + bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pre_sign(x)
        return sign_ste(y) if self.training else sign_pm1(y)


class ScaledOutput(nn.Module):
    """Output layer: integer ±1 dot products times one positive learnable scale.

    The scale only sharpens the softmax during training; argmax is unchanged by it.
    """

    def __init__(self, fan_in: int, classes: int):
        super().__init__()
        self.linear = BinaryLinear(fan_in, classes)
        self.log_scale = nn.Parameter(torch.tensor(-0.5 * math.log(fan_in)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) * torch.exp(self.log_scale)
