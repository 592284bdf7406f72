"""HyBNN, centrally: does a BNN head on a frozen binary-latent VAE's bits beat a BNN on binarized pixels?

The data split is FedHyBNN's: the VAE trains without labels on the last 1/6 of the Fashion-MNIST training set
(10,000 images), the heads and the baselines on the first 50,000, everything is scored on the 10,000 test
images. Per VAE variant (arch mlp|conv, latent bits, KL weight, VAE epochs):
  - recon_mse: mean squared error per pixel (in [0, 1]) of decoding the test images' deterministic bits;
  - bit statistics of the test images' bits: bits that never change, mean entropy per bit, |logit| < 1 share;
  - linear_probe: a float softmax regression on the ±1 bits (how much label information the bits carry
    linearly; Adam, the same for every input);
  - head accuracy: the BNN head bits -> hidden -> 10 (hybnn-head's recipe, also larger hidden widths) trained
    like central.py (Adam 5e-3, cosine, batch 100, BatchNorm re-estimated at the end).
Baselines on the same 50,000 images: mlp-bin (784 binarized pixels -> 256 -> 256 -> 10), the BNN head shapes on
the 784 binarized pixels, and the linear probe on binarized pixels. Writes bench/results/hybnn.json after every
variant (rows of earlier runs with other variant names are kept).

    python bench/bench_hybnn.py [--variants conv-512-kl0.01-e10 ...] [--heads 128 256,256] [--head-epochs 8]
    python bench/bench_hybnn.py --docs   # the table in docs/federated.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from common import RESULTS, write_results  # noqa: E402

from fedxnor.datasets import load_pair  # noqa: E402
from fedxnor.train.central import reestimate_batchnorm, seed_everything, train_epoch  # noqa: E402
from fedxnor.train.federated import derive_seed  # noqa: E402
from fedxnor.train.hybnn import train_vae, vae_config_for  # noqa: E402
from fedxnor.train.models import BNN, MODELS  # noqa: E402

HOLDOUT = 1 / 6  # FederatedConfig.holdout
DEFAULT_VARIANTS = ["mlp-200-kl0.01-e10", "conv-200-kl0.01-e10", "conv-512-kl0.01-e10"]


def parse_variant(name: str) -> dict:
    """'conv-512-kl0.01-e10' -> arch conv, 512 latent bits, KL weight 0.01, 10 VAE epochs."""
    arch, bits, kl, ep = name.split("-")
    assert kl.startswith("kl") and ep.startswith("e"), name
    return {"arch": arch, "latent_bits": int(bits), "kl_weight": float(kl[2:]), "epochs": int(ep[1:])}


def head_config(n_in: int, hidden: tuple[int, ...]):
    """hybnn-head's recipe with n_in input bits and these hidden widths (binarized pixels are given as bits too:
    the same network as mlp-bin, whose first step is the threshold)."""
    from dataclasses import replace

    return replace(MODELS["hybnn-head"], sizes=(n_in, *hidden, 10), input_shape=(n_in,),
                   name=f"head-{n_in}-{'-'.join(map(str, hidden))}")


def train_head(cfg, x: np.ndarray, y: np.ndarray, tx: np.ndarray, ty: np.ndarray, epochs: int, seed: int) -> dict:
    """A BNN trained as central.py trains one; its test accuracy after BatchNorm re-estimation."""
    gen = seed_everything(seed)
    model = BNN(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    xs, ys = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y)
    t0 = time.monotonic()
    for _ in range(epochs):
        train_epoch(model, opt, xs, ys, 100, gen, progress=False)
        sched.step()
    reestimate_batchnorm(model, xs)
    acc = float((model.predict(torch.from_numpy(np.ascontiguousarray(tx))) == ty).mean())
    return {"sizes": list(cfg.sizes), "weight_bits": sum(a * b for a, b in zip(cfg.sizes, cfg.sizes[1:])),
            "test_accuracy": round(acc, 4), "seconds": round(time.monotonic() - t0, 1)}


def linear_probe(x: np.ndarray, y: np.ndarray, tx: np.ndarray, ty: np.ndarray, seed: int, epochs: int = 10) -> float:
    """Softmax regression on ±1 features (bits 0/1 -> -1/+1): the label information the bits carry linearly."""
    g = torch.Generator().manual_seed(seed)
    xs, ts = torch.from_numpy(x).float() * 2 - 1, torch.from_numpy(tx).float() * 2 - 1
    ys = torch.from_numpy(y).long()
    lin = torch.nn.Linear(xs.shape[1], 10)
    opt = torch.optim.Adam(lin.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    for _ in range(epochs):
        order = torch.randperm(len(xs), generator=g)
        for s in range(0, len(xs), 256):
            i = order[s : s + 256]
            loss = F.cross_entropy(lin(xs[i]), ys[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    with torch.no_grad():
        return round(float((lin(ts).argmax(1).numpy() == ty).mean()), 4)


def bit_stats(vae, images: np.ndarray, bits: np.ndarray) -> dict:
    p = bits.mean(0)
    ent = -(p * np.log2(np.clip(p, 1e-12, 1)) + (1 - p) * np.log2(np.clip(1 - p, 1e-12, 1)))
    with torch.no_grad():
        logits = torch.cat([vae.logits(torch.from_numpy(images[s : s + 2000])) for s in range(0, len(images), 2000)])
    return {"constant_bits": int(((p == 0) | (p == 1)).sum()), "mean_bit_entropy": round(float(ent.mean()), 4),
            "logits_within_1": round(float((logits.abs() < 1).float().mean()), 4),
            "distinct_codes": int(len(np.unique(np.packbits(bits, axis=1), axis=0)))}


def split(seed: int):
    train, test = load_pair(None)
    n_fed = len(train) - int(len(train) * HOLDOUT)
    return (train.images[:n_fed], train.labels[:n_fed], train.images[n_fed:]), (test.images, test.labels)


def run_variant(name: str, heads: list[tuple[int, ...]], head_epochs: int, seed: int, data) -> dict:
    (x, y, vae_x), (tx, ty) = data
    v = parse_variant(name)
    cfg = vae_config_for(vae_x, v["arch"], v["latent_bits"], v["kl_weight"])
    t0 = time.monotonic()
    vae = train_vae(vae_x, derive_seed(seed, 2), epochs=v["epochs"], config=cfg, progress=False)
    row = {"variant": name, **v, "vae_config": cfg.to_dict(), "vae_seconds": round(time.monotonic() - t0, 1),
           "vae_params": sum(p.numel() for p in vae.parameters())}
    bx, btx = vae.encode_bits(x), vae.encode_bits(tx)
    row["recon_mse"] = round(vae.reconstruction_error(tx), 5)
    row["bits"] = bit_stats(vae, tx, btx)
    row["linear_probe"] = linear_probe(bx, y, btx, ty, seed)
    row["heads"] = [train_head(head_config(v["latent_bits"], h), bx, y, btx, ty, head_epochs, seed) for h in heads]
    return row


def baselines(heads: list[tuple[int, ...]], head_epochs: int, seed: int, data) -> dict:
    (x, y, _), (tx, ty) = data
    thr = MODELS["mlp-bin"].binarize_threshold
    bx, btx = (x >= thr).reshape(len(x), -1).astype(np.uint8), (tx >= thr).reshape(len(tx), -1).astype(np.uint8)
    out = {"linear_probe_binarized_pixels": linear_probe(bx, y, btx, ty, seed),
           "linear_probe_pixels": linear_probe(x.reshape(len(x), -1) / 255.0, y, tx.reshape(len(tx), -1) / 255.0, ty, seed),
           "heads_on_binarized_pixels": [train_head(head_config(784, h), bx, y, btx, ty, head_epochs, seed)
                                         for h in [(256, 256), *[h for h in heads if h != (256, 256)]]]}
    out["mlp_bin_50k"] = out["heads_on_binarized_pixels"][0]["test_accuracy"]  # mlp-bin's shape: 784-256-256-10
    return out


def table(data: dict) -> str:
    """The central comparison as a Markdown table (docs/federated.md, between the hybnn-central markers)."""
    b = data["baselines"]
    by_hidden = {tuple(h["sizes"][1:-1]): h["test_accuracy"] for h in b["heads_on_binarized_pixels"]}
    lines = ["| head input | bits | VAE | reconstruction MSE | linear probe | head bits-128-10 | head bits-256-256-10 |",
             "|---|---|---|---|---|---|---|",
             f"| binarized pixels (>= 128) | 784 | - | - | {b['linear_probe_binarized_pixels']:.4f} | "
             f"{by_hidden.get((128,), float('nan')):.4f} | {by_hidden[(256, 256)]:.4f} (= mlp-bin) |"]
    for r in sorted(data["rows"], key=lambda r: (r["arch"] != "mlp", r["latent_bits"], r["kl_weight"] != 0.01, r["kl_weight"],
                                                 r["epochs"])):
        heads = {tuple(h["sizes"][1:-1]): h["test_accuracy"] for h in r["heads"]}
        kl = "" if r["kl_weight"] == 0.01 else f", KL {r['kl_weight']:g}"
        ep = "" if r["epochs"] == 10 else f", {r['epochs']} epochs"
        cell = [f"{heads[k]:.4f}" if k in heads else "-" for k in ((128,), (256, 256))]
        lines.append(f"| {r['arch']} VAE bits{kl}{ep} | {r['latent_bits']} | {r['vae_params']:,} params, {r['vae_seconds']:.0f} s "
                     f"| {r['recon_mse']:.4f} | {r['linear_probe']:.4f} | {cell[0]} | {cell[1]} |")
    lines.append(f"| 8-bit pixels (float probe only) | - | - | - | {b['linear_probe_pixels']:.4f} | - | - |")
    s = data["settings"]
    lines.append(f"\n(bench/results/hybnn.json, {data['provenance']['date']}; seed {s['seed']}; heads: {s['head_training']}; "
                 f"mlp-bin trained centrally on all 60,000 images: {s['mlp_bin_central_60k']}.)")
    return "\n".join(lines)


FED_LABELS = {"FedBNN-bin": "FedBNN, mlp-bin (784 binarized pixels-256-256-10)",
              "FedHyBNN-convVAE": "FedHyBNN, conv VAE 512 bits-256-256-10",
              "FedHyBNN-convVAE-h128": "FedHyBNN, conv VAE 512 bits-128-10 (hybnn-head)",
              "FedHyBNN-convVAE-e30": "FedHyBNN, conv VAE trained 30 epochs, 512 bits-256-256-10",
              "FedHyBNN": "FedHyBNN, MLP VAE 200 bits-128-10 (the first; federated.json)",
              "FedBNN": "FedBNN, mlp (784 8-bit pixels-256-256-10; federated.json)"}


def federated_table() -> str:
    """FedHyBNN on the conv VAE against FedBNN on binarized pixels (federated_hybnn.json), with federated.json's rows of
    the same settings beside them; per partition the mean over the seeds the new runs have there (± sample std)."""
    import statistics

    new = json.loads((RESULTS / "federated_hybnn.json").read_text())
    old = json.loads((RESULTS / "federated.json").read_text())
    rows = new["rows"] + [r for r in old["rows"] if r["label"] in ("FedHyBNN", "FedBNN")]
    parts = list(dict.fromkeys(r["partition"] for r in new["rows"]))
    seeds = {p: sorted({r.get("seed", 0) for r in new["rows"] if r["partition"] == p}) for p in parts}

    def cell(label: str, part: str) -> str:
        acc = [r["test_accuracy"] for r in rows if (r["label"], r["partition"]) == (label, part) and r.get("seed", 0) in seeds[part]]
        if not acc:
            return "-"
        few = f" ({len(acc)} of {len(seeds[part])} seeds)" if len(acc) < len(seeds[part]) else ""
        return f"{statistics.fmean(acc):.4f}" + (f" ± {statistics.stdev(acc):.4f}" if len(acc) > 1 else "") + few

    lines = ["| run | " + " | ".join(f"{p} (seeds {', '.join(map(str, seeds[p]))})" for p in parts) + " |",
             "|---|" + "---|" * len(parts)]
    for label, text in FED_LABELS.items():
        cells = [cell(label, p) for p in parts]
        if any(c != "-" for c in cells):
            lines.append(f"| {text} | " + " | ".join(cells) + " |")
    st = new["settings"]
    secs = {r["label"]: r["seconds"] for r in new["rows"] if r["partition"] == "dir0.3"}
    lines.append(f"\n({st['rounds']} rounds x {st['local_epochs']} local epochs, {st['clients']} clients, "
                 f"{st['per_round']} per round; bench/results/federated_hybnn.json, {new['provenance']['date']}; one run on "
                 f"dir0.3 took {secs.get('FedBNN-bin', 0):.0f} s (FedBNN-bin) and {secs.get('FedHyBNN-convVAE', 0):.0f} s "
                 "(FedHyBNN-convVAE, its VAE cached) on a shared, loaded machine, one torch thread; the conv VAE's training "
                 "adds 1.5 to 5 minutes (by the load) once per seed.)")
    return "\n".join(lines)


def write_docs() -> None:
    doc = Path(__file__).resolve().parent.parent / "docs" / "federated.md"
    text = doc.read_text()
    blocks = {"hybnn-central": lambda: table(json.loads((RESULTS / "hybnn.json").read_text()))}
    if (RESULTS / "federated_hybnn.json").is_file():
        blocks["hybnn-federated"] = federated_table
    for name, make in blocks.items():
        begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
        i, j = text.index(begin) + len(begin), text.index(end)
        text = text[:i] + "\n" + make() + "\n" + text[j:]
    doc.write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--variants", nargs="*", default=DEFAULT_VARIANTS, help="arch-bits-klW-eN, e.g. conv-512-kl0.01-e10")
    ap.add_argument("--heads", nargs="+", default=["128", "256,256"], help="hidden widths of the BNN heads")
    ap.add_argument("--head-epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--baselines", action="store_true", help="(re)run the binarized-pixel baselines")
    ap.add_argument("--name", default="hybnn")
    ap.add_argument("--docs", action="store_true", help="only write the table of hybnn.json into docs/federated.md")
    args = ap.parse_args()
    if args.docs:
        write_docs()
        return 0
    torch.set_num_threads(1)
    heads = [tuple(int(w) for w in h.split(",")) for h in args.heads]
    for v in args.variants:
        parse_variant(v)
    path = RESULTS / f"{args.name}.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    rows = [r for r in old.get("rows", []) if r["variant"] not in args.variants]
    base = old.get("baselines")
    central = json.loads((RESULTS / "central.json").read_text())
    ref = next((r["torch_accuracy"] for r in central.get("rows", central.get("models", [])) if r.get("model") == "mlp-bin"), None)
    settings = {"dataset": "Fashion-MNIST", "vae_data": "last 1/6 of the training set (10,000 images, no labels)",
                "head_data": "first 50,000 training images", "test_images": 10000, "seed": args.seed,
                "head_training": f"Adam 5e-3, cosine over {args.head_epochs} epochs, batch 100, BatchNorm re-estimated",
                "vae_training": "Adam 1e-3, batch 128, straight-through Bernoulli latent, KL to Bernoulli(1/2)",
                "torch_threads": 1, "mlp_bin_central_60k": ref,
                "commands": [*old.get("settings", {}).get("commands", []), "python bench/bench_hybnn.py " + " ".join(sys.argv[1:])]}
    data = split(args.seed)

    def save() -> None:
        write_results(args.name, {"settings": settings, "baselines": base, "rows": rows})

    if args.baselines or base is None:
        base = baselines(heads, args.head_epochs, args.seed, data)
        print(json.dumps(base), flush=True)
        save()
    for name in args.variants:
        row = run_variant(name, heads, args.head_epochs, args.seed, data)
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "vae_config"}), flush=True)
        save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
