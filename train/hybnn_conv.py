"""HyBNN's convolutional VAE (the HyBNN paper's encoder is convolutional).

Encoder: two 4x4 stride-2 convolutions with ReLU (C -> channels[0] -> channels[1], each halving H and W),
flattened, then one linear layer to the latent's Bernoulli logits. Decoder: the mirror image (linear to the
smallest map, two 4x4 stride-2 transposed convolutions). Images whose sides are not multiples of 4 are
padded with pixel 0 at the bottom and right first, and the reconstruction target is the padded image.
Small on purpose: the encoder runs on the host, one torch thread.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fedxnor.train.hybnn import LatentVAE, VAEConfig


def _hwc(shape: tuple[int, ...]) -> tuple[int, int, int]:
    return (shape[0], shape[1], shape[2] if len(shape) == 3 else 1)


class ConvBinaryVAE(LatentVAE):
    def __init__(self, config: VAEConfig):
        super().__init__()
        if len(config.input_shape) not in (2, 3) or len(config.channels) != 2:
            raise ValueError("a conv VAE needs input_shape (H, W[, C]) and two channel counts")
        self.config = config
        h, w, c = _hwc(config.input_shape)
        self.padded = (-(-h // 4) * 4, -(-w // 4) * 4)
        c1, c2 = config.channels
        self.map_shape = (c2, self.padded[0] // 4, self.padded[1] // 4)
        flat = c2 * self.map_shape[1] * self.map_shape[2]
        self.encoder = nn.Sequential(nn.Conv2d(c, c1, 4, 2, 1), nn.ReLU(), nn.Conv2d(c1, c2, 4, 2, 1), nn.ReLU(),
                                     nn.Flatten(), nn.Linear(flat, config.latent_bits))
        self.decoder_in = nn.Linear(config.latent_bits, flat)
        self.decoder = nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(c2, c1, 4, 2, 1), nn.ReLU(),
                                     nn.ConvTranspose2d(c1, c, 4, 2, 1))

    def _nchw(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (n, H, W[, C]) -> float (n, C, H', W') in [0, 1], zero-padded to multiples of 4."""
        x = images.float() / 255.0
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
        return F.pad(x, (0, self.padded[1] - x.shape[3], 0, self.padded[0] - x.shape[2]))

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(self._nchw(images))

    def target(self, images: torch.Tensor) -> torch.Tensor:
        return self._nchw(images).flatten(1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.decoder_in(z).reshape(-1, *self.map_shape)).flatten(1)
