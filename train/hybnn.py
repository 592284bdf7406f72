"""HyBNN's front end: a VAE with a 200-bit binary latent whose frozen encoder feeds a BNN head.

The VAE (pixels -> 512 -> 200 Bernoulli logits -> 512 -> pixels; 784 pixels for 28 x 28 images) is trained without labels
on data the clients never see (a held-out part of the training set), with
straight-through Bernoulli sampling of the latent bits and a KL term to a
Bernoulli(1/2) prior. Frozen, its encoder is deterministic: bit = (logit >= 0).
The encoder is float and runs on the host; the FPGA runs the BNN head, whose
input is the 200 bits (input_encoding 'bits', B = 1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fedxnor.progress import log, track


@dataclass(frozen=True)
class VAEConfig:
    input_size: int = 784
    hidden: int = 512
    latent_bits: int = 200
    kl_weight: float = 0.01  # well below 1: more informative deterministic bits (central head: 0.79 vs 0.75 at 1.0)

    def to_dict(self) -> dict:
        return asdict(self)


class BinaryVAE(nn.Module):
    def __init__(self, config: VAEConfig = VAEConfig()):
        super().__init__()
        self.config = config
        c = config
        self.encoder = nn.Sequential(nn.Linear(c.input_size, c.hidden), nn.ReLU(), nn.Linear(c.hidden, c.latent_bits))
        self.decoder = nn.Sequential(nn.Linear(c.latent_bits, c.hidden), nn.ReLU(), nn.Linear(c.hidden, c.input_size))

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images.reshape(images.shape[0], -1).float() / 255.0)

    def loss(self, images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        logits = self.logits(images)
        p = torch.sigmoid(logits)
        z_hard = (torch.rand(p.shape, generator=gen) < p).float()
        z = z_hard + p - p.detach()  # straight-through Bernoulli sample
        target = images.reshape(images.shape[0], -1).float() / 255.0
        rec = F.binary_cross_entropy_with_logits(self.decoder(z), target, reduction="sum") / len(images)
        eps = 1e-6
        kl = (p * torch.log(2 * p + eps) + (1 - p) * torch.log(2 * (1 - p) + eps)).sum() / len(images)
        return rec + self.config.kl_weight * kl

    @torch.no_grad()
    def encode_bits(self, images: np.ndarray | torch.Tensor, batch: int = 2000) -> np.ndarray:
        """Deterministic encoder: (n, 200) uint8 bits, 1 where the logit >= 0."""
        was = self.training
        self.eval()
        x = torch.as_tensor(images)
        out = [(self.logits(x[s : s + batch]) >= 0).to(torch.uint8) for s in range(0, len(x), batch)]
        self.train(was)
        return torch.cat(out).numpy() if out else np.zeros((0, self.config.latent_bits), np.uint8)


def train_vae(images: np.ndarray, seed: int, epochs: int = 10, batch: int = 128, lr: float = 1e-3,
              config: VAEConfig | None = None, progress: bool = True) -> BinaryVAE:
    """Unsupervised training on `images` (labels unused), seeded; the input size comes from the images."""
    config = config or VAEConfig(input_size=int(np.prod(images.shape[1:])))
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    vae = BinaryVAE(config)
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
    vae.eval()
    for p in vae.parameters():
        p.requires_grad_(False)
    return vae


def vae_to_blob(vae: BinaryVAE) -> dict:
    return {"kind": "binary-vae", "config": vae.config.to_dict(), "state_dict": vae.state_dict()}


def vae_from_blob(blob: dict) -> BinaryVAE:
    vae = BinaryVAE(VAEConfig(**blob["config"]))
    vae.load_state_dict(blob["state_dict"])
    vae.eval()
    return vae


def read_vae_cache(path, key: str, input_size: int) -> BinaryVAE | None:
    """A run directory's cached VAE (vae.pt) if it was trained with `key` on images of input_size pixels;
    None for a stale, truncated or foreign file (the VAE is then retrained: it is deterministic)."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if blob.get("key") == key and blob["config"].get("input_size") == input_size:
            return vae_from_blob(blob)
    except Exception:  # torch raises many types for a broken file; a cache is never worth a failed run
        pass
    return None
