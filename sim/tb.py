"""The cocotb testbench (runs inside the simulator; started by fedxnor.sim.runner).

One test, `run_job`, reads the job file named by FEDXNOR_SIM_JOB and runs its
images through fedxnor_sim_top in one of two modes:

* "batch" (fast): images are written into the wrapper's image memory through
  VPI, one `start` per batch of up to 256 images, one wait for `done`, results
  read back from the wrapper's memories. Stalls come from the wrapper's own
  seeded generator. The testbench touches the simulator a few times per image,
  never per clock cycle.
* "cycle": the cocotb StreamDriver / StreamMonitors of fedxnor.sim.streams drive
  the DUT's streams directly, cycle by cycle, with random stalls drawn in Python.

Results (classes, per-layer debug activations, cycles) go to an .npz file; the
scoreboard compares them with the reference outside the simulator.
"""

from __future__ import annotations

import json
import os
import random
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout

from fedxnor.contract.beats import int_bits
from fedxnor.sim.ports import SimPorts
from fedxnor.sim.streams import StreamDriver, StreamMonitor


class JobError(Exception):
    pass


def _write_results(job: dict, ports: SimPorts, classes: list[int], acts: list[list[np.ndarray]] | None,
                   cycles: int, wall: float, error: str | None) -> None:
    nl = len(ports.hidden_sizes)
    arrays = {"classes": np.asarray(classes, np.int64)}
    debug = acts is not None
    if debug:
        for i in range(nl):
            rows = [a[i] for a in acts]
            arrays[f"act{i}"] = np.stack(rows) if rows else np.zeros((0, ports.hidden_sizes[i]), np.uint8)
    meta = {"cycles": cycles, "wall_s": wall, "io_s": job.get("_io_s"), "hidden_layers": nl, "debug": debug, "error": error,
            "mode": job["mode"], "images": len(classes)}
    tmp = job["results"] + ".tmp.npz"
    np.savez(tmp, meta=np.array(json.dumps(meta)), **arrays)
    os.replace(tmp, job["results"])


def _progress(job: dict, done: int) -> None:
    with open(job["progress"], "a") as f:
        f.write(f"{done}\n")


@cocotb.test()
async def run_job(dut):
    with open(os.environ["FEDXNOR_SIM_JOB"]) as f:
        job = json.load(f)
    ports = SimPorts.from_dict(job["ports"])
    x = np.load(job["inputs"])
    debug = bool(job.get("debug", True)) and ports.has_debug
    Clock(dut.clk, job["clock_period_ns"], "ns", impl="gpi").start()
    dut.rst.value = 1
    for name in ("start", "count", "stall_in", "stall_out", "seed", "x_in_valid", "x_in_payload", "x_out_ready",
                 "x_dbg_ready"):
        getattr(dut, name).value = 0
    dut.direct.value = 1 if job["mode"] == "cycle" else 0
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    classes: list[int] = []
    acts: list[list[np.ndarray]] | None = [] if debug else None
    error = None
    c0 = int(dut.cycles.value)
    t0 = time.perf_counter()
    try:
        if job["mode"] == "batch":
            await _run_batches(dut, job, ports, x, classes, acts)
        elif job["mode"] == "cycle":
            await _run_cycles(dut, job, ports, x, classes, acts)
        else:
            raise JobError(f"unknown mode {job['mode']!r}")
    except JobError as e:
        error = str(e)
    except Exception as e:  # noqa: BLE001 - a testbench bug still writes results, so the runner reports it with the log
        error = f"testbench error {type(e).__name__}: {e}"
    wall = time.perf_counter() - t0
    cycles = int(dut.cycles.value) - c0
    _write_results(job, ports, classes, acts, cycles, wall, error)


