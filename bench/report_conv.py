"""BENCHMARKS.md sections of the conv BNN benchmarks: central training, the fit on devices, RTL verification."""

from __future__ import annotations

from report_common import prov, table


def teacher_note(d: dict) -> str:
    """The distillation of a run with a teacher (train/distill.py), or nothing."""
    t = d.get("teacher")
    if not d.get("teacher_epochs") or not t:
        return ""
    return (f", distilled from {t['model']} ({t['epochs']} epochs, test accuracy {t['test_accuracy']}; weight "
            f"{d['distill_weight']}, temperature {d['temperature']})")


def conv_central(d: dict) -> str:
    a = d.get("agreement") or {}  # none yet: a run in pieces (--state) that has not reached its last epoch
    last = d["curve"][-1] if d["curve"] else {}
    # final acc: the exported network's, after BatchNorm re-estimation when the run did one (its own column shows
    # the accuracy before it); best epoch acc and first epoch at goal: the per-epoch curve, before any re-estimation
    rows = [[d["model"], d["config"]["description"], d["weight_bits"], len(d["curve"]), d.get("final_accuracy"),
             d.get("accuracy_before_bn_reestimate"), max(c["test_accuracy"] for c in d["curve"]), d["goal_accuracy"],
             d.get("first_epoch_at_goal"),
             a.get("test_images"), a.get("mismatches", "not yet exported"), last.get("epoch_seconds")]]
    variant = f"{len(d['curve'])} of {d['epochs_planned']} epochs, lr {d['lr']}" + (
        f", shifts of up to {d['augment_shift_pixels']} px and mirroring" if d.get("augment_shift_pixels") else "") + (
        teacher_note(d)) + (
        ", stopped by its deadline" if d.get("stopped_by_deadline") else "") + (
        ", in progress (resumable with --state)" if not d.get("agreement") else "")
    return (f"## Central conv BNN: {d['model']}, {variant} (`python bench/bench_conv_central.py`)\n\n"
            + table(["model", "network", "weight bits", "epochs", "final acc", "before BN re-estimation",
                     "best epoch acc", "goal", "first epoch at goal",
                     "export checked on", "export mismatches", "s per epoch (last)"], rows) + "\n\n"
            + table(["epoch", "loss", "test accuracy"], [[c["epoch"], c["loss"], c["test_accuracy"]] for c in d["curve"]])
            + "\n" + prov(d))


def conv_fit(d: dict) -> str:
    """bench/bench_conv_fit.py: the solver's plan per (model, device), modelled resources and throughput."""
    rows = []
    for r in d["runs"]:
        p = r.get("plan") or {}
        rows.append([r["model"], r["device"], r["weight_bits"], "yes" if r["fits"] else "no",
                     " ".join("-" if f is None else f"{f[0]}x{f[1]}" for f in p.get("foldings", [])) or "—",
                     p.get("cycles_per_inference"), p.get("inferences_per_s"), (p.get("clock_hz") or 0) / 1e6 or None,
                     p.get("luts_model"), p.get("ffs_model"), p.get("bram_model"), p.get("lcs_model"),
                     p.get("bram_bandwidth_share"), (r.get("yosys") or {}).get("luts"), r.get("reason")])
    return ("## Conv BNNs on the devices: the solver's fit (`python bench/bench_conv_fit.py`)\n\n"
            "Foldings P x L per layer (- for a max-pool), cycles from the exact event model (contract/mapcycles.py), "
            "resources from the cost model (contract/cost.py), inferences/s at the device's planning clock; "
            "Yosys LUTs where measured.\n\n"
            + table(["model", "device", "weight bits", "fits", "folding", "cycles/inference", "inferences/s", "clock MHz",
                     "LUTs (model)", "FFs (model)", "block RAM (model)", "LCs (model)", "BRAM bandwidth share",
                     "LUTs (Yosys)", "why not"], rows) + "\n" + prov(d))


