"""HyBNN's front end: a VAE with a binary latent whose frozen encoder feeds a BNN head.

Two encoders (VAEConfig.arch): 'mlp' (pixels -> 512 -> latent Bernoulli logits -> 512 -> pixels, the first
one, kept so old results reproduce) and 'conv' (train/hybnn_conv.py: two stride-2 convolutions, as the HyBNN
paper's encoder is convolutional). Either is trained without labels on data the clients never see (a
held-out part of the training set), with straight-through Bernoulli sampling of the latent bits and a KL
term to a Bernoulli(1/2) prior. Frozen, its encoder is deterministic: bit = (logit >= 0). The encoder is
float and runs on the host; the FPGA runs the BNN head, whose input is the latent_bits bits
(input_encoding 'bits', B = 1).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fedxnor.errors import FedxnorError
from fedxnor.progress import log, track

VAE_ARCHS = ("mlp", "conv")


@dataclass(frozen=True)
class VAEConfig:
    input_size: int = 784
    hidden: int = 512  # mlp: the hidden width of encoder and decoder
    latent_bits: int = 200
    kl_weight: float = 0.01  # well below 1: more informative deterministic bits (central head: 0.79 vs 0.75 at 1.0)
    arch: str = "mlp"  # 'mlp' or 'conv' (train/hybnn_conv.py)
    input_shape: tuple[int, ...] = ()  # conv: (H, W) or (H, W, C) of the images; () for mlp
    channels: tuple[int, ...] = (32, 64)  # conv: the two stride-2 convolutions' output channels

    def __post_init__(self):
        if self.arch not in VAE_ARCHS:
            raise FedxnorError(f"VAE arch {self.arch!r}: choose one of {', '.join(VAE_ARCHS)}")
        if not 1 <= self.latent_bits <= 4096:
            raise FedxnorError(f"VAE latent bits {self.latent_bits}: give an integer in 1..4096, e.g. 256")
        if not (math.isfinite(self.kl_weight) and 0 <= self.kl_weight <= 100):
            raise FedxnorError(f"VAE kl_weight {self.kl_weight}: give a finite number in [0, 100], e.g. 0.01")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_shape"], d["channels"] = list(self.input_shape), list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> VAEConfig:
        d = dict(d)
        for key in ("input_shape", "channels"):
            if key in d:
                d[key] = tuple(int(v) for v in d[key])
        return cls(**d)


class LatentVAE(nn.Module):
    """What every binary-latent VAE shares: the loss and the deterministic encoder. A subclass gives
    logits(uint8 images) -> (n, latent_bits) and decode(z) -> reconstruction logits shaped like target(images)."""

    config: VAEConfig

    def target(self, images: torch.Tensor) -> torch.Tensor:
        return images.reshape(images.shape[0], -1).float() / 255.0

    def loss(self, images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        logits = self.logits(images)
        p = torch.sigmoid(logits)
        z_hard = (torch.rand(p.shape, generator=gen) < p).float()
        z = z_hard + p - p.detach()  # straight-through Bernoulli sample
        rec = F.binary_cross_entropy_with_logits(self.decode(z), self.target(images), reduction="sum") / len(images)
        eps = 1e-6
        kl = (p * torch.log(2 * p + eps) + (1 - p) * torch.log(2 * (1 - p) + eps)).sum() / len(images)
        return rec + self.config.kl_weight * kl

    @torch.no_grad()
    def reconstruction_error(self, images: np.ndarray | torch.Tensor, batch: int = 1000) -> float:
        """Mean squared error per pixel (pixels in [0, 1]) of decoding the deterministic bits."""
        x = torch.as_tensor(images)
        total = 0.0
        for s in range(0, len(x), batch):
            xb = x[s : s + batch]
            z = (self.logits(xb) >= 0).float()
            total += float(((torch.sigmoid(self.decode(z)) - self.target(xb)) ** 2).mean(dim=1).sum())
        return total / max(len(x), 1)

    @torch.no_grad()
    def encode_bits(self, images: np.ndarray | torch.Tensor, batch: int = 2000) -> np.ndarray:
        """Deterministic encoder: (n, latent_bits) uint8 bits, 1 where the logit >= 0."""
        was = self.training
        self.eval()
        x = torch.as_tensor(images)
        out = [(self.logits(x[s : s + batch]) >= 0).to(torch.uint8) for s in range(0, len(x), batch)]
        self.train(was)
        return torch.cat(out).numpy() if out else np.zeros((0, self.config.latent_bits), np.uint8)


class BinaryVAE(LatentVAE):
    """The MLP VAE: pixels -> hidden -> latent logits -> hidden -> pixels."""

    def __init__(self, config: VAEConfig = VAEConfig()):
        super().__init__()
        self.config = config
        c = config
        self.encoder = nn.Sequential(nn.Linear(c.input_size, c.hidden), nn.ReLU(), nn.Linear(c.hidden, c.latent_bits))
        self.decoder = nn.Sequential(nn.Linear(c.latent_bits, c.hidden), nn.ReLU(), nn.Linear(c.hidden, c.input_size))

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images.reshape(images.shape[0], -1).float() / 255.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)


def make_vae(config: VAEConfig) -> LatentVAE:
    if config.arch == "conv":
        from fedxnor.train.hybnn_conv import ConvBinaryVAE

        return ConvBinaryVAE(config)
    return BinaryVAE(config)


def vae_config_for(images: np.ndarray, arch: str = "mlp", latent_bits: int = 200, kl_weight: float = 0.01,
                   channels: tuple[int, ...] = (32, 64)) -> VAEConfig:
    """The VAE config for images of this shape (the input size and, for conv, the image shape)."""
    shape = tuple(int(d) for d in images.shape[1:])
    return VAEConfig(input_size=int(np.prod(shape)), latent_bits=latent_bits, kl_weight=kl_weight, arch=arch,
                     input_shape=shape if arch == "conv" else (), channels=tuple(channels))


def train_vae(images: np.ndarray, seed: int, epochs: int = 10, batch: int = 128, lr: float = 1e-3,
              config: VAEConfig | None = None, progress: bool = True) -> LatentVAE:
    """Unsupervised training on `images` (labels unused), seeded; frozen on return (no parameter needs a gradient)."""
    config = config or vae_config_for(images)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    vae = make_vae(config)
    opt = torch.optim.Adam(vae.parameters(), lr=lr)
    x = torch.from_numpy(np.ascontiguousarray(images))
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for s in track(range(0, len(x), batch), f"VAE epoch {epoch + 1}/{epochs}", enabled=progress):
            loss = vae.loss(x[order[s : s + batch]], gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(order[s : s + batch])
        if progress:
            log(f"VAE epoch {epoch + 1}/{epochs}: loss {total / len(x):.2f}")
    return freeze(vae)


def freeze(vae: LatentVAE) -> LatentVAE:
    vae.eval()
    for p in vae.parameters():
        p.requires_grad_(False)
    return vae


def vae_to_blob(vae: LatentVAE) -> dict:
    return {"kind": "binary-vae", "config": vae.config.to_dict(), "state_dict": vae.state_dict()}


def vae_from_blob(blob: dict) -> LatentVAE:
    vae = make_vae(VAEConfig.from_dict(blob["config"]))  # a blob without 'arch' is the MLP VAE
    vae.load_state_dict(blob["state_dict"])
    return freeze(vae)


def read_vae_cache(path, key: str, input_size: int) -> LatentVAE | None:
    """A run directory's cached VAE (vae.pt) if it was trained with `key` on images of input_size pixels;
    None for a stale, truncated or foreign file (the VAE is then retrained: it is deterministic)."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if blob.get("key") == key and blob["config"].get("input_size") == input_size:
            return vae_from_blob(blob)
    except Exception:  # torch raises many types for a broken file; a cache is never worth a failed run
        pass
    return None
