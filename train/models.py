"""Named BNN model configurations and their integer export.

A BNN here is: optional convolution blocks (BinaryConv2d, BatchNorm2d + sign, optional max-pool of the
signs; train/conv_layers.py), then BinaryLinear + BatchNormSign blocks on the NHWC flatten, and a
ScaledOutput. The first layer takes unsigned B-bit inputs (pixels used as the integers 0..255, or bits),
every later one ±1 activations. Every pre-activation is an integer (< 2^24, so exact in float32), which
is what makes the export exact.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from torch import nn

from fedxnor.contract.dense import Dense
from fedxnor.contract.network import IntLayer, IntNetwork
from fedxnor.errors import FedxnorError
from fedxnor.export.thresholds import fold_thresholds
from fedxnor.train.conv_layers import (
    BINARY_PAD,
    PIXEL_PAD,
    BatchNormSign2d,
    BinaryConv2d,
    images_to_nchw,
    max_pool_signs,
    nhwc_flatten,
)
from fedxnor.train.conv_shapes import CNV_FMNIST, CNV_FMNIST_SIZES, CNV_SMALL, CNV_SMALL_SIZES, ConvGeometry, conv_geometry, conv_sizes
from fedxnor.train.layers import BatchNormSign, BinaryLinear, ScaledOutput, sign_ste


@dataclass(frozen=True)
class BNNConfig:
    """Shape of a BNN. input_encoding: 'pixels' (B-bit unsigned), 'pixels-binarized'
    (bit = pixel >= binarize_threshold) or 'bits' (already 0/1, e.g. a binary latent).
    convs: conv blocks (out_c, k, stride, pad, pool; pool 0 = none) before the dense layers, whose
    sizes[0] is then the NHWC flatten of the last block's map."""

    name: str
    sizes: tuple[int, ...]  # fan-in of layer 0, hidden widths..., classes
    input_bits: int = 8
    input_encoding: str = "pixels"
    binarize_threshold: int = 128
    input_shape: tuple[int, ...] = (28, 28)
    description: str = ""
    convs: tuple[tuple[int, int, int, int, int], ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)

    def first_input(self) -> tuple[int, str]:
        """(input bits, encoding) of the first layer: B-bit pixels, binarized pixels (1-bit unsigned) or bits."""
        if self.input_encoding == "pixels":
            return self.input_bits, "unsigned"
        return 1, "unsigned"

    def conv_geometry(self) -> list[ConvGeometry]:
        return conv_geometry(self.input_shape, self.convs)

    def layer_specs(self) -> list:
        """The integer layers this model exports to (fedxnor.contract), for planning before training."""
        s, (b0, e0) = self.sizes, self.first_input()
        if not self.convs:  # the first layer takes what the bridge gives it (first_input), the others bits
            return [Dense(s[i], s[i + 1], b0 if i == 0 else 1, e0 if i == 0 else "bipolar", i == len(s) - 2, f"fc{i}")
                    for i in range(len(s) - 1)]
        specs = []
        for i, g in enumerate(self.conv_geometry()):
            specs.extend(conv_block_specs(g, *(self.first_input() if i == 0 else (1, "bipolar")), i))
        return specs + [Dense(s[i], s[i + 1], 1, "bipolar", i == len(s) - 2, f"fc{i}") for i in range(len(s) - 1)]


def conv_block_specs(g: ConvGeometry, input_bits: int, encoding: str, i: int) -> list:
    """The contract's Conv (and MaxPool) specifications of one conv block."""
    from fedxnor.contract.conv import Conv
    from fedxnor.contract.pool import MaxPool

    specs = [Conv(g.in_h, g.in_w, g.in_c, g.out_c, g.k, g.stride, g.pad, input_bits, encoding, f"conv{i}")]
    if g.pool > 1:
        specs.append(MaxPool(g.out_h, g.out_w, g.out_c, g.pool, g.pool, f"pool{i}"))
    return specs


