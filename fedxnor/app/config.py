"""The flow's configuration: a TOML file over defaults kept in one place (DEFAULTS).

Validation happens before any work: an unknown key, a wrong type, a bad
choice or a value out of its bounds (NaN, inf, negative, absurdly large: the
limits of train/validate.py, shared with `fedxnor train`) is one FedxnorError
line naming the key and the fix. What needs the data or the model (the input
size, the folding, the fit on the board) is checked by fedxnor/app/flow_check.py,
still before any stage runs.
"""

from __future__ import annotations

import copy
import difflib
import tomllib
from pathlib import Path
from typing import Any

from fedxnor.errors import FedxnorError
from fedxnor.train.validate import MAX_HIDDEN_LAYERS, check, check_hidden

STAGES = ["train", "export", "reference", "verify", "build", "report"]

# The defaults of `fedxnor flow` (what `make demo` runs). Types are taken from these values;
# CHOICES restricts strings; lists are lists of integers.
DEFAULTS: dict[str, Any] = {
    "out": "runs/demo",
    "seed": 0,
    "data": "",  # IDX directory; "" means Debian's Fashion-MNIST
    "stages": list(STAGES),
    "train": {
        "algo": "fedbnn",  # central | fedavg | fedbnn | fedbat | fedhybnn | signsgd | efsign
        "model": "mlp-small",  # fits the iCEBreaker's UP5K block RAM
        "epochs": 3,  # central training only
        "rounds": 20,
        "clients": 100,
        "per_round": 10,
        "local_epochs": 2,
        "partition": "iid",
        "codec": "fedbat",  # "" = the algorithm's own codec; fedbat: ~1 bit per parameter uplink
        "lr": 0.005,  # Adam for BNNs; 0 = the algorithm's default (0.001 suits non-IID partitions better)
        "train_limit": 0,  # use only the first N training samples (0 = all); for quick runs
        "hidden": [],  # hidden layer widths, e.g. [256, 256] ([] = the model's); the input size comes from the data
        "vae": "conv",  # fedhybnn only: the binary-latent VAE (conv | mlp)
        "vae_bits": 512,  # fedhybnn only: its latent bits, the BNN head's input width
    },
    "export": {"pe": [], "simd": [], "fold": "board"},  # fold: board (solver for build.board) | manual
    "reference": {"images": 10000},
    "verify": {"sim": "verilator", "images": 1000},
    "build": {"board": "icebreaker"},
}

CHOICES: dict[str, list[str]] = {
    "train.algo": ["central", "fedavg", "fedbnn", "fedbat", "fedhybnn", "signsgd", "efsign"],
    "train.partition": ["iid", "dir0.3", "cls3"],
    "train.codec": ["", "fp32", "sign", "efsign", "fedbat"],
    "train.vae": ["mlp", "conv"],
    "export.fold": ["board", "manual"],
    "verify.sim": ["verilator", "icarus"],
    "build.board": ["icebreaker", "ice40-hx8k", "ulx3s-85f"],
}

# key -> its limit in train/validate.py's LIMITS (a key listed in ZERO_MEANS_DEFAULT may also be 0)
BOUNDED = {"seed": "seed", "train.epochs": "epochs", "train.rounds": "rounds", "train.clients": "clients",
           "train.per_round": "per_round", "train.local_epochs": "local_epochs", "train.lr": "lr",
           "train.train_limit": "train_limit", "reference.images": "images", "verify.images": "images",
           "build.clock_mhz": "clock_mhz", "train.vae_bits": "vae_bits"}
ZERO_MEANS_DEFAULT = {"train.lr", "train.train_limit"}
# keys that may be left out (no default value): key -> type
OPTIONAL: dict[str, type] = {"build.clock_mhz": float}
MAX_STRING = 4096
MAX_LIST = 64


