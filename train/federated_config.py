"""The federated run's configuration: algorithm, model, codec, partition, rounds and the clients' recipe,
validated in one place (resolved); its fingerprint names a run for resume and for Flower. Every random choice of
a run derives from derive_seed(seed, ...), so a run is a pure function of this config."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, replace

from fedxnor.errors import FedxnorError
from fedxnor.train import codecs
from fedxnor.train.fpmodels import FP_MODELS
from fedxnor.train.models import MODELS

# algo -> its default codec; fedbnn adds the rotation, fedhybnn the frozen VAE encoder
ALGOS: dict[str, str] = {"fedavg": "fp32", "fedbnn": "fp32", "fedbat": "fedbat", "fedhybnn": "fp32",
                         "signsgd": "sign", "efsign": "efsign"}
DEFAULT_MODEL = {"fedavg": "mlp", "fedbnn": "mlp", "fedbat": "mlp", "fedhybnn": "hybnn-head",
                 "signsgd": "mlp", "efsign": "mlp"}
STATE_FILE = "round_state.pt"
LR_SCHEDULES = ("constant", "cosine")
BN_STATS = ("mean", "pooled")


@dataclass(frozen=True)
class FederatedConfig:
    algo: str = "fedbnn"
    model: str = ""  # "" = the algorithm's default (DEFAULT_MODEL)
    codec: str = ""  # "" = the algorithm's default (ALGOS)
    partition: str = "iid"  # iid | dir<beta> | cls<c>
    clients: int = 100
    per_round: int = 10
    rounds: int = 20
    local_epochs: int = 1
    batch: int = 64
    lr: float = 0.0  # 0 = default: SGD 0.1 for full precision (FedBAT's setting), Adam 0.002 for BNNs
    optimizer: str = ""  # "" = default: sgd for full precision, adam for BNNs
    momentum: float = 0.0  # SGD's momentum (a fresh buffer every round, like every client's optimizer state)
    prox_mu: float = 0.0  # FedProx: the clients minimise loss + mu/2·||w - w_global||² (0 = plain FedAvg)
    # tau: the clients train on logits + tau·log(their own label prior) (logit adjustment, Menon et al. 2021;
    # FedLC's label-skew fix); 0 = plain cross-entropy; negative = the default: 1 for BNNs, 0 for full precision
    logit_adjust: float = -1.0
    lr_schedule: str = "cosine"  # cosine: round r's clients train at lr·½(1 + cos(π·r/rounds)); constant: lr
    # BatchNorm statistics on the server: 'mean' averages the clients' running means and variances (FedAvg's rule);
    # 'pooled' adds the spread of the clients' means to the variance (the variance of the union of their data)
    bn_stats: str = "mean"
    seed: int = 0
    holdout: float = 1 / 6  # last part of the training set: the VAE's data, never a client's
    train_limit: int = 0  # first N training samples (0 = all)
    test_limit: int = 0  # first N test samples (0 = all)
    min_per_client: int = 10
    vae_epochs: int = 10
    # FedHyBNN's VAE: 'conv' (train/hybnn_conv.py) or 'mlp' (train/hybnn.py, the first one: vae='mlp', vae_bits=200
    # reproduce its results); conv with 512 bits by measurement (bench/results/hybnn.json: central head 0.855 vs 0.805)
    vae: str = "conv"
    vae_bits: int = 512  # its latent bits: the BNN head's input width
    vae_kl: float = 0.01  # the weight of its KL term to a Bernoulli(1/2) prior
    fedbat_rho: float = 6.0
    fedbat_phi: float = 0.5
    data_dir: str = ""  # IDX directory ("" = Debian's Fashion-MNIST)
    hidden: str = ""  # hidden widths, e.g. "256,256" ("" = the model's); a string: Flower's run config holds scalars

    def resolved(self) -> FederatedConfig:
        """Fill in defaults and validate (FedxnorError on a bad combination)."""
        from fedxnor.train.validate import check_federated_values

        check_federated_values(self)
        if self.algo not in ALGOS:
            raise FedxnorError(f"unknown --algo {self.algo!r}: choose central or one of {', '.join(ALGOS)}")
        cfg = replace(self, model=self.model or DEFAULT_MODEL[self.algo], codec=self.codec or ALGOS[self.algo])
        if cfg.codec not in codecs.CODECS:
            raise FedxnorError(f"unknown --codec {cfg.codec!r}: choose one of {', '.join(codecs.CODECS)}")
        if cfg.model not in MODELS and cfg.model not in FP_MODELS:
            raise FedxnorError(f"unknown model {cfg.model!r}: choose one of {', '.join([*MODELS, *FP_MODELS])}")
        bits_input = cfg.model_config.input_encoding == "bits"
        if cfg.algo == "fedbnn" and cfg.model not in MODELS:
            raise FedxnorError(f"fedbnn trains a BNN: choose a BNN model ({', '.join(MODELS)}), not {cfg.model}")
        if (cfg.algo == "fedhybnn") != bits_input:
            raise FedxnorError("fedhybnn goes with a model on latent bits (hybnn-head) and hybnn-head only with fedhybnn")
        if cfg.per_round > cfg.clients or cfg.per_round < 1:
            raise FedxnorError(f"--per-round {cfg.per_round} must be in 1..--clients ({cfg.clients})")
        for name in ("rounds", "local_epochs", "batch"):
            if getattr(cfg, name) < 1:
                raise FedxnorError(f"--{name.replace('_', '-')} must be at least 1")
        if cfg.lr_schedule not in LR_SCHEDULES:
            raise FedxnorError(f"lr schedule {cfg.lr_schedule!r}: choose one of {', '.join(LR_SCHEDULES)}")
        if cfg.bn_stats not in BN_STATS:
            raise FedxnorError(f"bn_stats {cfg.bn_stats!r}: choose one of {', '.join(BN_STATS)}")
        if cfg.optimizer not in ("", "sgd", "adam"):
            raise FedxnorError(f"optimizer {cfg.optimizer!r}: choose sgd or adam")
        if cfg.logit_adjust < 0:
            cfg = replace(cfg, logit_adjust=1.0 if cfg.is_bnn else 0.0)
        if cfg.momentum < 0 or cfg.prox_mu < 0:
            raise FedxnorError("momentum and prox_mu must be >= 0")
        if not 0 <= cfg.holdout < 1 or not 0 <= cfg.fedbat_phi < 1:
            raise FedxnorError("holdout and fedbat_phi must be in [0, 1)")
        if cfg.vae not in ("mlp", "conv"):
            raise FedxnorError(f"vae {cfg.vae!r}: choose mlp or conv")
        return cfg

    @property
    def is_bnn(self) -> bool:
        return self.model in MODELS

    @property
    def model_config(self):
        """The BNN or full-precision model's config (sizes, input encoding)."""
        return MODELS.get(self.model) or FP_MODELS[self.model]

    @property
    def learning_rate(self) -> float:
        # BNN: Adam 0.002 with the logit adjustment (without it, 0.001: faster clients drift apart under label skew;
        # bench/results/federated_fedbnn_ablation.json)
        return self.lr or (0.002 if self.is_bnn else 0.1)

    def lr_at(self, rnd: int) -> float:
        """The clients' learning rate in round rnd (0-based): a decay over the rounds damps the round-to-round
        swing of the global model that the sampled clients' skew causes, so the last round is not a lottery."""
        if self.lr_schedule == "cosine":
            return self.learning_rate * 0.5 * (1.0 + math.cos(math.pi * rnd / self.rounds))
        return self.learning_rate

    def fingerprint(self) -> str:
        d = asdict(self)
        for key in LEGACY_VAE:  # left out where they change nothing (not FedHyBNN) or at the values runs had before
            if self.algo != "fedhybnn" or d[key] == LEGACY_VAE[key]:  # they existed: those runs' fingerprints stay valid
                del d[key]
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


LEGACY_VAE = {"vae": "mlp", "vae_bits": 200, "vae_kl": 0.01}  # FedHyBNN's VAE before the conv VAE


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers (stable across machines and Python versions)."""
    h = hashlib.sha256(b"fedxnor:" + b",".join(str(int(p)).encode() for p in parts)).digest()
    return int.from_bytes(h[:8], "little") >> 1