MODELS: dict[str, BNNConfig] = {
    c.name: c
    for c in (
        BNNConfig("mlp", (784, 256, 256, 10), description="784-256-256-10, 8-bit pixel input"),
        BNNConfig("mlp-small", (784, 64, 64, 10),
                  description="784-64-64-10, 8-bit pixel input; fits iCE40 block RAM (55 Kbit of weights)"),
        BNNConfig("mlp-bin", (784, 256, 256, 10), input_bits=1, input_encoding="pixels-binarized",
                  description="784-256-256-10 on binarized pixels (pixel >= 128)"),
        BNNConfig("mlp-160", (784, 160, 10),
                  description="784-160-10, 8-bit pixel input: 127 Kbit of weights, more than the UP5K's 120 Kbit of "
                              "block RAM, so its first layer goes to SPRAM, loaded over the host link"),
        BNNConfig("sfc", (784, 256, 256, 256, 10), description="FINN's SFC size, 8-bit pixel input"),
        BNNConfig("hybnn-head", (200, 128, 10), input_bits=1, input_encoding="bits", input_shape=(200,),
                  description="HyBNN head: the binary VAE latent (its width follows the VAE: 512 bits by default) -> 128 -> 10"),
        BNNConfig("cnv-fmnist", CNV_FMNIST_SIZES, convs=CNV_FMNIST,
                  description="conv BNN, 8-bit pixel input: 3x3 conv 32-32-pool-64-64-pool (padded by 1), "
                              "fc 3136-768-10"),
        BNNConfig("cnv-small", CNV_SMALL_SIZES, convs=CNV_SMALL,
                  description="small conv BNN for the iCEBreaker (68 Kbit of weights): 3x3 conv 16-32-pool-24-pool "
                              "(the first two padded by 1, the third valid), fc 864-64-10"),
    )
}


def get_config(name: str) -> BNNConfig:
    if name not in MODELS:
        raise FedxnorError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    return MODELS[name]


class BNN(nn.Module):
    def __init__(self, config: BNNConfig):
        super().__init__()
        self.config = config
        s = config.sizes
        geometry = config.conv_geometry() if config.convs else []
        self.convs = nn.ModuleList(BinaryConv2d(g.in_c, g.out_c, g.k, g.stride, g.pad, PIXEL_PAD if i == 0 else BINARY_PAD)
                                   for i, g in enumerate(geometry))
        self.conv_norms = nn.ModuleList(BatchNormSign2d(g.out_c) for g in geometry)
        self.pools = tuple(g.pool for g in geometry)
        self.hidden = nn.ModuleList(BinaryLinear(s[i], s[i + 1]) for i in range(len(s) - 2))
        self.norms = nn.ModuleList(BatchNormSign(s[i + 1]) for i in range(len(s) - 2))
        self.out = ScaledOutput(s[-2], s[-1])

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 samples -> float inputs of the first layer (integer-valued, exact): (n, C, H, W) for conv
        models, (n, H·W·C) in NHWC order otherwise."""
        x = images_to_nchw(images) if self.convs else images.reshape(images.shape[0], -1)
        if self.config.input_encoding == "pixels-binarized":
            return (x >= self.config.binarize_threshold).float()
        return x.float()

    def forward(self, images: torch.Tensor, return_activations: bool = False):
        """Scores; with return_activations also every hidden layer's ±1 output (conv and pool layers' maps
        NHWC-flattened), one per hidden layer of the integer network."""
        h = self.prepare(images)
        acts = []
        for conv, norm, pool in zip(self.convs, self.conv_norms, self.pools):
            if self.training and pool > 1 and not return_activations:  # sign is monotone: the same ±1 map, but the
                h = sign_ste(max_pool_signs(norm.pre_sign(conv(h)), pool))  # gradient reaches each window's max, not
                continue  # the first of its tied +1s (measured: lower loss from the first epoch)
            h = norm(conv(h))
            if return_activations:
                acts.append(nhwc_flatten(h))
            if pool > 1:
                h = max_pool_signs(h, pool)
                if return_activations:
                    acts.append(nhwc_flatten(h))
        if self.convs:
            h = nhwc_flatten(h)
        for lin, norm in zip(self.hidden, self.norms):
            h = norm(lin(h))
            acts.append(h)
        scores = self.out(h)
        return (scores, acts) if return_activations else scores

    def binary_linears(self) -> list[BinaryLinear]:
        return [*self.hidden, self.out.linear]

    def clip_latent(self) -> None:
        for layer in [*self.convs, *self.binary_linears()]:
            layer.clip_latent()

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch: int = 2000) -> np.ndarray:
        """Eval-mode classes, argmax with ties to the lowest index."""
        was = self.training
        self.eval()
        out = []
        for s in range(0, len(images), batch):
            scores = self(images[s : s + batch])
            out.append(torch.argmax(scores, dim=1))  # first maximal index
        self.train(was)
        return torch.cat(out).numpy().astype(np.int64)

    def to_int_network(self) -> IntNetwork:
        """Fold weights and BatchNorm into the integer network the hardware runs: per hidden neuron (or conv
        output channel) one threshold, rows inverted for negative BN scales, weights in the contract's order."""
        cfg = self.config
        layers: list[IntLayer] = []
        for i, (conv, norm, g) in enumerate(zip(self.convs, self.conv_norms, cfg.conv_geometry() if self.convs else [])):
            b, enc = cfg.first_input() if i == 0 else (1, "bipolar")
            specs = conv_block_specs(g, b, enc, i)
            layers.append(_folded(conv.weight_bits(), norm, specs[0], b, enc))
            if len(specs) > 1:
                layers.append(IntLayer(None, None, spec=specs[1]))
        for lin, norm in zip(self.hidden, self.norms):
            b, enc = cfg.first_input() if not layers else (1, "bipolar")
            layers.append(_folded(lin.weight_bits(), norm, Dense(lin.fan_in, lin.fan_out, b, enc), b, enc))
        bits = self.out.linear.weight_bits().numpy()
        b, enc = cfg.first_input() if not layers else (1, "bipolar")
        layers.append(IntLayer(bits, None, input_bits=b, encoding=enc))
        return IntNetwork(tuple(layers))

    def input_spec(self) -> dict:
        cfg = self.config
        spec = {"shape": list(cfg.input_shape), "encoding": cfg.input_encoding}
        if cfg.input_encoding == "pixels-binarized":
            spec["threshold"] = cfg.binarize_threshold
        return spec


