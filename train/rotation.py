"""Rotation-aware binarization for fully connected and conv layers (after RBNN, Lin et al., NeurIPS 2020).

RBNN rotates the latent weights before sign so that sign(W') is closer in angle to W'.
For a layer W (M x N) we learn a bi-rotation W' = R1^T W R2 with block-diagonal
orthogonal R1 (M x M) and R2 (N x N), blocks of at most 16 x 16 (cheap on a CPU).
Each block is exp(A - A^T) of a free matrix A, so every step stays exactly orthogonal
and FedAvg of the generators is again a rotation. The forward pass uses sign(W');
fold_rotation() writes W' into a plain BNN at the end, so the checkpoint holds only
±1 weights (as bits of W') and BatchNorm, like any BNN. A conv layer's W is its M x (C·k·k) matrix
(torch's (out_c, in_c, k, k) flattened per output channel), rotated the same way.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from fedxnor.train.conv_layers import BinaryConv2d
from fedxnor.train.layers import BinaryLinear, sign_ste
from fedxnor.train.models import BNN


def block_size(n: int, limit: int = 16) -> int:
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


def _rotations(gen: torch.Tensor) -> torch.Tensor:
    return torch.linalg.matrix_exp(gen - gen.transpose(1, 2))


def _generators(fan_out: int, fan_in: int, limit: int) -> tuple[nn.Parameter, nn.Parameter]:
    """Zero generators (identity rotations) of R1's and R2's blocks."""
    b_out, b_in = block_size(fan_out, limit), block_size(fan_in, limit)
    return nn.Parameter(torch.zeros(fan_out // b_out, b_out, b_out)), nn.Parameter(torch.zeros(fan_in // b_in, b_in, b_in))


def bi_rotate(w: torch.Tensor, rot_out: torch.Tensor, rot_in: torch.Tensor) -> torch.Tensor:
    """R1^T W R2 of an (M, N) matrix, R1 and R2 block-diagonal from their blocks' generators."""
    r1, r2 = _rotations(rot_out), _rotations(rot_in)
    (p, b1), (q, b2) = r1.shape[:2], r2.shape[:2]
    m, n = w.shape
    # W'[p,:,q,:] = R1[p]^T W[p,:,q,:] R2[q], as two batched matmuls over the blocks
    left = torch.bmm(r1.transpose(1, 2), w.reshape(p, b1, n))  # (p, b1, N)
    cols = left.reshape(m, q, b2).transpose(0, 1)  # (q, M, b2)
    return torch.bmm(cols, r2).transpose(0, 1).reshape(m, n)


class RotatedBinaryLinear(BinaryLinear):
    def __init__(self, fan_in: int, fan_out: int, limit: int = 16):
        super().__init__(fan_in, fan_out)
        self.rot_out, self.rot_in = _generators(fan_out, fan_in, limit)

    def rotated(self) -> torch.Tensor:
        return bi_rotate(self.weight, self.rot_out, self.rot_in)

    def binary_weight(self) -> torch.Tensor:
        return sign_ste(self.rotated())

    @torch.no_grad()
    def weight_bits(self) -> torch.Tensor:
        return (self.rotated() >= 0).to(torch.uint8)


class RotatedBinaryConv2d(BinaryConv2d):
    """A binary conv whose M x (C·k·k) weight matrix learns a bi-rotation."""

    def __init__(self, in_c: int, out_c: int, k: int, stride: int, pad: int, pad_value: float, limit: int = 16):
        super().__init__(in_c, out_c, k, stride, pad, pad_value)
        self.rot_out, self.rot_in = _generators(out_c, in_c * k * k, limit)

    def rotated(self) -> torch.Tensor:
        return bi_rotate(self.weight.reshape(self.out_c, -1), self.rot_out, self.rot_in).reshape(self.weight.shape)

    def binary_weight(self) -> torch.Tensor:
        return sign_ste(self.rotated())

    @torch.no_grad()
    def weight_bits(self) -> torch.Tensor:
        return (self.rotated() >= 0).to(torch.uint8).permute(0, 2, 3, 1).reshape(self.out_c, -1)


def add_rotation(model: BNN) -> BNN:
    """A copy of `model` whose binary layers (conv and dense) learn a bi-rotation (identity at the start)."""
    model = copy.deepcopy(model)

    def swap(lin: BinaryLinear) -> RotatedBinaryLinear:
        r = RotatedBinaryLinear(lin.fan_in, lin.fan_out)
        with torch.no_grad():
            r.weight.copy_(lin.weight)
        return r

    for i, conv in enumerate(model.convs):
        r = RotatedBinaryConv2d(conv.in_c, conv.out_c, conv.k, conv.stride, conv.pad, conv.pad_value)
        with torch.no_grad():
            r.weight.copy_(conv.weight)
        model.convs[i] = r
    for i, lin in enumerate(model.hidden):
        model.hidden[i] = swap(lin)
    model.out.linear = swap(model.out.linear)
    return model


@torch.no_grad()
def fold_rotation(model: BNN) -> BNN:
    """A plain BNN whose latent weights are the rotated ones: identical forward pass, no rotations."""
    plain = BNN(model.config)
    state = {k: v for k, v in model.state_dict().items() if ".rot_" not in k}
    for name, module in model.named_modules():
        if isinstance(module, (RotatedBinaryLinear, RotatedBinaryConv2d)):
            state[f"{name}.weight"] = module.rotated().clone()
    plain.load_state_dict(state)
    plain.train(model.training)
    return plain
