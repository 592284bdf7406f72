"""The flow's preflight: the whole configuration checked against the data, the model and the board
before any stage runs (fedxnor/app/config.py has already checked keys, types and bounds).

What a stage would find out too late is found here: a model or algorithm that does not go
together, an IDX set that cannot be read or split among the clients, an export folding that
does not divide the layers (their sizes come from the data's image size and train.hidden), a
model that does not fit the board. Every refusal is one FedxnorError line naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fedxnor.errors import FedxnorError


def central_config(t: dict[str, Any], seed: int):
    """The flow's [train] table as central training's CentralConfig."""
    from fedxnor.train.central import CentralConfig

    kw: dict[str, Any] = {"lr": t["lr"]} if t["lr"] else {}
    if t["train_limit"]:
        kw["train_limit"] = t["train_limit"]
    return CentralConfig(model=t["model"], epochs=t["epochs"], seed=seed, hidden=tuple(t["hidden"]), **kw)


def federated_table(t: dict[str, Any]) -> dict[str, Any]:
    """The [train] table as train/federated.py's flow_train takes it (hidden as '256,256')."""
    from fedxnor.train.validate import format_hidden

    return dict(t, hidden=format_hidden(t["hidden"]))


def federated_config(t: dict[str, Any], seed: int, data_dir: Path | None):
    """The FederatedConfig flow_train builds from the [train] table (the same keys)."""
    from fedxnor.train.federated import FederatedConfig

    keys = ("model", "codec", "partition", "clients", "per_round", "rounds", "local_epochs", "lr", "train_limit")
    return FederatedConfig(algo=t["algo"], seed=seed, data_dir=str(data_dir) if data_dir else "",
                           hidden=federated_table(t)["hidden"], **{k: t[k] for k in keys})


def model_of(cfg: dict[str, Any], data_dir: Path | None):
    """The model config training will build (sizes from the data), with errors naming the [train] table."""
    from fedxnor.train.preflight import check_central_data, check_federated_data

    t = cfg["train"]
    try:
        if t["algo"] == "central":
            return check_central_data(central_config(t, cfg["seed"]), data_dir)
        return check_federated_data(federated_config(t, cfg["seed"], data_dir))
    except FedxnorError as e:
        raise FedxnorError(f"config [train] (algo {t['algo']}, model {t['model']}): {e}") from None


def check_folding(model_cfg, sizes: list[tuple[int, int]], e: dict[str, Any], board_solves: bool) -> None:
    """export.pe / export.simd against the model's layers (their sizes from the data), as the export stage will use them."""
    from fedxnor.train.to_export import foldings_from_values

    pe, simd = e["pe"], e["simd"]
    if board_solves:
        if pe or simd:
            raise FedxnorError("config: 'export.pe'/'export.simd' are ignored with export.fold = 'board' (the solver "
                               "picks the folding for build.board); drop them or set fold = 'manual'")
        return
    try:
        foldings_from_values(model_cfg.layer_specs(), pe or None, simd or None, names=("'export.pe'", "'export.simd'"))
    except FedxnorError as err:
        net = "-".join(str(n) for n, _ in sizes) + f"-{sizes[-1][1]}"
        raise FedxnorError(f"config: export folding for the {net} network: {err}") from None


def check_fit(model_cfg, sizes: list[tuple[int, int]], board: str, e: dict[str, Any]) -> None:
    """The model (its sizes from the data) on build.board: any folding when fold = 'board', else the given one."""
    from fedxnor.boards.build import check_fit_specs
    specs = model_cfg.layer_specs()
    net = f"{model_cfg.name} (" + "-".join(str(s[0]) for s in sizes) + f"-{sizes[-1][1]})"
    if e["fold"] == "board":
        try:
            check_fit_specs(specs, board, name=f"model {net}", board_label=f"build.board = '{board}'")
        except FedxnorError as err:
            raise FedxnorError(f"config: {err}; use smaller train.hidden widths or another board") from None
        return
    from fedxnor.train.to_export import foldings_from_values

    folds = foldings_from_values(specs, e["pe"] or None, e["simd"] or None, names=("'export.pe'", "'export.simd'"))
    pe, simd = [f.pe for f in folds if f], [f.simd for f in folds if f]
    try:
        check_fit_specs(specs, board, folds,
                        name=f"model {net}", board_label=f"build.board = '{board}' with export.pe {pe}, export.simd {simd}")
    except FedxnorError as err:
        raise FedxnorError(f"config: {err}; or set export.fold = 'board' to let the solver pick a folding that fits") from None


def preflight(ctx, selected: list[str], pipeline) -> None:
    """Everything that needs no training: stage inputs present, data readable, model, folding and fit."""
    for stage in pipeline:
        if stage.name in selected and stage.name != "report":  # the report takes whatever stages ran
            for dep in stage.needs:
                if dep not in selected and not (ctx.dir(dep) / "stage.json").is_file():
                    raise FedxnorError(f"stage '{dep}' has no output in {ctx.dir(dep)}: run it first "
                                       f"(fedxnor flow --only {dep}), or include it")
    cfg = ctx.cfg
    if not {"train", "export", "build"} & set(selected):
        return
    from fedxnor.train.models import MODELS
    from fedxnor.train.preflight import layer_sizes

    model_cfg = model_of(cfg, ctx.data_dir)
    sizes = layer_sizes(model_cfg)
    exports = {"export", "build"} & set(selected)
    if exports and cfg["train"]["model"] not in MODELS:
        raise FedxnorError(f"config: 'train.model' = '{cfg['train']['model']}' is a full-precision baseline and cannot be "
                           "exported: pick a BNN model (mlp-small, mlp, ...) or drop the export and build stages")
    board_solves = cfg["export"]["fold"] == "board" and "build" in cfg["stages"]
    if "export" in selected:
        check_folding(model_cfg, sizes, cfg["export"], board_solves)
    if "build" in selected:
        check_fit(model_cfg, sizes, cfg["build"]["board"], cfg["export"])