def _folded(weight_bits: torch.Tensor, norm: BatchNormSign, spec, b: int, enc: str) -> IntLayer:
    """A hidden layer's IntLayer: BatchNorm + sign folded into one threshold per output (fold_thresholds),
    negative-scale rows inverted. The accumulator maps to the ±1 dot product x = k·acc + c: acc itself for
    unsigned inputs, 2·acc - K for ±1 inputs (K = the matrix width; padding is -1, so every column counts)."""
    bits = weight_bits.numpy().copy()
    acc_to_x = (1, 0) if enc == "unsigned" else (2, -int(bits.shape[1]))
    shift, scale, bias = (t.numpy() for t in norm.folded_affine())
    t, inv = fold_thresholds(shift, scale, bias, acc_to_x, spec.acc_range)
    bits[inv] ^= 1
    return IntLayer(bits, t, input_bits=b, encoding=enc, inverted=inv, spec=spec)


def shaped_config(config, input_shape: tuple[int, ...] | None = None, hidden: tuple[int, ...] = ()):
    """A named BNN or full-precision config for images of `input_shape` (its first dense layer's fan-in is their
    pixel count, or the NHWC flatten of its conv blocks' last map) and, if given, other hidden widths. A model on
    latent bits (hybnn-head) keeps its input."""
    shape = config.input_shape if config.input_encoding == "bits" or not input_shape else tuple(int(d) for d in input_shape)
    hidden = tuple(hidden) or config.sizes[1:-1]
    if config.convs:
        sizes = conv_sizes(shape, config.convs, hidden, config.sizes[-1])
    else:
        sizes = (math.prod(shape), *hidden, config.sizes[-1])
    if sizes == tuple(config.sizes) and shape == tuple(config.input_shape):
        return config
    desc = "-".join(str(s) for s in sizes) + f" ({' x '.join(map(str, shape))} input), from '{config.name}'"
    return replace(config, sizes=sizes, input_shape=shape, description=desc)


def model_config(name: str, input_shape: tuple[int, ...] | None = None, hidden: tuple[int, ...] = ()):
    """The BNN (models.MODELS) or full-precision (fpmodels.FP_MODELS) config `name`, shaped for the data."""
    from fedxnor.train.fpmodels import FP_MODELS

    if name not in MODELS and name not in FP_MODELS:
        raise FedxnorError(f"unknown model {name!r}: choose one of {', '.join([*MODELS, *FP_MODELS])}")
    return shaped_config(MODELS.get(name) or FP_MODELS[name], input_shape, hidden)


def build_model(name_or_config: str | BNNConfig) -> BNN:
    cfg = get_config(name_or_config) if isinstance(name_or_config, str) else name_or_config
    return BNN(cfg)
