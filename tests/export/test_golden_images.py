"""ROM images and manifests are byte-identical to those of the release before the contract package
(b0aba26): twelve seeded random networks, every folding legal, bipolar and 8-bit first layers.

The digest below was computed with b0aba26's export/images.py, export/network.py and export/manifest.py
on this same generator; a change to packing, threshold encoding or the manifest's layout changes it.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from fedxnor.contract.folding import Folding
from fedxnor.contract.network import IntLayer, IntNetwork
from fedxnor.export.manifest import write_export

GOLDEN = "53ab4bbe6e503b488eaed90f2dc8db3bc1dd055e5a601879e8c86226fbbfaf12"  # sha256 of the 528 image digests


def networks(rng):
    for _ in range(12):
        sizes = ([int(rng.integers(5, 200))] + [int(rng.integers(2, 40)) for _ in range(int(rng.integers(1, 3)))]
                 + [int(rng.integers(2, 12))])
        bits = int(rng.choice([1, 8]))
        layers = []
        for i in range(len(sizes) - 1):
            n, m = sizes[i], sizes[i + 1]
            w = rng.integers(0, 2, (m, n), dtype=np.uint8)
            enc = "unsigned" if (i == 0 and bits > 1) else "bipolar"
            lo, hi = (0, n) if enc == "bipolar" else (-n * 255, n * 255)
            last = i == len(sizes) - 2
            t = None if last else rng.integers(lo, hi + 2, m)
            layers.append(IntLayer(w, t, input_bits=bits if enc == "unsigned" else 1, encoding=enc,
                                   inverted=None if last else rng.random(m) < 0.3))
        folds = []
        for la in layers:
            m, n = la.weights.shape
            folds.append(Folding(int(rng.choice([d for d in range(1, m + 1) if m % d == 0])), int(rng.integers(1, n + 1))))
        yield IntNetwork(tuple(layers)), folds


def test_images_are_byte_identical_to_the_release_before(tmp_path):
    digests, manifests = {}, []
    for case, (net, folds) in enumerate(networks(np.random.default_rng(7))):
        d = write_export(net, tmp_path / str(case), folds)
        for f in sorted(d.iterdir()):
            if f.suffix == ".hex":
                digests[f"{case}/{f.name}"] = hashlib.sha256(f.read_bytes()).hexdigest()
        manifests.append(json.loads((d / "manifest.json").read_text()))
    assert len(digests) == 528
    assert hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest() == GOLDEN
    assert all(m["schema_version"] == 2 for m in manifests)  # 2 since issue 20 (layer kinds); the images are unchanged
