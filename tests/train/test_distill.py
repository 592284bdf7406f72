"""Knowledge distillation (train/distill.py): the loss's two terms, the frozen teacher, and that the teacher's
shape is the BNN's, so distilling changes training only."""

import torch
import torch.nn.functional as F

from fedxnor.train.central import train_epoch
from fedxnor.train.distill import Distillation, build_teacher, frozen
from fedxnor.train.models import MODELS, build_model


def _images(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8), torch.randint(0, 10, (n,), generator=g)


def test_teacher_is_the_full_precision_twin_of_the_bnn_shape():
    cfg = MODELS["cnv-small"]
    teacher = build_teacher(cfg)
    assert teacher.config.sizes == cfg.sizes and teacher.config.convs == cfg.convs
    images, _ = _images()
    assert teacher(images).shape == build_model(cfg)(images).shape == (16, 10)


def test_weight_zero_is_cross_entropy_and_weight_one_is_the_scaled_kl():
    torch.manual_seed(0)
    teacher = frozen(build_teacher(MODELS["mlp-small"]))
    images, labels = _images()
    scores = torch.randn(16, 10)
    ce = F.cross_entropy(scores, labels)
    assert torch.equal(Distillation(teacher, weight=0.0).loss(scores, images, labels), ce)
    t = 3.0
    kl = F.kl_div(F.log_softmax(scores / t, 1), F.log_softmax(teacher(images) / t, 1), log_target=True,
                  reduction="batchmean") * t * t
    assert torch.allclose(Distillation(teacher, weight=1.0, temperature=t).loss(scores, images, labels), kl)
    same = teacher(images)  # a student that already matches its teacher: no distillation loss
    assert Distillation(teacher, weight=1.0, temperature=t).loss(same, images, labels).abs() < 1e-5


def test_training_with_a_teacher_moves_the_student_only():
    torch.manual_seed(1)
    teacher = frozen(build_teacher(MODELS["mlp-small"]))
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = build_model(MODELS["mlp-small"])
    w0 = student.hidden[0].weight.detach().clone()
    images, labels = _images(64)
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    loss = train_epoch(student, opt, images, labels, 32, torch.Generator().manual_seed(0), progress=False,
                       distill=Distillation(teacher))
    assert loss > 0 and not torch.equal(w0, student.hidden[0].weight)
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert not any(p.requires_grad for p in teacher.parameters())
