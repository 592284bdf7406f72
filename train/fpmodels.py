"""Full-precision baselines with the same shapes as the BNN models (for FedAvg/FedBAT comparisons).

'fp-mlp' is 784-256-256-10 like 'mlp': Linear + BatchNorm + ReLU blocks on pixels / 255. The conv twins
('fp-cnv-fmnist', 'fp-cnv-small') have their BNN's conv blocks as Conv2d + BatchNorm2d + ReLU (+ max-pool),
flattened in NHWC order like the BNN.
These checkpoints cannot be exported: the FPGA runs only BNNs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fedxnor.train.conv_layers import images_to_nchw, nhwc_flatten
from fedxnor.train.conv_shapes import CNV_FMNIST, CNV_FMNIST_SIZES, CNV_SMALL, CNV_SMALL_SIZES, conv_geometry


@dataclass(frozen=True)
class FPConfig:
    name: str
    sizes: tuple[int, ...]
    input_shape: tuple[int, ...] = (28, 28)
    input_encoding: str = "pixels"  # pixels (scaled to [0, 1]) or bits
    description: str = ""
    convs: tuple[tuple[int, int, int, int, int], ...] = ()  # (out_c, k, stride, pad, pool) as in BNNConfig

    def to_dict(self) -> dict:
        return asdict(self)

    def conv_geometry(self):
        return conv_geometry(self.input_shape, self.convs)


FP_MODELS: dict[str, FPConfig] = {
    c.name: c
    for c in (
        FPConfig("fp-mlp", (784, 256, 256, 10), description="full-precision twin of 'mlp'"),
        FPConfig("fp-mlp-small", (784, 64, 64, 10), description="full-precision twin of 'mlp-small'"),
        FPConfig("fp-sfc", (784, 256, 256, 256, 10), description="full-precision twin of 'sfc'"),
        FPConfig("fp-hybnn-head", (200, 128, 10), input_shape=(200,), input_encoding="bits",
                 description="full-precision twin of 'hybnn-head'"),
        FPConfig("fp-cnv-fmnist", CNV_FMNIST_SIZES, convs=CNV_FMNIST, description="full-precision twin of 'cnv-fmnist'"),
        FPConfig("fp-cnv-small", CNV_SMALL_SIZES, convs=CNV_SMALL, description="full-precision twin of 'cnv-small'"),
    )
}


class FPMLP(nn.Module):
    """A full-precision MLP, or a conv net when the config has conv blocks."""

    def __init__(self, config: FPConfig):
        super().__init__()
        self.config = config
        s = config.sizes
        geometry = config.conv_geometry() if config.convs else []
        self.convs = nn.ModuleList(nn.Conv2d(g.in_c, g.out_c, g.k, g.stride, g.pad, bias=False) for g in geometry)
        self.conv_norms = nn.ModuleList(nn.BatchNorm2d(g.out_c) for g in geometry)
        self.pools = tuple(g.pool for g in geometry)
        self.hidden = nn.ModuleList(nn.Linear(s[i], s[i + 1]) for i in range(len(s) - 2))
        self.norms = nn.ModuleList(nn.BatchNorm1d(s[i + 1]) for i in range(len(s) - 2))
        self.out = nn.Linear(s[-2], s[-1])

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        x = images_to_nchw(images) if self.convs else images.reshape(images.shape[0], -1).float()
        return x / 255.0 if self.config.input_encoding == "pixels" else x

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h = self.prepare(images)
        for conv, norm, pool in zip(self.convs, self.conv_norms, self.pools):
            h = torch.relu(norm(conv(h)))
            if pool > 1:
                h = F.max_pool2d(h, pool, stride=pool)
        if self.convs:
            h = nhwc_flatten(h)
        for lin, norm in zip(self.hidden, self.norms):
            h = torch.relu(norm(lin(h)))
        return self.out(h)

    def clip_latent(self) -> None:  # the BNN interface; nothing to clip
        pass

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch: int = 2000) -> np.ndarray:
        was = self.training
        self.eval()
        out = [torch.argmax(self(images[s : s + batch]), dim=1) for s in range(0, len(images), batch)]
        self.train(was)
        return torch.cat(out).numpy().astype(np.int64)
