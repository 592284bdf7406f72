"""Tutorial: bring a Brevitas model to the iCEBreaker. Step 1: train a small 1W1A MLP with Brevitas, export it as QONNX.

    python docs/tutorial/brevitas_mlp.py --out runs/brevitas/model.onnx            # TFC, 2 epochs on 20,000 images
    fedxnor import runs/brevitas/model.onnx --out runs/brevitas/export             # folded exactly, proven against qonnx
    fedxnor fold runs/brevitas/export --device up5k --out runs/brevitas/up5k
    fedxnor verify runs/brevitas/up5k --sim verilator --images 200
    fedxnor build runs/brevitas/up5k --board icebreaker --out runs/brevitas/bit

The network is bnn_pynq's TFC/SFC/LFC shape (Brevitas' own example networks): the input pixel/255 becomes 2x - 1 and is
binarized by a 1-bit QuantIdentity (sign(0) = +1), then per layer a 1-bit QuantLinear (no bias), BatchNorm1d and a 1-bit
QuantIdentity; the last QuantLinear is followed by a TensorNorm (one scalar affine) before the argmax. Training: Adam with
a cosine decay of the learning rate to 0, and bnn_pynq's weight clipping (latent weights kept in [-1, 1] after each step).
The QONNX file is written by Brevitas' own export_qonnx (torch's dynamo exporter by default, --style torchscript for dynamo=False).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from brevitas.export import export_qonnx
from brevitas.nn import QuantIdentity, QuantLinear
from brevitas.quant import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst
from torch import nn

from fedxnor.datasets import load_split


class BinaryWeight(SignedBinaryWeightPerTensorConst):
    scaling_const = 1.0  # bnn_pynq's CommonWeightQuant: weights are exactly ±1


class TensorNorm(nn.Module):
    """bnn_pynq's TensorNorm: one learned scalar affine over the whole tensor, after the last layer."""

    def __init__(self, eps: float = 1e-4, momentum: float = 0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(1))
        self.bias = nn.Parameter(torch.zeros(1))
        self.register_buffer("running_mean", torch.zeros(1))
        self.register_buffer("running_var", torch.ones(1))

    def forward(self, x):
        if self.training:
            mean, var = x.mean(), x.var(unbiased=False)
            with torch.no_grad():
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
                self.running_var.mul_(1 - self.momentum).add_(self.momentum * x.var(unbiased=True))
            return (x - mean) / (var + self.eps).pow(0.5) * self.weight + self.bias
        return (x - self.running_mean) / (self.running_var + self.eps).pow(0.5) * self.weight + self.bias


class BinaryMLP(nn.Module):
    """784 -> hidden... -> 10, 1-bit weights and activations (TFC: 64 64 64, SFC: 256 256 256, LFC: 1024 1024 1024)."""

    def __init__(self, hidden=(64, 64, 64), inputs: int = 784, classes: int = 10):
        super().__init__()
        self.input_quant = QuantIdentity(act_quant=SignedBinaryActPerTensorConst)
        layers, n = [], inputs
        for m in hidden:
            layers += [QuantLinear(n, m, bias=False, weight_quant=BinaryWeight), nn.BatchNorm1d(m, eps=1e-4),
                       QuantIdentity(act_quant=SignedBinaryActPerTensorConst)]
            n = m
        layers += [QuantLinear(n, classes, bias=False, weight_quant=BinaryWeight), TensorNorm()]
        self.features = nn.Sequential(*layers)

    def forward(self, x):
        x = x.reshape(x.shape[0], -1)
        x = 2.0 * x - torch.tensor([1.0])  # bnn_pynq: pixel/255 in [0, 1] -> [-1, 1]
        return self.features(self.input_quant(x))


def pixels_to_input(images: np.ndarray) -> torch.Tensor:
    """Dataset pixels (uint8) -> what the network takes: pixel/255 as float32 (torchvision's ToTensor)."""
    return torch.from_numpy(images.astype(np.float32)).div(255.0).reshape(len(images), 1, 28, 28)


def train(hidden=(64, 64, 64), epochs: int = 2, train_images: int | None = None, seed: int = 0, lr: float = 0.01,
          batch: int = 100, data_dir=None, log=print) -> BinaryMLP:
    torch.manual_seed(seed)
    data = load_split("train", data_dir).take(train_images)
    x, y = pixels_to_input(data.images), torch.from_numpy(data.labels.astype(np.int64))
    model = BinaryMLP(tuple(hidden))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * -(-len(x) // batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))  # decays to 0 by the last step
    latent = [m.weight for m in model.modules() if isinstance(m, QuantLinear)]
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        for s in range(0, len(x), batch):
            idx = order[s : s + batch]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():  # bnn_pynq's clip_weights: latent weights stay in [-1, 1], where a step can still flip a sign
                for w in latent:
                    w.clamp_(-1.0, 1.0)
        log(f"epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}")
    return model.eval()


@torch.no_grad()
def predict(model: BinaryMLP, images: np.ndarray) -> np.ndarray:
    return model.eval()(pixels_to_input(images)).argmax(dim=1).numpy()


def export(model: BinaryMLP, out: Path, style: str = "dynamo") -> Path:
    """Brevitas' own QONNX export; style 'dynamo' (torch's default exporter: Gemm) or 'torchscript' (MatMul + Transpose)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(1, 1, 28, 28)
    export_qonnx(model.eval(), example, export_path=str(out), **({"dynamo": False} if style == "torchscript" else {}))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="the .onnx file to write")
    ap.add_argument("--hidden", type=int, nargs="+", default=[64, 64, 64], help="hidden widths (TFC: 64 64 64)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--train-images", type=int, default=20000, help="first N training images (default 20000)")
    ap.add_argument("--style", choices=["dynamo", "torchscript"], default="dynamo")
    ap.add_argument("--data", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    start = time.time()
    model = train(args.hidden, args.epochs, args.train_images, data_dir=args.data)
    test = load_split("test", args.data)
    acc = float((predict(model, test.images) == test.labels).mean())
    export(model, args.out, args.style)
    print(f"trained {'-'.join(map(str, [784, *args.hidden, 10]))} in {time.time() - start:.0f} s, "
          f"torch test accuracy {acc:.4f}; wrote {args.out}")


if __name__ == "__main__":
    main()
