"""Tutorial: a CNV-shaped Brevitas 1W1A conv net (bnn_pynq's CNV layout, smaller), exported as QONNX for `fedxnor import`.

    python docs/tutorial/brevitas_cnv.py --out runs/brevitas_cnv/model.onnx         # a few minutes on one core
    fedxnor import runs/brevitas_cnv/model.onnx --out runs/brevitas_cnv/export       # exact, proven against qonnx

bnn_pynq's CNV (brevitas_examples.bnn_pynq.models.CNV), layer for layer: the input pixel/255 becomes 2x - 1 and goes through
an 8-bit signed QuantIdentity (Q1.7: scale 2^-7, min -1, max 1 - 2^-7, not narrow, rounding to nearest); then per conv
block a 1-bit QuantConv2d (3x3, no padding, no bias), BatchNorm2d and a 1-bit QuantIdentity, a 2x2 MaxPool after the
activation of every second block; the map is flattened (NCHW, as torch's view does), then 1-bit QuantLinear + BatchNorm1d
+ 1-bit QuantIdentity layers, and a last QuantLinear followed by a TensorNorm. The quantizers are bnn_pynq's own
(CommonActQuant, CommonWeightQuant). Channels and widths are parameters: CNV's are (64, 64, 128, 128, 256, 256) on
32x32x3 CIFAR-10 images; the defaults here, (16, 16, 32, 32) then 128, fit 28x28 Fashion-MNIST and one CPU core.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from brevitas.core.restrict_val import RestrictValueType
from brevitas.export import export_qonnx
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
from brevitas_examples.bnn_pynq.models.common import CommonActQuant, CommonWeightQuant
from brevitas_examples.bnn_pynq.models.tensor_norm import TensorNorm
from torch import nn

from fedxnor.datasets import load_split


class SmallCNV(nn.Module):
    """(H, W, C) images -> conv blocks (channels, a pool after every second) -> dense hidden layers -> classes."""

    def __init__(self, shape=(28, 28, 1), channels=(16, 16, 32, 32), hidden=(128,), classes: int = 10, pad: int = 0):
        super().__init__()
        h, w, c = shape
        self.input_quant = QuantIdentity(act_quant=CommonActQuant, bit_width=8, min_val=-1.0, max_val=1.0 - 2.0 ** -7,
                                         narrow_range=False, restrict_scaling_type=RestrictValueType.POWER_OF_TWO)
        convs = []
        for i, out_c in enumerate(channels):
            convs += [QuantConv2d(c, out_c, 3, padding=pad, bias=False, weight_quant=CommonWeightQuant, weight_bit_width=1),
                      nn.BatchNorm2d(out_c, eps=1e-4), QuantIdentity(act_quant=CommonActQuant, bit_width=1)]
            c, h, w = out_c, h + 2 * pad - 2, w + 2 * pad - 2
            if i % 2 == 1:
                convs.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
        self.conv_features = nn.Sequential(*convs)
        dense, n = [], c * h * w
        for m in hidden:
            dense += [QuantLinear(n, m, bias=False, weight_quant=CommonWeightQuant, weight_bit_width=1),
                      nn.BatchNorm1d(m, eps=1e-4), QuantIdentity(act_quant=CommonActQuant, bit_width=1)]
            n = m
        dense += [QuantLinear(n, classes, bias=False, weight_quant=CommonWeightQuant, weight_bit_width=1), TensorNorm()]
        self.linear_features = nn.Sequential(*dense)
        self.shape = tuple(shape)
        for mod in self.modules():
            if isinstance(mod, (QuantConv2d, QuantLinear)):
                nn.init.uniform_(mod.weight.data, -1, 1)  # as bnn_pynq's CNV

    def forward(self, x):
        x = 2.0 * x - torch.tensor([1.0])  # bnn_pynq: pixel/255 in [0, 1] -> [-1, 1]
        x = self.conv_features(self.input_quant(x))
        return self.linear_features(x.view(x.shape[0], -1))  # NCHW flatten, as bnn_pynq


def pixels_to_input(images: np.ndarray) -> torch.Tensor:
    """Dataset pixels (N, H, W[, C], uint8, channels last) -> pixel/255 as float32 NCHW (torchvision's ToTensor)."""
    x = torch.from_numpy(images.astype(np.float32)).div(255.0)
    return (x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)).contiguous()


def train(model: SmallCNV, epochs: int = 1, train_images: int | None = None, seed: int = 0, lr: float = 0.01,
          batch: int = 100, data_dir=None, deadline: float | None = None, log=print) -> SmallCNV:
    """Adam with a cosine decay to 0 and bnn_pynq's weight clipping; stops early at `deadline` (time.time())."""
    torch.manual_seed(seed)
    data = load_split("train", data_dir).take(train_images)
    x, y = pixels_to_input(data.images), torch.from_numpy(data.labels.astype(np.int64))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * -(-len(x) // batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    latent = [m.weight for m in model.modules() if isinstance(m, (QuantConv2d, QuantLinear))]
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        for s in range(0, len(x), batch):
            if deadline is not None and time.time() > deadline:
                log(f"deadline reached in epoch {epoch + 1}")
                return model.eval()
            idx = order[s : s + batch]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                for w in latent:
                    w.clamp_(-1.0, 1.0)
        log(f"epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}")
    return model.eval()


@torch.no_grad()
def predict(model: SmallCNV, images: np.ndarray, batch: int = 1000) -> np.ndarray:
    model.eval()
    return np.concatenate([model(pixels_to_input(images[s:s + batch])).argmax(dim=1).numpy()
                           for s in range(0, len(images), batch)])


def export(model: SmallCNV, out: Path, style: str = "dynamo") -> Path:
    """Brevitas' own QONNX export; style 'dynamo' (torch's default exporter: Gemm) or 'torchscript' (MatMul + Transpose)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    h, w, c = model.shape
    export_qonnx(model.eval(), torch.zeros(1, c, h, w), export_path=str(out), **({"dynamo": False} if style == "torchscript" else {}))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description="train a small CNV-shaped Brevitas 1W1A net and export it as QONNX")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--train-images", type=int, default=None)
    ap.add_argument("--style", choices=("dynamo", "torchscript"), default="dynamo")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = train(SmallCNV(), args.epochs, args.train_images)
    print(f"wrote {export(model, args.out, args.style)}")


if __name__ == "__main__":
    main()
