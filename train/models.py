"""Named BNN model configurations and their integer export.

A BNN here is: first BinaryLinear on unsigned B-bit inputs (pixels used as the
integers 0..255, or bits), BatchNormSign, then bipolar BinaryLinear +
BatchNormSign blocks, and a ScaledOutput. Every pre-activation is an integer
(< 2^24, so exact in float32), which is what makes the export exact.
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
from fedxnor.train.layers import BatchNormSign, BinaryLinear, ScaledOutput


@dataclass(frozen=True)
class BNNConfig:
    """Shape of a BNN MLP. input_encoding: 'pixels' (B-bit unsigned), 'pixels-binarized'
    (bit = pixel >= binarize_threshold) or 'bits' (already 0/1, e.g. a binary latent)."""

    name: str
    sizes: tuple[int, ...]  # fan-in of layer 0, hidden widths..., classes
    input_bits: int = 8
    input_encoding: str = "pixels"
    binarize_threshold: int = 128
    input_shape: tuple[int, ...] = (28, 28)
    description: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def layer_specs(self) -> list[Dense]:
        """The integer layers this model exports to (fedxnor.contract), for planning before training."""
        s, pixels = self.sizes, self.input_encoding == "pixels"
        return [Dense(s[i], s[i + 1], self.input_bits if i == 0 and pixels else 1,
                      "unsigned" if i == 0 and pixels else "bipolar", i == len(s) - 2, f"fc{i}") for i in range(len(s) - 1)]


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
                  description="HyBNN head: 200-bit binary VAE latent -> 128 -> 10"),
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
        self.hidden = nn.ModuleList(BinaryLinear(s[i], s[i + 1]) for i in range(len(s) - 2))
        self.norms = nn.ModuleList(BatchNormSign(s[i + 1]) for i in range(len(s) - 2))
        self.out = ScaledOutput(s[-2], s[-1])

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 samples -> float inputs of the first layer (integer-valued, exact)."""
        x = images.reshape(images.shape[0], -1)
        if self.config.input_encoding == "pixels-binarized":
            return (x >= self.config.binarize_threshold).float()
        return x.float()

    def forward(self, images: torch.Tensor, return_activations: bool = False):
        h = self.prepare(images)
        acts = []
        for lin, norm in zip(self.hidden, self.norms):
            h = norm(lin(h))
            acts.append(h)
        scores = self.out(h)
        return (scores, acts) if return_activations else scores

    def binary_linears(self) -> list[BinaryLinear]:
        return [*self.hidden, self.out.linear]

    def clip_latent(self) -> None:
        for lin in self.binary_linears():
            lin.clip_latent()

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
        """Fold weights and BatchNorm into the integer network the hardware runs."""
        cfg = self.config
        layers = []
        for i, (lin, norm) in enumerate(zip(self.hidden, self.norms)):
            bits = lin.weight_bits().numpy().copy()
            if i == 0 and cfg.input_encoding == "pixels":
                enc, b, acc_to_x = "unsigned", cfg.input_bits, (1, 0)
            elif i == 0:
                enc, b, acc_to_x = "unsigned", 1, (1, 0)
            else:
                enc, b, acc_to_x = "bipolar", 1, (2, -lin.fan_in)
            probe = IntLayer(bits, None, input_bits=b, encoding=enc)
            shift, scale, bias = (t.numpy() for t in norm.folded_affine())
            t, inv = fold_thresholds(shift, scale, bias, acc_to_x, probe.acc_range)
            bits[inv] ^= 1
            layers.append(IntLayer(bits, t, input_bits=b, encoding=enc, inverted=inv))
        bits = self.out.linear.weight_bits().numpy()
        if not self.hidden:
            enc = "unsigned"
            b = cfg.input_bits if cfg.input_encoding == "pixels" else 1
        else:
            enc, b = "bipolar", 1
        layers.append(IntLayer(bits, None, input_bits=b, encoding=enc))
        return IntNetwork(tuple(layers))

    def input_spec(self) -> dict:
        cfg = self.config
        spec = {"shape": list(cfg.input_shape), "encoding": cfg.input_encoding}
        if cfg.input_encoding == "pixels-binarized":
            spec["threshold"] = cfg.binarize_threshold
        return spec


def shaped_config(config, input_shape: tuple[int, ...] | None = None, hidden: tuple[int, ...] = ()):
    """A named BNN or full-precision config for images of `input_shape` (its first layer's fan-in is their
    pixel count) and, if given, other hidden widths. A model on latent bits (hybnn-head) keeps its input."""
    shape = config.input_shape if config.input_encoding == "bits" or not input_shape else tuple(int(d) for d in input_shape)
    sizes = (math.prod(shape), *(tuple(hidden) or config.sizes[1:-1]), config.sizes[-1])
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
