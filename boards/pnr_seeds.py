"""Place and route one synthesized netlist with several nextpnr seeds and keep the fastest.

nextpnr's placement depends on its seed, and on a large design the routed Fmax moves with it by
more than any single fix (the ULX3S sfc build: 95.35 MHz with seed 1, 109.19 MHz with seed 2, same
netlist). Amaranth's build script calls "$NEXTPNR_ECP5" / "$NEXTPNR_ICE40" once; run_flow points
that variable at a small script that runs this module instead, which:

  1. runs the real nextpnr once per seed (up to `jobs` at a time), each writing its own log,
     report and configuration (`NAME.seedN.EXT`),
  2. reads each report's Fmax (the slowest non-POR clock, as the build report does),
  3. renames the fastest seed's files to the names the script asked for, so the packer
     (icepack/ecppack) and the build report see that placement,
  4. writes seeds.json beside the report: {"seeds": [{"seed", "fmax_mhz", "exit"}...], "chosen": seed,
     "ram_output_registers": N}.

With `ram_outreg` (ECP5) it first moves the flip-flops after each block RAM into the RAM's output
register (boards/ecp5_outreg.py) and places that netlist (NAME.outreg.json beside Yosys' NAME.json).

A seed whose nextpnr fails is skipped; when every seed fails, the first seed's log is kept under the
requested name (run_flow reads over-use from it) and its exit status is returned.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fedxnor.boards.ecp5_outreg import absorb_file

# nextpnr options whose value is a file this run writes: each seed gets its own
OUTPUT_OPTIONS = ("--log", "--report", "--textcfg", "--asc", "--write")
SUMMARY = "seeds.json"  # beside the report
RAM_OUTREG_FLAG = "--ram-outreg"  # the stand-in's own option, before nextpnr's


def slowest_clock_mhz(report: dict) -> float | None:
    """The routed Fmax of a nextpnr --report JSON: the slowest clock other than the power-on reset's."""
    fmax = report.get("fmax", {})
    clocks = {k: v for k, v in fmax.items() if "por" not in k.lower()} or fmax
    return min(float(v["achieved"]) for v in clocks.values()) if clocks else None


def option_value(argv: Sequence[str], option: str) -> str | None:
    """The value after `option` in argv (None if absent)."""
    for opt, value in zip(argv, argv[1:]):
        if opt == option:
            return value
    return None


def seed_name(path: str, seed: int) -> str:
    """'top.tim' -> 'top.seed2.tim' (the seed's own copy of an output file)."""
    p = Path(path)
    return str(p.with_name(f"{p.stem}.seed{seed}{p.suffix}"))


def seed_argv(argv: Sequence[str], seed: int) -> tuple[list[str], dict[str, str]]:
    """nextpnr's arguments for one seed, and {requested output: the seed's output}."""
    out, renames, i = [], {}, 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--seed":
            i += 2
            continue
        if arg in OUTPUT_OPTIONS and i + 1 < len(argv):
            renames[argv[i + 1]] = seed_name(argv[i + 1], seed)
            out += [arg, renames[argv[i + 1]]]
            i += 2
            continue
        out.append(arg)
        i += 1
    return ["--seed", str(seed), *out], renames


def with_option(argv: Sequence[str], option: str, value: str) -> list[str]:
    """argv with the value after `option` replaced."""
    out = list(argv)
    out[out.index(option) + 1] = value
    return out


def run_seeds(nextpnr: str, seeds: Sequence[int], argv: Sequence[str], jobs: int = 2, ram_outreg: bool = False) -> int:
    """Run nextpnr for each seed, keep the fastest placement under the requested names; exit status.

    ram_outreg: place the netlist with its block RAMs' output flip-flops moved into the RAMs (ECP5)."""
    moved = None
    netlist = option_value(argv, "--json")
    if ram_outreg and netlist:
        own = Path(netlist).with_name(f"{Path(netlist).stem}.outreg.json")
        moved = absorb_file(netlist, own)
        argv = with_option(argv, "--json", str(own))
    plans = {seed: seed_argv(argv, seed) for seed in seeds}
    report_opt = option_value(argv, "--report")

    def one(seed: int) -> int:
        return subprocess.run([nextpnr, *plans[seed][0]], check=False).returncode

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        codes = dict(zip(seeds, pool.map(one, seeds)))
    results = []
    for seed in seeds:
        fmax = None
        if codes[seed] == 0 and report_opt:
            try:
                fmax = slowest_clock_mhz(json.loads(Path(plans[seed][1][report_opt]).read_text()))
            except (OSError, json.JSONDecodeError, KeyError, ValueError):
                fmax = None
        results.append({"seed": seed, "fmax_mhz": None if fmax is None else round(fmax, 2), "exit": codes[seed]})
    ok = [r for r in results if r["exit"] == 0]
    # no report asked for: every seed is as good; keep the first that routed
    chosen = max(ok, key=lambda r: r["fmax_mhz"] or 0.0)["seed"] if ok else seeds[0]
    for requested, own in plans[chosen][1].items():
        if Path(own).exists():
            Path(own).replace(requested)
    if report_opt:
        summary = Path(report_opt).with_name(SUMMARY)
        summary.write_text(json.dumps({"seeds": results, "chosen": chosen if ok else None,
                                       "ram_output_registers": moved}, indent=1))
    return 0 if ok else codes[seeds[0]]


def wrapper_script(path: Path, nextpnr: str, seeds: Sequence[int], jobs: int, ram_outreg: bool = False) -> Path:
    """A shell script that stands in for nextpnr in Amaranth's build script (an env var holds one executable)."""
    seed_list = ",".join(str(s) for s in seeds)
    flag = f" {RAM_OUTREG_FLAG}" if ram_outreg else ""
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m fedxnor.boards.pnr_seeds "{nextpnr}" {seed_list} {jobs}{flag} "$@"\n')
    path.chmod(0o755)
    return path


def main(argv: Sequence[str]) -> int:
    nextpnr, seed_list, jobs, *rest = argv
    ram_outreg = bool(rest) and rest[0] == RAM_OUTREG_FLAG
    return run_seeds(nextpnr, [int(s) for s in seed_list.split(",")], rest[ram_outreg:], int(jobs), ram_outreg)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