def verify_conv(d: dict) -> str:
    """bench/bench_verify_conv.py: a trained conv BNN's RTL against the reference, every class and map bit."""
    rows = [[sim, r["images"], r["mismatches"], r["class_mismatches"], r["activation_mismatches"], r["cycles_per_image"],
             r["images_per_s"], r["sim_s"], r["build_s"]] for sim, r in d["simulators"].items()]
    layers = " -> ".join(f"{la['kind']} {'x'.join(map(str, la['out_shape']))}" for la in d["layers"])
    return (f"## RTL verification of a conv BNN: {d['model']} (`python bench/bench_verify_conv.py`)\n\n"
            f"{layers}; folded for {d['device']} ({d['fold']}); test accuracy of the checkpoint "
            f"{d.get('test_accuracy')}; model cycles/inference {d['model_cycles_per_inference']}, latency "
            f"{d['model_latency_cycles']}. Every class and every feature-map and hidden bit compared (the tagged "
            "debug stream).\n\n"
            + table(["simulator", "images", "mismatching images", "class mismatches", "activation mismatches",
                     "cycles/image", "images/s", "sim s", "build s"], rows) + "\n" + prov(d))


def conv_boards(d: dict) -> str:
    """bench/bench_conv_boards.py: conv BNN builds per board, with the gate-level check on iCE40."""
    rows = []
    for r in d["rows"]:
        u, g = r["utilisation"], r.get("gate_level") or {}
        rows.append([r["board"], r["model"], " ".join("-" if f is None else f"{f[0]}x{f[1]}" for f in r["foldings"]),
                     r["accuracy"], f"{u['lut']['used']}/{u['lut']['available']}", f"{u['ff']['used']}",
                     f"{u['bram']['used']}/{u['bram']['available']}", r["fmax_mhz"], r["clock_mhz"], r["timing_met"],
                     r["cycles_per_inference"], r["inferences_per_s"], r["bram_bound_share"],
                     f"{g['images']} images, {g['class_mismatches']}/{g['activation_mismatches']}" if g else "—",
                     ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in r.get("meets", {}).items())])
    return ("## Conv BNNs on the boards (`python bench/bench_conv_boards.py`)\n\n"
            "Post-route figures of the solver-folded conv export, its accuracy on the 10,000 test images (reference), "
            "and the gate-level simulation of the synthesized iCE40 core (class / activation mismatches).\n\n"
            + table(["board", "model", "folding", "accuracy", "LUTs", "FFs", "block RAM", "Fmax MHz", "clock MHz",
                     "timing met", "cycles/inference", "inferences/s", "BRAM bound share", "gate level", "goals met"], rows)
            + "\n" + prov(d))


def hybnn(d: dict) -> str:
    """bench/bench_hybnn.py: BNN heads on frozen binary VAE latents vs on binarized pixels, central."""
    b = d["baselines"]
    rows = [["binarized pixels", "—", 784, "—", "—", b["linear_probe_binarized_pixels"],
             *[h["test_accuracy"] for h in b["heads_on_binarized_pixels"][:2]]]]
    for r in d["rows"]:
        heads = {tuple(h["sizes"][1:-1]): h["test_accuracy"] for h in r["heads"]}
        rows.append([r["arch"] + " VAE", r["epochs"], r["latent_bits"], r["kl_weight"], r["recon_mse"], r["linear_probe"],
                     heads.get((256, 256)), heads.get((128,))])
    return ("## FedHyBNN's front end: BNN heads on frozen binary VAE bits (`python bench/bench_hybnn.py`)\n\n"
            f"VAE on {d['settings']['vae_data']}; heads on {d['settings']['head_data']}; accuracy on the "
            f"{d['settings']['test_images']} test images. The federated comparison is the HyBNN federated table.\n\n"
            + table(["input", "VAE epochs", "bits", "KL weight", "reconstruction MSE", "linear probe", "head 256-256",
                     "head 128"], rows) + "\n" + prov(d))
