"""`fedxnor flow`: the main job end to end, as resumable stages.

Stages run in order: train -> export -> reference -> verify -> build -> report.
Each writes into RUN/<stage>/ and records RUN/<stage>/stage.json with its summary
and a fingerprint of everything it depended on (its config and its inputs'
fingerprints). A rerun skips a stage whose fingerprint is unchanged, so a flow
that failed resumes where it stopped; --force reruns, --only/--skip choose.

Exit codes: 0 done; 1 a check failed (reference or RTL disagrees); 2 bad input
or configuration (before any work); 3 a stage failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedxnor.app.config import STAGES, dump_toml, load_config
from fedxnor.atomic import write_text_atomic
from fedxnor.errors import FedxnorError
from fedxnor.progress import log


class CheckFailed(Exception):
    """A stage ran but its check failed (e.g. a mismatch): exit code 1."""


@dataclass
class Context:
    cfg: dict[str, Any]
    run_dir: Path
    progress: bool = True

    def dir(self, stage: str) -> Path:
        return self.run_dir / stage

    def summary(self, stage: str) -> dict[str, Any]:
        path = self.dir(stage) / "stage.json"
        if not path.is_file():
            raise FedxnorError(f"stage '{stage}' has no output in {self.dir(stage)}: run it first "
                               f"(fedxnor flow --only {stage})")
        return json.loads(path.read_text())["summary"]

    @property
    def data_dir(self) -> Path | None:
        return Path(self.cfg["data"]) if self.cfg["data"] else None


# ---------------------------------------------------------------- stages


def stage_train(ctx: Context) -> dict[str, Any]:
    t = ctx.cfg["train"]
    out = ctx.dir("train")
    if t["algo"] == "central":
        from fedxnor.app.flow_check import central_config
        from fedxnor.train.central import train_central

        ckpt = train_central(central_config(t, ctx.cfg["seed"]), out, ctx.data_dir, progress=ctx.progress)
    else:
        from fedxnor.app.flow_check import federated_table
        from fedxnor.train.federated import flow_train  # the federated part of the flow

        ckpt = flow_train(federated_table(t), ctx.cfg["seed"], out, ctx.data_dir, progress=ctx.progress)
    metrics = json.loads((out / "metrics.json").read_text())
    meta = metrics.get("meta", {})
    summary = {"checkpoint": str(ckpt), "algo": t["algo"], "model": t["model"],
               "test_accuracy": meta.get("test_accuracy"), "metrics": str(out / "metrics.json")}
    for key in ("uplink_bytes_total", "downlink_bytes_total", "uplink_bits_per_param", "rounds"):
        if key in meta:
            summary[key] = meta[key]
    return summary


def stage_export(ctx: Context) -> dict[str, Any]:
    from fedxnor.export.manifest import load_export
    from fedxnor.train.to_export import export_checkpoint

    e = ctx.cfg["export"]
    ckpt = Path(ctx.summary("train")["checkpoint"])
    out = ctx.dir("export") / "model"
    pe, simd = e["pe"] or None, e["simd"] or None
    if e["fold"] == "board" and "build" in ctx.cfg["stages"]:
        from fedxnor.boards.platforms import foldings_for_board  # the solver picks (P, L) for the board

        export_checkpoint(ckpt, out, data_dir=ctx.data_dir)
        folds = foldings_for_board(load_export(out), ctx.cfg["build"]["board"])
        export_checkpoint(ckpt, out, foldings=folds, data_dir=ctx.data_dir)
    else:
        export_checkpoint(ckpt, out, pe, simd, data_dir=ctx.data_dir)
    exp = load_export(out)
    return {"directory": str(out), "manifest_sha256": exp.sha256,
            "layers": [layer_summary(i) for i in exp.layers]}


def layer_summary(info) -> dict[str, Any]:
    """One layer of an export for the stage record: its kind and sizes, and its folding if it has weights."""
    spec = info.spec
    out = {"name": spec.name, "kind": spec.kind, "in_size": spec.in_size, "out_size": spec.out_size,
           "input_bits": spec.input_bits}
    if spec.has_weights:
        out.update(fan_in=spec.fan_in, fan_out=spec.fan_out, pe=info.pe, simd=info.simd, weight_depth=info.weight_depth,
                   weight_bits=spec.weight_bits)
    return out


def stage_reference(ctx: Context) -> dict[str, Any]:
    import numpy as np

    from fedxnor.export.manifest import PREDICTIONS_FILE
    from fedxnor.export.recorded_data import reference_inputs
    from fedxnor.export.reference import Reference

    directory = Path(ctx.summary("export")["directory"])
    ref = Reference(directory)
    images, labels = reference_inputs(ref, ctx.data_dir, ctx.cfg["reference"]["images"])
    res = ref.classify(images)
    torch_pred = np.frombuffer((directory / PREDICTIONS_FILE).read_bytes(), np.uint8)[: len(labels)]
    mismatches = int((res.classes != torch_pred).sum())
    summary = {"images": len(labels), "accuracy": float((res.classes == labels).mean()),
               "agreement": float((res.classes == torch_pred).mean()), "mismatches": mismatches}
    if mismatches:
        raise CheckFailed(f"reference disagrees with torch eval on {mismatches} images")
    return summary


def stage_verify(ctx: Context) -> dict[str, Any]:
    from fedxnor.sim.verify import verify_export

    v = ctx.cfg["verify"]
    result = verify_export(ctx.summary("export")["directory"], sim=v["sim"], images=v["images"],
                           progress=ctx.progress, data_dir=ctx.data_dir)
    if result["mismatches"]:
        raise CheckFailed(f"RTL disagrees with the reference on {result['mismatches']} of {result['images']} images")
    return dict(result, sim=v["sim"])


def stage_build(ctx: Context) -> dict[str, Any]:
    from fedxnor.boards.build import build_board

    return build_board(ctx.summary("export")["directory"], ctx.cfg["build"]["board"], ctx.dir("build"),
                       progress=ctx.progress, target_mhz=ctx.cfg["build"].get("clock_mhz"))


def stage_report(ctx: Context) -> dict[str, Any]:
    from fedxnor.app.flow_report import write_report

    return write_report(ctx)


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[Context], dict[str, Any]]
    needs: tuple[str, ...]
    config: tuple[str, ...]  # config keys the stage's result depends on


PIPELINE = [
    Stage("train", stage_train, (), ("seed", "data", "train")),
    Stage("export", stage_export, ("train",), ("data", "export", "build")),
    Stage("reference", stage_reference, ("export",), ("data", "reference")),
    Stage("verify", stage_verify, ("export",), ("data", "verify")),
    Stage("build", stage_build, ("export",), ("build",)),
    Stage("report", stage_report, ("train", "export", "reference", "verify", "build"), ()),
]
assert [s.name for s in PIPELINE] == STAGES


def fingerprint(ctx: Context, stage: Stage, selected: list[str]) -> str:
    parts: dict[str, Any] = {"stage": stage.name, "config": {k: ctx.cfg[k] for k in stage.config}}
    for dep in stage.needs:
        path = ctx.dir(dep) / "stage.json"
        if dep in selected or path.is_file():
            parts[dep] = json.loads(path.read_text())["fingerprint"] if path.is_file() else None
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def run_flow_config(cfg: dict[str, Any], only: list[str] | None = None, skip: list[str] | None = None,
                    force: bool = False, progress: bool = True) -> int:
    run_dir = Path(cfg["out"])
    ctx = Context(cfg, run_dir, progress)
    selected = [s for s in cfg["stages"] if (not only or s in only) and s not in (skip or [])]
    for name in (only or []) + (skip or []):
        if name not in STAGES:
            raise FedxnorError(f"unknown stage {name!r}; stages are {', '.join(STAGES)}")
    preflight(ctx, selected)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / "config.toml", dump_toml(cfg))
    results: list[tuple[str, str, float]] = []
    code = 0
    for i, stage in enumerate(s for s in PIPELINE if s.name in selected):
        fp = fingerprint(ctx, stage, selected)
        record = ctx.dir(stage.name) / "stage.json"
        if not force and record.is_file() and json.loads(record.read_text()).get("fingerprint") == fp \
                and stage.name != "report":
            log(f"[{stage.name}] up to date, skipped (use --force to rerun)")
            results.append((stage.name, "cached", 0.0))
            continue
        log(f"[{i + 1}/{len(selected)}] {stage.name}")
        t0 = time.monotonic()
        ctx.dir(stage.name).mkdir(parents=True, exist_ok=True)
        status = "ok"
        try:
            summary = stage.run(ctx)
        except CheckFailed as e:
            summary, status, code = {"error": str(e)}, "check-failed", 1
        except FedxnorError as e:
            summary, status, code = {"error": str(e)}, "failed", 3
        except Exception as e:  # a bug or a tool crash: keep the traceback in the stage directory
            write_text_atomic(ctx.dir(stage.name) / "error.txt", traceback.format_exc())
            summary, status, code = {"error": f"{type(e).__name__}: {e}"}, "failed", 3
        seconds = round(time.monotonic() - t0, 1)
        if status == "ok":
            write_text_atomic(record, json.dumps({"stage": stage.name, "status": status, "fingerprint": fp,
                                                  "seconds": seconds, "summary": summary}, indent=1) + "\n")
        else:
            record.unlink(missing_ok=True)
        results.append((stage.name, status, seconds))
        if status != "ok":
            print(f"fedxnor flow: stage '{stage.name}' {status}: {summary['error']}", file=sys.stderr)
            break
    print_summary(ctx, results)
    return code


def preflight(ctx: Context, selected: list[str]) -> None:
    """Checks that need no work (fedxnor/app/flow_check.py): stage inputs, data, model, folding, fit on the board."""
    from fedxnor.app.flow_check import preflight as check_all

    check_all(ctx, selected, PIPELINE)


def print_summary(ctx: Context, results: list[tuple[str, str, float]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"fedxnor flow: {ctx.run_dir}")
    for col in ("stage", "status", "seconds", "headline"):
        table.add_column(col)
    for name, status, seconds in results:
        headline = ""
        path = ctx.dir(name) / "stage.json"
        if path.is_file() and status in ("ok", "cached"):
            s = json.loads(path.read_text())["summary"]
            headline = headline_of(name, s)
        table.add_row(name, status, f"{seconds:.1f}", headline)
    Console(stderr=True).print(table)


def headline_of(name: str, s: dict[str, Any]) -> str:
    if name == "train":
        return f"test accuracy {s.get('test_accuracy', 0):.4f}"
    if name == "export":
        return "folding " + ", ".join(f"{la['pe']}x{la['simd']}" if "pe" in la else "-" for la in s["layers"])
    if name == "reference":
        return f"accuracy {s['accuracy']:.4f}, agreement {s['agreement']:.4f} on {s['images']} images"
    if name == "verify":
        return f"{s['mismatches']} mismatches on {s['images']} images"
    if name == "build":
        return f"{s.get('board', '')} Fmax {s.get('fmax_mhz', 0):.1f} MHz"
    if name == "report":
        return s.get("report", "")
    return ""


# ---------------------------------------------------------------- CLI


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flow", help="run the main job end to end: train, export, reference, verify, build, report")
    p.add_argument("--config", type=Path, default=None, help="TOML configuration (defaults: fedxnor/app/config.py)")
    p.add_argument("--out", type=Path, default=None, help="run directory (overrides 'out')")
    p.add_argument("--only", nargs="+", default=None, metavar="STAGE", help="run only these stages")
    p.add_argument("--skip", nargs="+", default=None, metavar="STAGE", help="skip these stages")
    p.add_argument("--force", action="store_true", help="rerun stages that are up to date")
    p.add_argument("--print-config", action="store_true", help="print the effective configuration and exit")
    p.set_defaults(func=run_flow)


def run_flow(args: argparse.Namespace) -> int:
    overrides = {"out": str(args.out)} if args.out else None
    cfg = load_config(args.config, overrides)
    if args.print_config:
        print(dump_toml(cfg), end="")
        return 0
    return run_flow_config(cfg, args.only, args.skip, args.force)
