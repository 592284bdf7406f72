"""In-process federated training: FedAvg, FedBNN, FedBAT, FedHyBNN, SignSGD, EF-SignSGD.

Two axes (DESIGN.md): the model (full-precision, BNN, BNN with rotation = FedBNN,
HyBNN head) and the codec on the wire (fp32, sign, efsign, fedbat). A round:

    server: sample clients (seeded by (seed, round)), broadcast the global float state (fp32 payload)
    client: decode, train local_epochs on its data (seeded by (seed, round, client)), encode its update
    server: decode each payload (a malformed or non-finite one is rejected), average the updates
            weighted by the clients' sample counts (known to the server from the partition), apply

Every random choice derives from the seed, the round and the client id, so a run is a pure
function of its config: a resumed run and a Flower run (train/flower_app.py, the same
Federation code) give bit-identical models. The run directory holds round_state.pt
(written atomically after every round), metrics.json, plots and, at the end, checkpoint.pt.
"""

from __future__ import annotations

import copy
import io
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fedxnor.atomic import write_bytes_atomic
from fedxnor.datasets import load_pair
from fedxnor.errors import FedxnorError
from fedxnor.train import codecs
from fedxnor.train.codecs import Layout
from fedxnor.train.fedbat import stochastic_binarize
from fedxnor.train.federated_config import (  # noqa: F401 (the config's names stay importable from here)
    ALGOS,
    DEFAULT_MODEL,
    LEGACY_VAE,
    LR_SCHEDULES,
    STATE_FILE,
    FederatedConfig,
    derive_seed,
)
from fedxnor.train.federation_accept import NodeReply, screen_round
from fedxnor.train.fpmodels import FP_MODELS, FPMLP
from fedxnor.train.models import BNN, shaped_config
from fedxnor.train.partition import make_partition
from fedxnor.train.rotation import add_rotation, fold_rotation


def build_model(cfg: FederatedConfig, input_shape: tuple[int, ...] | None = None) -> torch.nn.Module:
    """The model for images of input_shape (None: the named model's own, 28 x 28)."""
    from fedxnor.train.validate import parse_hidden

    torch.manual_seed(derive_seed(cfg.seed, 1))
    hidden = parse_hidden(cfg.hidden)
    config = shaped_config(cfg.model_config, input_shape, hidden)
    if config.input_encoding == "bits":  # a HyBNN head reads the VAE's latent bits
        config = replace(config, sizes=(cfg.vae_bits, *config.sizes[1:]), input_shape=(cfg.vae_bits,))
    if cfg.model in FP_MODELS:
        return FPMLP(config)
    model = BNN(config)
    return add_rotation(model) if cfg.algo == "fedbnn" else model


def final_model(cfg: FederatedConfig, model: torch.nn.Module) -> torch.nn.Module:
    """What the checkpoint holds: rotations folded into plain ±1 latent weights."""
    return fold_rotation(model) if cfg.algo == "fedbnn" else model


