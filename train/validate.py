"""Bounds on every training value a user can give, shared by `fedxnor train` and the flow's TOML.

One table (LIMITS) says what each value may be; check() refuses anything else with
one FedxnorError line that names the flag or key, the value and the fix. NaN, inf,
negative seeds and absurd sizes never reach the training loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fedxnor.errors import FedxnorError


@dataclass(frozen=True)
class Limit:
    kind: type  # int or float
    lo: float
    hi: float
    lo_open: bool = False  # lo itself is refused (a learning rate of 0 trains nothing)
    hi_open: bool = False
    example: str = ""

    def describe(self) -> str:
        left, right = ("(" if self.lo_open else "["), (")" if self.hi_open else "]")
        if self.kind is int:
            return f"an integer in {self.lo:,}..{self.hi:,}"
        return f"a finite number in {left}{self.lo:g}, {self.hi:g}{right}"


# What a user can ask for. The upper bounds are far above any useful run and keep memory and time finite.
LIMITS: dict[str, Limit] = {
    "epochs": Limit(int, 1, 10_000, example="8"),
    "rounds": Limit(int, 1, 100_000, example="20"),
    "clients": Limit(int, 1, 100_000, example="100"),
    "per_round": Limit(int, 1, 100_000, example="10"),
    "local_epochs": Limit(int, 1, 1_000, example="1"),
    "batch": Limit(int, 2, 65_536, example="64"),  # BatchNorm needs two samples per batch
    "seed": Limit(int, 0, 2**32 - 1, example="0"),
    "train_limit": Limit(int, 1, 10**9, example="5000"),
    "test_limit": Limit(int, 1, 10**9, example="1000"),
    "hidden": Limit(int, 1, 4_096, example="256 256"),
    "min_nodes": Limit(int, 1, 10_000, example="2"),
    "lr": Limit(float, 0.0, 10.0, lo_open=True, example="0.005"),
    "momentum": Limit(float, 0.0, 1.0, hi_open=True, example="0.9"),
    "prox_mu": Limit(float, 0.0, 1_000.0, example="0.01"),
    "logit_adjust": Limit(float, 0.0, 100.0, example="1"),
    "clock_mhz": Limit(float, 1.0, 400.0, example="36"),
    "images": Limit(int, 1, 10**7, example="1000"),
    "fold": Limit(int, 1, 1 << 16, example="8"),  # one PE or SIMD count of an export folding
    "vae_bits": Limit(int, 1, 4_096, example="512"),  # FedHyBNN's latent bits (the head's input width)
    "vae_kl": Limit(float, 0.0, 100.0, example="0.01"),
    "vae_epochs": Limit(int, 1, 10_000, example="10"),
}
MAX_HIDDEN_LAYERS = 8


def check(name: str, value, label: str | None = None):
    """`value` for LIMITS[name], or a FedxnorError naming `label` (the flag or TOML key)."""
    lim = LIMITS[name]
    label = label or "--" + name.replace("_", "-")
    fix = f"give {lim.describe()}" + (f", e.g. {label} {lim.example}" if lim.example and label.startswith("--") else "")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (lim.kind is int and not isinstance(value, int)):
        raise FedxnorError(f"{label} {value!r} is not {'an integer' if lim.kind is int else 'a number'}: {fix}")
    if lim.kind is float and not math.isfinite(value):
        raise FedxnorError(f"{label} {value} is not finite: {fix}")
    too_low = value < lim.lo or (lim.lo_open and value == lim.lo)
    too_high = value > lim.hi or (lim.hi_open and value == lim.hi)
    if too_low or too_high:
        raise FedxnorError(f"{label} {value} is out of range: {fix}")
    return value


def check_hidden(widths, label: str = "--hidden") -> tuple[int, ...]:
    """Hidden layer widths: 1..MAX_HIDDEN_LAYERS integers, each within LIMITS['hidden']."""
    widths = list(widths)
    if not 1 <= len(widths) <= MAX_HIDDEN_LAYERS:
        raise FedxnorError(f"{label} takes 1..{MAX_HIDDEN_LAYERS} hidden layer widths, got {len(widths)}: "
                           f"e.g. {label} 256 256")
    for w in widths:
        check("hidden", w, label)
    return tuple(int(w) for w in widths)


def parse_hidden(text: str, label: str = "hidden") -> tuple[int, ...]:
    """'256,256' (FederatedConfig's form, a scalar for Flower's run config) -> (256, 256); '' -> ()."""
    if not text:
        return ()
    try:
        widths = [int(w) for w in text.split(",")]
    except ValueError:
        raise FedxnorError(f"{label} {text!r}: give comma-separated integers, e.g. 256,256") from None
    return check_hidden(widths, label)


def format_hidden(widths) -> str:
    return ",".join(str(int(w)) for w in widths)


def check_federated_values(cfg) -> None:
    """Every number of a FederatedConfig (from the CLI, the flow or a Flower run config) within LIMITS.

    Its sentinels stay: lr 0 and a negative logit_adjust mean the algorithm's default, a limit of 0 means all."""
    for name in ("rounds", "clients", "per_round", "local_epochs", "batch", "seed"):
        check(name, getattr(cfg, name), name)
    for name in ("momentum", "prox_mu", "vae_bits", "vae_kl", "vae_epochs"):
        check(name, getattr(cfg, name), name)
    if cfg.lr != 0:
        check("lr", cfg.lr, "lr")
    if not (isinstance(cfg.logit_adjust, (int, float)) and cfg.logit_adjust < 0):
        check("logit_adjust", cfg.logit_adjust, "logit_adjust")
    for name in ("train_limit", "test_limit"):
        if getattr(cfg, name) != 0:
            check(name, getattr(cfg, name), name)
    parse_hidden(cfg.hidden)
