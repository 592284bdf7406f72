"""verify_export: run the generated RTL of an export on test images and score it
against the bit-exact reference. `fedxnor verify` and `fedxnor flow` call this."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from fedxnor.contract.devices import get_device
from fedxnor.contract.network import check_hardware
from fedxnor.errors import FedxnorError, ToolError
from fedxnor.export.manifest import load_export
from fedxnor.export.reference import Reference
from fedxnor.sim import adapter
from fedxnor.sim.env import SIMULATORS
from fedxnor.sim.runner import build_design, run_job
from fedxnor.sim.scoreboard import Scoreboard

MAX_CYCLES_PER_IMAGE = 200_000  # a deadlock is reported after this many cycles per image, or more (deadlock_budget)


def deadlock_budget(export, stall_in: float, stall_out: float) -> int:
    """Cycles per image after which a run counts as deadlocked: MAX_CYCLES_PER_IMAGE, or four times what the cycle
    model says an image takes (its interval plus its latency), stretched by the stalls, when that is more (a conv
    network folded small for a UP5K takes ~250,000 cycles an image)."""
    from fedxnor.contract.cycles import cycles_per_inference, latency_cycles

    model = cycles_per_inference(export.layers) + latency_cycles(export.layers)
    busy = max(0.05, 1.0 - max(stall_in, stall_out))
    return max(MAX_CYCLES_PER_IMAGE, int(4 * model / busy))


def verify_export(export_dir, sim: str = "verilator", images: int | None = None, waves: bool = False,
                  progress: bool = True, data_dir=None, *, mode: str = "batch", stall_in: float = 0.0,
                  stall_out: float = 0.0, seed: int = 0, debug: bool = True, inputs: np.ndarray | None = None,
                  reference_dir=None, build_root=None, run_dir=None, device: str | None = None) -> dict[str, Any]:
    """Simulate the export's RTL on test images and compare every class (and, with the debug
    stream, every hidden layer's activation bits) with the reference.

    Returns a JSON-ready dict: images, mismatches (images with any difference), cycles
    (simulated), images_per_s (checked images per wall-clock second of simulation), and
    details (first_mismatch with image, layer, neuron, expected, got; build and run times).

    device: simulate the RTL as that device's board build makes it (read registers, weight ROM tiles).

    Test-only hooks: `inputs` (prepared integer inputs instead of the test set),
    `reference_dir` (score against another export's reference: a deliberately broken
    RTL), `mode`/`stall_*`/`seed` (cycle-level drivers, random back-pressure).
    """
    if sim not in SIMULATORS:
        raise FedxnorError(f"unknown simulator {sim!r}: use one of {', '.join(SIMULATORS)}")
    if images is not None and images < 1:
        raise FedxnorError("--images must be at least 1")
    if mode not in ("batch", "cycle"):
        raise FedxnorError(f"unknown mode {mode!r}: use 'batch' or 'cycle'")
    if device is not None:
        get_device(device)  # an unknown name is a one-line error before any work
    say = (lambda m: print(f"verify: {m}", file=sys.stderr, flush=True)) if progress else None
    export = load_export(Path(export_dir))
    check_hardware([info.spec for info in export.layers])  # conv and max-pool: issue 21, before any work
    ref = Reference(load_export(Path(reference_dir)) if reference_dir is not None else export)
    if inputs is None:
        from fedxnor.export.recorded_data import reference_inputs

        raw, _labels = reference_inputs(ref, Path(data_dir) if data_dir else None, images)
        x = ref.prepare(raw)
    else:
        x = np.asarray(inputs, np.int64)[:images]
    if len(x) == 0:
        raise FedxnorError("no images to verify")
    expected = ref.run(x)
    board = Scoreboard.from_reference(expected, ref.export)

    t_build = time.perf_counter()
    build = build_design(export, sim, waves=waves, root=Path(build_root) if build_root else None, log=say,
                         device=device)
    build_s = time.perf_counter() - t_build
    n = len(x)
    last = [time.monotonic()]

    def tick(done: int) -> None:
        if say and (time.monotonic() - last[0] > 5 or done >= n):
            say(f"{done}/{n} images on {sim}")
            last[0] = time.monotonic()

    job = {"mode": mode, "stall_in": stall_in, "stall_out": stall_out, "seed": seed, "debug": debug,
           "batch_depth": adapter.BATCH_DEPTH, "max_cycles_per_image": deadlock_budget(export, stall_in, stall_out)}
    scratch = run_dir is None and not waves  # a run directory of our own, removed only if the run succeeds
    if run_dir is None:
        # Under the persistent build directory, never a temporary one: a failed run's log must outlive the command.
        runs = build.directory / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        run_dir = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=runs))
    t_run = time.perf_counter()
    out = run_job(build, job, x, Path(run_dir), progress=tick)  # a ToolError leaves run_dir and its sim.log behind
    run_s = time.perf_counter() - t_run
    got = out["classes"]
    if len(got) != n:
        raise ToolError(sim, f"the RTL produced {len(got)} classes for {n} images", out["log"])
    if scratch:
        shutil.rmtree(run_dir, ignore_errors=True)
    report = board.check(got, out["activations"])
    sim_s = out["sim_wall_s"]
    result: dict[str, Any] = {
        "images": report.images,
        "mismatches": report.mismatches,
        "cycles": out["cycles"],
        "images_per_s": report.images / sim_s if sim_s > 0 else None,
        "cycles_per_s": out["cycles"] / sim_s if sim_s > 0 else None,
        "cycles_per_image": out["cycles"] / report.images,
        "sim": sim,
        "mode": mode,
        "dut": adapter.dut_kind(),
        "class_mismatches": report.class_mismatches,
        "activation_mismatches": report.activation_mismatches,
        "activations_checked": report.activations_checked,
        "mismatching_images_per_layer": report.per_layer,
        "first_mismatch": report.first.to_dict() if report.first else None,
        "build_s": round(build_s, 3),
        "build_cached": build.cached,
        "sim_s": round(sim_s, 3),
        "testbench_io_s": round(out["meta"]["io_s"], 3) if out["meta"].get("io_s") is not None else None,
        "run_s": round(run_s, 3),
        "waves": out["waves"],
        "export_sha256": export.sha256,
        "device": device,
    }
    if say:
        if report.first:
            say(f"FIRST MISMATCH: {report.first.describe()}")
        say(f"{report.images} images, {report.mismatches} mismatches, {out['cycles']} cycles, "
            f"{result['images_per_s']:.0f} images/s")
    return result