def _type_name(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a table"}[type(v)]


def _check(defaults: dict[str, Any], given: dict[str, Any], prefix: str, where: str) -> dict[str, Any]:
    out = copy.deepcopy(defaults)
    for key, value in given.items():
        name = f"{prefix}{key}"
        if name in OPTIONAL and key not in defaults:
            if type(value) not in (OPTIONAL[name], int) or isinstance(value, bool):
                raise FedxnorError(f"{where}: '{name}' must be a number, got {value!r}")
            out[key] = _bounded(name, float(value), where)
            continue
        if key not in defaults:
            close = difflib.get_close_matches(key, list(defaults), n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else f"; known keys: {', '.join(defaults)}"
            raise FedxnorError(f"{where}: unknown key '{name}'{hint}")
        want = defaults[key]
        if isinstance(want, dict):
            if not isinstance(value, dict):
                raise FedxnorError(f"{where}: '{name}' must be a table ([{name}])")
            out[key] = _check(want, value, f"{name}.", where)
            continue
        ok = type(value) is type(want) or (isinstance(want, float) and type(value) is int)
        if not ok:
            raise FedxnorError(f"{where}: '{name}' must be {_type_name(want)}, got {value!r}")
        if isinstance(want, list):
            kind = str if key == "stages" else int
            if not all(type(v) is kind for v in value):
                raise FedxnorError(f"{where}: '{name}' must be a list of {'strings' if kind is str else 'integers'}")
            if len(value) > MAX_LIST:
                raise FedxnorError(f"{where}: '{name}' has {len(value)} entries; at most {MAX_LIST}")
        if isinstance(value, str) and (len(value) > MAX_STRING or "\x00" in value):
            raise FedxnorError(f"{where}: '{name}' must be a plain string of at most {MAX_STRING} characters")
        if name in CHOICES and value not in CHOICES[name]:
            raise FedxnorError(f"{where}: '{name}' = {value!r} is not one of {', '.join(CHOICES[name])}")
        out[key] = _bounded(name, float(value) if isinstance(want, float) else value, where)
    return out


def _bounded(name: str, value: Any, where: str) -> Any:
    """The value of key `name` within its limits (train/validate.py), or one FedxnorError line naming the key."""
    try:
        if name in BOUNDED and not (name in ZERO_MEANS_DEFAULT and value == 0):
            check(BOUNDED[name], value, f"'{name}' =")
        elif name == "train.hidden" and value:
            check_hidden(value, f"'{name}' =")
        elif name in ("export.pe", "export.simd"):
            for v in value:
                check("fold", v, f"'{name}' entry")
    except FedxnorError as e:
        hint = " (0 = the default)" if name in ZERO_MEANS_DEFAULT else ""
        hint += f" (at most {MAX_HIDDEN_LAYERS} widths)" if name == "train.hidden" else ""
        raise FedxnorError(f"{where}: {e}{hint}") from None
    return value


def _codec_follows_algo(cfg: dict[str, Any], given: dict[str, Any]) -> None:
    """The default codec (fedbat) and learning rate belong to the default algorithm (fedbnn): a config that
    names another algorithm gets that algorithm's own codec and rate (fedavg -> fp32, SGD 0.1, ...) unless it
    names them too."""
    t = given.get("train", {})
    if isinstance(t, dict) and "algo" in t and t["algo"] != DEFAULTS["train"]["algo"]:
        for key, own in (("codec", ""), ("lr", 0.0)):
            if key not in t:
                cfg["train"][key] = own


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults, then the TOML file, then overrides (already nested dicts), all validated."""
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FedxnorError(f"{path}: no such config file")
        try:
            given = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise FedxnorError(f"{path}: not valid TOML ({e})") from None
        cfg = _check(cfg, given, "", str(path))
        _codec_follows_algo(cfg, given)
    if overrides:
        cfg = _check(cfg, overrides, "", "command line")
        _codec_follows_algo(cfg, overrides)
    unknown = [s for s in cfg["stages"] if s not in STAGES]
    if unknown:
        raise FedxnorError(f"config: unknown stage {unknown[0]!r} in 'stages'; stages are {', '.join(STAGES)}")
    if not cfg["stages"]:
        raise FedxnorError(f"config: 'stages' is empty; name some of {', '.join(STAGES)}")
    if not cfg["out"]:
        raise FedxnorError("config: 'out' is empty; name a run directory, e.g. out = \"runs/demo\"")
    t = cfg["train"]
    if t["per_round"] > t["clients"]:
        raise FedxnorError(f"config: 'train.per_round' ({t['per_round']}) exceeds 'train.clients' ({t['clients']})")
    if t["algo"] != "fedhybnn" and (t["vae"], t["vae_bits"]) != (DEFAULTS["train"]["vae"], DEFAULTS["train"]["vae_bits"]):
        raise FedxnorError("config: 'train.vae' and 'train.vae_bits' set FedHyBNN's VAE: use them with algo = 'fedhybnn'")
    if cfg["export"]["fold"] == "manual" and not cfg["export"]["pe"] and not cfg["export"]["simd"]:
        raise FedxnorError("config: 'export.fold' = 'manual' needs 'export.pe' and/or 'export.simd'")
    return cfg


def dump_toml(cfg: dict[str, Any]) -> str:
    """The effective configuration as TOML (written into the run directory)."""
    lines: list[str] = []

    def val(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return repr(v)

    for k, v in cfg.items():
        if not isinstance(v, dict):
            lines.append(f"{k} = {val(v)}")
    for k, v in cfg.items():
        if isinstance(v, dict):
            lines.append(f"\n[{k}]")
            lines += [f"{kk} = {val(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"
