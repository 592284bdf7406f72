"""Centralized training of a BNN: the baseline and the quickest way to a checkpoint."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fedxnor.atomic import write_text_atomic
from fedxnor.datasets import Dataset, load_pair
from fedxnor.errors import FedxnorError
from fedxnor.progress import log, track
from fedxnor.train.checkpoint import save_checkpoint
from fedxnor.train.models import BNN, MODELS, build_model, shaped_config


@dataclass(frozen=True)
class CentralConfig:
    model: str = "mlp"
    epochs: int = 8
    seed: int = 0
    batch: int = 100
    lr: float = 5e-3
    train_limit: int | None = None  # first N training samples (for quick tests)
    test_limit: int | None = None
    hidden: tuple[int, ...] = ()  # hidden widths (() = the named model's)
    augment: int = 0  # > 0: each training image shifted by up to this many pixels (zero fill) and mirrored at random
    label_smoothing: float = 0.0  # cross-entropy toward (1 - e) on the label and e / classes on every class
    bn_reestimate: bool = True  # last step: BatchNorm statistics of the final weights (reestimate_batchnorm)


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    return torch.Generator().manual_seed(seed)


def evaluate(model: BNN, data: Dataset) -> float:
    pred = model.predict(torch.from_numpy(data.images))
    return float((pred == data.labels).mean())


def augment_batch(images: torch.Tensor, shift: int, gen: torch.Generator) -> torch.Tensor:
    """uint8 images (n, H, W[, C]) each moved by a random (dy, dx) in [-shift, shift] (zero fill) and mirrored
    left-right with probability 1/2: the pixels stay integers, so the first layer's sums stay exact."""
    n, h, w = images.shape[:3]
    pad = [0, 0] * (images.ndim - 3) + [shift, shift, shift, shift]
    padded = torch.nn.functional.pad(images, pad)
    dy, dx = torch.randint(0, 2 * shift + 1, (2, n), generator=gen)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]
    cols = dx[:, None] + torch.arange(w)
    flip = torch.rand(n, generator=gen) < 0.5
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, :]
    return padded[torch.arange(n)[:, None, None], rows, cols]


def train_epoch(model: BNN, opt: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor,
                batch: int, gen: torch.Generator, desc: str = "epoch", progress: bool = True, augment: int = 0,
                label_smoothing: float = 0.0, distill=None) -> float:
    """One pass over the images in random order; with distill (train/distill.py Distillation) the loss also
    follows a teacher's softened scores on the same (augmented) batch."""
    model.train()
    order = torch.randperm(len(labels), generator=gen)
    total = 0.0
    steps = range(0, len(order), batch)
    for s in track(steps, desc, total=len(steps), enabled=progress):
        idx = order[s : s + batch]
        if len(idx) < 2:  # BatchNorm needs two samples
            continue
        x = augment_batch(images[idx], augment, gen) if augment else images[idx]
        scores = model(x)
        loss = (distill.loss(scores, x, labels[idx], label_smoothing) if distill
                else F.cross_entropy(scores, labels[idx], label_smoothing=label_smoothing))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.clip_latent()
        total += loss.item() * len(idx)
    return total / len(order)


@torch.no_grad()
def reestimate_batchnorm(model: torch.nn.Module, images: torch.Tensor, batch: int = 1000) -> None:
    """Replace every BatchNorm's running mean and variance by their average over one pass of `images` in train
    mode (momentum None = cumulative average), weights untouched. The running averages of training trail
    weights that kept moving (and sign flips make each layer's input drift); eval and the export fold these
    statistics, so this only changes which thresholds get folded, never the exactness of the export.
    Large batches: each layer then sees inputs close to what the earlier layers give in eval."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if len(images) < 2:
        return
    momenta = [bn.momentum for bn in norms]
    was = model.training
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    try:
        for s in range(0, len(images), batch):
            if len(images) - s >= 2:  # BatchNorm needs two samples
                model(images[s : s + batch])
    finally:
        for bn, m in zip(norms, momenta):
            bn.momentum = m
        model.train(was)


def central_model_config(name: str, image_shape: tuple[int, ...], hidden: tuple[int, ...] = ()):
    """The BNN that central training builds for images of image_shape (its input size comes from the data)."""
    if name not in MODELS:
        raise FedxnorError(f"central training takes a BNN model ({', '.join(m for m in MODELS if m != 'hybnn-head')}), "
                           f"not {name}")
    if MODELS[name].input_encoding == "bits":
        raise FedxnorError(f"{name} takes a VAE's latent bits, not images: train it with --algo fedhybnn")
    return shaped_config(MODELS[name], image_shape, hidden)


def train_central(cfg: CentralConfig, out_dir: Path, data_dir: Path | None = None, progress: bool = True) -> Path:
    """Train, write checkpoint.pt and metrics.json into out_dir, return the checkpoint path."""
    out_dir = Path(out_dir)
    train, test = load_pair(data_dir)
    train, test = train.take(cfg.train_limit), test.take(cfg.test_limit)
    model_cfg = central_model_config(cfg.model, train.image_shape, cfg.hidden)
    gen = seed_everything(cfg.seed)
    model = build_model(model_cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs))
    images, labels = torch.from_numpy(train.images), torch.from_numpy(train.labels)
    history = []
    t0 = time.monotonic()
    for epoch in range(cfg.epochs):
        loss = train_epoch(model, opt, images, labels, cfg.batch, gen, f"epoch {epoch + 1}/{cfg.epochs}", progress,
                           cfg.augment, cfg.label_smoothing)
        sched.step()
        acc = evaluate(model, test)
        history.append({"epoch": epoch + 1, "loss": loss, "test_accuracy": acc})
        if progress:
            log(f"epoch {epoch + 1}/{cfg.epochs}: loss {loss:.4f}, test accuracy {acc:.4f}")
    final, before = (history[-1]["test_accuracy"] if history else evaluate(model, test)), None
    if cfg.bn_reestimate and history:  # history keeps the running statistics' accuracies
        before = final
        reestimate_batchnorm(model, images)
        final = evaluate(model, test)
        if progress:
            log(f"BatchNorm statistics re-estimated: test accuracy {before:.4f} -> {final:.4f}")
    meta = {"algo": "central", "model": cfg.model, "sizes": list(model_cfg.sizes), "input_shape": list(train.image_shape),
            "seed": cfg.seed, "epochs": cfg.epochs, "lr": cfg.lr,
            "batch": cfg.batch, "test_accuracy": final,
            "data_dir": str(data_dir) if data_dir else None, "train_samples": len(train),
            "seconds": round(time.monotonic() - t0, 1), "accuracy_before_bn_reestimate": before}
    ckpt = save_checkpoint(out_dir / "checkpoint.pt", model, meta)
    write_text_atomic(out_dir / "metrics.json", json.dumps({"meta": meta, "history": history}, indent=1) + "\n")
    return ckpt