async def _run_batches(dut, job, ports: SimPorts, x, classes, acts) -> None:
    depth = int(job["batch_depth"])
    images = ports.pack_images(x)
    dut.stall_in.value = int(round(job.get("stall_in", 0.0) * 256)) if job.get("stall_in", 0.0) < 1 else 255
    dut.stall_out.value = int(round(job.get("stall_out", 0.0) * 256)) if job.get("stall_out", 0.0) < 1 else 255
    rng = random.Random(job.get("seed", 0))
    per_image = int(job["max_cycles_per_image"])
    period = job["clock_period_ns"]
    img_mem, res_cls = dut.img_mem, dut.res_cls
    # Icarus drops the unused memory of a DUT without debug port; a conv network's is one memory per hidden layer
    res_dbg = dut.res_dbg if acts is not None and not ports.tagged else None
    res_maps = [getattr(dut, f"res_dbg{layer}") for layer in range(len(ports.hidden_sizes))] \
        if acts is not None and ports.tagged else None
    io_s = 0.0
    for start in range(0, len(images), depth):
        batch = images[start : start + depth]
        t_io = time.perf_counter()
        for i, word in enumerate(batch):
            img_mem[i].value = word
        io_s += time.perf_counter() - t_io
        dut.seed.value = rng.getrandbits(32)
        dut.count.value = len(batch)
        dut.start.value = 1
        await RisingEdge(dut.clk)
        dut.start.value = 0
        await RisingEdge(dut.clk)
        if not int(dut.done.value):
            try:
                await with_timeout(RisingEdge(dut.done), per_image * (len(batch) + 8) * period, "ns")
            except cocotb.triggers.SimTimeoutError:
                raise JobError(f"the DUT did not finish images {start}..{start + len(batch) - 1} within "
                               f"{per_image} cycles per image (deadlock, or lost beats)") from None
        t_io = time.perf_counter()
        for i in range(len(batch)):
            classes.append(ports.decode_class(int(res_cls[i].value)))
            if res_maps is not None:
                acts.append([int_bits([int(mem[i].value)], m)[0] for mem, m in zip(res_maps, ports.hidden_sizes)])
            elif acts is not None:
                acts.append(ports.decode_debug_word(int(res_dbg[i].value)))
        io_s += time.perf_counter() - t_io
        _progress(job, start + len(batch))
    job["_io_s"] = io_s


async def _run_cycles(dut, job, ports: SimPorts, x, classes, acts) -> None:
    rng = random.Random(job.get("seed", 0))
    stall_in, stall_out = float(job.get("stall_in", 0.0)), float(job.get("stall_out", 0.0))
    images = ports.pack_images(x)
    n = len(images)
    driver = StreamDriver(dut.clk, dut.x_in_valid, dut.x_in_ready, dut.x_in_payload, stall_in, random.Random(rng.random()))
    out_mon = StreamMonitor(dut.clk, dut.x_out_valid, dut.x_out_ready, dut.x_out_payload, stall_out,
                            random.Random(rng.random()))
    tasks = [cocotb.start_soon(out_mon.run())]
    dbg_mon = None
    if acts is not None:
        dbg_mon = StreamMonitor(dut.clk, dut.x_dbg_valid, dut.x_dbg_ready, dut.x_dbg_payload, stall_out,
                                random.Random(rng.random()))
        tasks.append(cocotb.start_soon(dbg_mon.run()))
    else:
        dut.x_dbg_ready.value = 1  # drain the debug stream if the DUT has one
    beats = [b for img in images for b in ports.beats_of(img)]
    send = cocotb.start_soon(driver.send(beats))
    per_image = int(job["max_cycles_per_image"])
    budget = per_image * (n + 8)
    waited = 0
    while True:
        have = len(out_mon.beats)
        dbg_have = len(dbg_mon.beats) if dbg_mon else 0
        if have >= n and (dbg_mon is None or dbg_have >= n * ports.dbg_beats) and send.done():
            break
        if waited > budget:
            raise JobError(f"the DUT produced {have} of {n} classes within {budget} cycles (deadlock, or lost beats)")
        await ClockCycles(dut.clk, 64)
        waited += 64
        _progress(job, min(have, n))
    await ClockCycles(dut.clk, 16)  # extra beats after the last expected one are errors
    for t in tasks:
        t.cancel()
    if len(out_mon.beats) != n:
        raise JobError(f"the DUT produced {len(out_mon.beats)} classes for {n} images")
    classes.extend(ports.decode_class(v) for v in out_mon.beats)
    if dbg_mon is not None:
        if len(dbg_mon.beats) != n * ports.dbg_beats:
            raise JobError(f"the DUT produced {len(dbg_mon.beats)} debug beats for {n} images "
                           f"({ports.dbg_beats} per image expected)")
        per_layer = ports.split_debug(dbg_mon.beats, n)  # by tag for a conv network, image by image otherwise
        acts.extend([layer[i] for layer in per_layer] for i in range(n))
    _progress(job, n)