class Federation:
    """Data, model template and the algorithm's client/server steps (shared by in-process and Flower runs)."""

    def __init__(self, cfg: FederatedConfig, progress: bool = False, vae_cache: Path | None = None):
        self.cfg = cfg = cfg.resolved()
        data_dir = Path(cfg.data_dir) if cfg.data_dir else None
        train, test = load_pair(data_dir)
        train, test = train.take(cfg.train_limit or None), test.take(cfg.test_limit or None)
        # only FedHyBNN holds data out (its VAE's); every other algorithm trains on the whole training set
        n_hold = int(len(train) * cfg.holdout) if cfg.algo == "fedhybnn" else 0
        n_fed = len(train) - n_hold
        self.encoder = None
        train_x, test_x = train.images[:n_fed], test.images
        if cfg.algo == "fedhybnn":
            self.encoder = self._encoder(train.images[n_fed:], vae_cache, progress)
            train_x, test_x = self.encoder.encode_bits(train_x), self.encoder.encode_bits(test_x)
        self.labels = train.labels[:n_fed]
        self.partition = make_partition(self.labels, cfg.clients, cfg.partition, cfg.seed, cfg.min_per_client)
        self.train_x = torch.from_numpy(np.ascontiguousarray(train_x))
        self.train_y = torch.from_numpy(self.labels)
        self.test_x, self.test_y = torch.from_numpy(np.ascontiguousarray(test_x)), torch.from_numpy(test.labels)
        self.template = build_model(cfg, train.image_shape)
        state = self.template.state_dict()
        self.float_keys = [k for k, v in state.items() if v.is_floating_point()]
        self.param_keys = {k for k, _ in self.template.named_parameters()}
        self.layout = Layout(tuple(self.float_keys), tuple(tuple(state[k].shape) for k in self.float_keys),
                             tuple(k not in self.param_keys for k in self.float_keys))
        self.sizes = self.partition.sizes()

    def _encoder(self, images: np.ndarray, cache: Path | None, progress: bool):
        from fedxnor.train.hybnn import read_vae_cache, train_vae, vae_config_for, vae_to_blob

        if len(images) == 0:
            raise FedxnorError("fedhybnn needs held-out training data for its VAE: holdout must be > 0")
        c = self.cfg
        config = vae_config_for(images, c.vae, c.vae_bits, c.vae_kl)
        key = f"{derive_seed(c.seed, 2, len(images), c.vae_epochs)}:{c.vae}:{c.vae_bits}:{c.vae_kl!r}"
        if cache is not None and cache.is_file():
            cached = read_vae_cache(cache, key, int(np.prod(images.shape[1:])))  # None: stale or broken, retrain
            if cached is not None:
                return cached
        vae = train_vae(images, derive_seed(c.seed, 2), epochs=c.vae_epochs, config=config, progress=progress)
        if cache is not None:
            buf = io.BytesIO()
            torch.save({**vae_to_blob(vae), "key": key}, buf)
            write_bytes_atomic(cache, buf.getvalue())
        return vae

    # ------------------------------------------------------------ state <-> bytes

    def initial_state(self) -> OrderedDict[str, torch.Tensor]:
        return OrderedDict((k, v.clone()) for k, v in self.template.state_dict().items())

    def float_tensors(self, state: dict[str, torch.Tensor]) -> list[np.ndarray]:
        return [state[k].detach().numpy().astype(np.float32, copy=False) for k in self.float_keys]

    def broadcast(self, state: dict[str, torch.Tensor]) -> bytes:
        """Downlink payload: the global float state as fp32."""
        return codecs.encode_fp32(self.float_tensors(state), self.layout)

    def model_from(self, down: bytes) -> torch.nn.Module:
        model = copy.deepcopy(self.template)
        tensors = codecs.decode(down, self.layout, "fp32")
        sd = model.state_dict()
        for k, t in zip(self.float_keys, tensors):
            sd[k] = torch.from_numpy(t.copy())
        model.load_state_dict(sd)
        return model

    # ------------------------------------------------------------ client side

    def sample(self, rnd: int) -> list[int]:
        rng = np.random.default_rng(derive_seed(self.cfg.seed, 3, rnd))
        return sorted(int(c) for c in rng.choice(self.cfg.clients, self.cfg.per_round, replace=False))

    def client_update(self, down: bytes, cid: int, rnd: int,
                      memory: list[np.ndarray] | None = None) -> tuple[bytes, list[np.ndarray] | None, float]:
        """One client's round: (uplink payload, new EF memory or None, mean train loss)."""
        cfg = self.cfg
        model = self.model_from(down)
        start = [t.copy() for t in self.float_tensors(model.state_dict())]
        gen = torch.Generator().manual_seed(derive_seed(cfg.seed, 4, rnd, cid))
        idx = torch.from_numpy(self.partition.indices[cid])
        if cfg.codec == "fedbat":
            return self._fedbat_update(model, idx, gen, rnd)
        loss = self._local_train(model, idx, gen, rnd)
        # parameters travel as updates, BatchNorm statistics as values
        delta = [e if self.layout.is_stat(i) else np.asarray(e - s, np.float32)
                 for i, (e, s) in enumerate(zip(self.float_tensors(model.state_dict()), start))]
        if cfg.codec == "fp32":
            return codecs.compress_fp32(delta, self.layout), None, loss
        if cfg.codec == "sign":
            return codecs.compress_sign(delta, self.layout), None, loss
        payload, memory = codecs.compress_efsign(delta, memory, self.layout)
        return payload, memory, loss

    def _optimizer(self, params, rnd: int) -> torch.optim.Optimizer:
        lr = self.cfg.lr_at(rnd)
        if self.cfg.optimizer == "adam" or (self.cfg.is_bnn and self.cfg.optimizer != "sgd"):
            return torch.optim.Adam(params, lr=lr)
        return torch.optim.SGD(params, lr=lr, momentum=self.cfg.momentum)

    def _batches(self, idx: torch.Tensor, gen: torch.Generator):
        for _ in range(self.cfg.local_epochs):
            order = idx[torch.randperm(len(idx), generator=gen)]
            for s in range(0, len(order), self.cfg.batch):
                b = order[s : s + self.cfg.batch]
                if len(b) >= 2:  # BatchNorm needs two samples
                    yield self.train_x[b], self.train_y[b]

    def _local_train(self, model: torch.nn.Module, idx: torch.Tensor, gen: torch.Generator, rnd: int) -> float:
        model.train()
        params = list(model.parameters())
        opt = self._optimizer(params, rnd)
        mu = self.cfg.prox_mu
        anchor = [p.detach().clone() for p in params] if mu else []
        adjust = self._logit_adjustment(idx)
        total, n = 0.0, 0
        for x, y in self._batches(idx, gen):
            out = model(x)
            loss = F.cross_entropy(out if adjust is None else out + adjust, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for p, p0 in zip(params, anchor):  # FedProx: gradient of mu/2·||w - w_global||²
                if p.grad is not None:
                    p.grad.add_(p.detach() - p0, alpha=mu)
            opt.step()
            model.clip_latent()
            total, n = total + loss.item(), n + 1
        return total / max(1, n)

    def _logit_adjustment(self, idx: torch.Tensor) -> torch.Tensor | None:
        """tau·log of the client's label distribution, added to its scores in training (None when logit_adjust is 0).

        A label the client does not hold gets -inf: it drops out of the client's softmax (no gradient to it)."""
        if not self.cfg.logit_adjust:
            return None
        classes = self.cfg.model_config.sizes[-1]
        counts = torch.bincount(self.train_y[idx], minlength=classes).double()
        return (self.cfg.logit_adjust * torch.log(counts / counts.sum())).float()

    def _fedbat_update(self, model, idx, gen, rnd: int) -> tuple[bytes, None, float]:
        """FedBAT: train the binarized update (train/fedbat.py), upload its last draw."""
        cfg = self.cfg
        model.train()
        base = {k: v.detach().clone() for k, v in model.named_parameters()}
        buffers = {k: v.clone() for k, v in model.named_buffers()}
        m = {k: torch.zeros_like(v, requires_grad=True) for k, v in base.items()}
        a_e = {k: torch.zeros((), requires_grad=True) for k in base}
        a0: dict[str, torch.Tensor] = {}
        steps = cfg.local_epochs * sum(1 for s in range(0, len(idx), cfg.batch) if len(idx) - s >= 2)
        warm = int(cfg.fedbat_phi * steps)
        opt = self._optimizer([*m.values(), *a_e.values()], rnd)
        adjust = self._logit_adjustment(idx)

        lo, hi = (5e-4, 0.5) if cfg.is_bnn else (5e-4, 5e-2)  # FedBAT's code clamps a; BNN latents are larger

        def step_size(k: str) -> torch.Tensor:
            return torch.clamp(a0[k] * torch.exp(cfg.fedbat_rho * a_e[k]), lo, hi)

        total, n = 0.0, 0
        for step, (x, y) in enumerate(self._batches(idx, gen)):
            if step == warm:  # warm-up over: a0 = mean|m| per tensor
                a0 = {k: v.detach().abs().mean().clamp_min(1e-8) for k, v in m.items()}
            if step < warm:
                weights = {k: base[k] + m[k] for k in base}
            else:
                weights = {k: base[k] + stochastic_binarize(m[k], step_size(k), gen) for k in base}
            out = torch.func.functional_call(model, {**weights, **buffers}, (x,))
            loss = F.cross_entropy(out if adjust is None else out + adjust, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, n = total + loss.item(), n + 1
        if not a0:
            a0 = {k: v.detach().abs().mean().clamp_min(1e-8) for k, v in m.items()}
        bits, scales, stats = [], [], []
        with torch.no_grad():
            for k in self.float_keys:
                if k in m:
                    a = step_size(k)
                    bits.append((stochastic_binarize(m[k], a, gen) > 0).numpy())
                    scales.append(float(a))
                    stats.append(None)
                else:  # BatchNorm statistics: their values
                    bits.append(None)
                    scales.append(0.0)
                    stats.append(buffers[k].numpy())
        return codecs.encode_binary("fedbat", bits, scales, stats, self.layout), None, total / max(1, n)

    # ------------------------------------------------------------ server side

    def aggregate(self, state: dict[str, torch.Tensor], replies: list[NodeReply], rnd: int = 0) -> tuple[OrderedDict, dict]:
        """Screen the round's replies (federation_accept.screen_round: the same rules in-process and on Flower),
        then apply the sample-weighted mean of the accepted updates.

        Returns (new state, info: accepted/rejected client ids, train loss, bytes, bits per parameter).
        A round with no accepted update stops the run (FedxnorError): a model trained on nothing is no result."""
        screened = screen_round(replies, self.layout, self.cfg.codec)
        if not screened.accepted:
            why = "; ".join(sorted({r["reason"] for r in screened.rejected}))[:300] or "no client answered"
            raise FedxnorError(f"round {rnd + 1}: no client update was accepted ({why}); no checkpoint written: "
                               "check the training values (lr, momentum, prox_mu) and the clients")
        weights = np.asarray([float(self.sizes[a.client]) for a in screened.accepted], np.float64)
        w = weights / weights.sum()
        new = OrderedDict((k, v.clone()) for k, v in state.items())
        means = {}
        for i, k in enumerate(self.float_keys):
            means[k] = np.asarray(sum(wj * a.tensors[i].astype(np.float64) for wj, a in zip(w, screened.accepted)))
            # statistics: the mean of the clients' values; parameters: global + mean update
            mean = torch.from_numpy(means[k])
            new[k] = mean.float() if self.layout.is_stat(i) else (state[k].double() + mean).float()
        if self.cfg.bn_stats == "pooled":
            self._pool_variances(new, means, screened.accepted, w)
        model = copy.deepcopy(self.template)
        model.load_state_dict(new)
        model.clip_latent()
        new = OrderedDict((k, v.detach().clone()) for k, v in model.state_dict().items())
        ok_bytes = [a.nbytes for a in screened.accepted]
        info = {"accepted": screened.accepted_ids, "rejected": screened.rejected, "train_loss": screened.train_loss,
                "uplink_bytes": int(screened.uplink_bytes),
                "uplink_bits_per_param": 8 * float(np.mean(ok_bytes)) / self.layout.values}
        return new, info

    def _pool_variances(self, new: OrderedDict, means: dict, accepted, w: np.ndarray) -> None:
        """running_var := sum_j w_j (var_j + (mean_j - mean)^2): the variance over all clients' data, not the mean of
        their variances, which misses how far their means lie apart (large under label skew)."""
        index = {k: i for i, k in enumerate(self.float_keys)}
        for k in index:
            m = k[: -len("running_var")] + "running_mean"
            if not k.endswith("running_var") or m not in index:
                continue
            spread = sum(wj * (a.tensors[index[m]].astype(np.float64) - means[m]) ** 2 for wj, a in zip(w, accepted))
            new[k] = torch.from_numpy(means[k] + spread).float()

    @torch.no_grad()
    def evaluate(self, state: dict[str, torch.Tensor]) -> tuple[float, float]:
        model = copy.deepcopy(self.template)
        model.load_state_dict(state)
        model.eval()
        correct, loss = 0, 0.0
        for s in range(0, len(self.test_y), 2000):
            scores = model(self.test_x[s : s + 2000])
            y = self.test_y[s : s + 2000]
            correct += int((torch.argmax(scores, 1) == y).sum())
            loss += float(F.cross_entropy(scores, y, reduction="sum"))
        return correct / len(self.test_y), loss / len(self.test_y)

    def final(self, state: dict[str, torch.Tensor]) -> torch.nn.Module:
        model = copy.deepcopy(self.template)
        model.load_state_dict(state)
        model.eval()
        return final_model(self.cfg, model)


# the in-process loop lives in federation_loop.py; these names stay importable from here
_LOOP_NAMES = ("run_round", "train_federated", "flow_train", "plot_history", "json_safe", "_finish", "_save_state",
               "_load_state")


def __getattr__(name: str):
    if name in _LOOP_NAMES:
        from fedxnor.train import federation_loop

        return getattr(federation_loop, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
