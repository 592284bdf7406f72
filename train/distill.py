"""Knowledge distillation for central BNN training: a full-precision twin of the BNN's shape (train/fpmodels.py)
is trained first, then the BNN learns from the twin's softened scores as well as from the labels (Hinton et al.
2015; ReActNet and Real-to-Binary train BNNs this way). Only the training loss changes: the BNN's forward, and
so its export and the integer contract, are the same."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fedxnor.train.fpmodels import FPMLP, FPConfig


@dataclass(frozen=True)
class Distillation:
    """loss = (1 - weight) * cross-entropy(labels) + weight * T^2 * KL(teacher_T || student_T), scores / T."""

    teacher: torch.nn.Module
    weight: float = 0.9
    temperature: float = 4.0

    def loss(self, scores: torch.Tensor, images: torch.Tensor, labels: torch.Tensor,
             label_smoothing: float = 0.0) -> torch.Tensor:
        with torch.no_grad():
            target = F.log_softmax(self.teacher(images) / self.temperature, dim=1)
        t = self.temperature
        kl = F.kl_div(F.log_softmax(scores / t, dim=1), target, log_target=True, reduction="batchmean") * t * t
        ce = F.cross_entropy(scores, labels, label_smoothing=label_smoothing)
        return (1 - self.weight) * ce + self.weight * kl


def twin_config(bnn_config) -> FPConfig:
    """The full-precision twin of a BNN config (conv blocks, dense sizes, input shape): the teacher."""
    return FPConfig(f"fp-{bnn_config.name}", tuple(bnn_config.sizes), input_shape=tuple(bnn_config.input_shape),
                    convs=tuple(bnn_config.convs), description=f"full-precision twin of {bnn_config.name!r}")


def build_teacher(bnn_config) -> FPMLP:
    return FPMLP(twin_config(bnn_config))


def frozen(teacher: torch.nn.Module) -> torch.nn.Module:
    """The teacher in eval mode (BatchNorm's running statistics) with no gradients."""
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher
