"""Central training's augmentation (train/central.py augment_batch): every output image is its input moved by at
most `shift` pixels with zero fill, possibly mirrored left-right; channels travel together; pixels stay uint8."""

from __future__ import annotations

import numpy as np
import torch

from fedxnor.train.central import augment_batch


def _candidates(img: np.ndarray, shift: int) -> list[np.ndarray]:
    h, w = img.shape[:2]
    pad = ((shift, shift), (shift, shift)) + ((0, 0),) * (img.ndim - 2)
    p = np.pad(img, pad)
    out = []
    for dy in range(2 * shift + 1):
        for dx in range(2 * shift + 1):
            crop = p[dy:dy + h, dx:dx + w]
            out.append(crop)
            out.append(p[dy:dy + h, :][:, ::-1][:, 2 * shift - dx:2 * shift - dx + w])
    return out


def test_shifted_or_mirrored_copies_only():
    gen = torch.Generator().manual_seed(3)
    for shape in ((40, 7, 6), (40, 5, 8, 3)):
        x = torch.randint(1, 256, shape, dtype=torch.uint8, generator=gen)
        y = augment_batch(x, 2, gen)
        assert y.shape == x.shape and y.dtype == torch.uint8
        flips = 0
        for a, b in zip(x.numpy(), y.numpy()):
            cands = _candidates(a, 2)
            hits = [i for i, c in enumerate(cands) if np.array_equal(c, b)]
            assert hits, "not a shifted (mirrored) copy"
            flips += all(i % 2 for i in hits)
        assert 0 < flips < len(x)  # both kinds occur
