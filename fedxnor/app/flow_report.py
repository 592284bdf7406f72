"""The flow's report: report.md and report.html built only from the stages' recorded outputs.

Every figure in the report is read from a stage.json (or a file a stage wrote);
tests/test_flow.py checks that they are equal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fedxnor.app.report import Report


def _load(ctx, stage: str) -> dict[str, Any] | None:
    path = ctx.dir(stage) / "stage.json"
    return json.loads(path.read_text())["summary"] if path.is_file() else None


def training_curves(metrics_path: Path, out_dir: Path) -> list[str]:
    """Accuracy against rounds (or epochs) and against cumulative uplink bytes; returns image names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = json.loads(Path(metrics_path).read_text())
    hist = metrics.get("history") or metrics.get("rounds") or []
    if not hist:
        return []
    xkey = "round" if "round" in hist[0] else "epoch"
    acc_key = "test_accuracy" if "test_accuracy" in hist[0] else "accuracy"
    xs = [h[xkey] for h in hist]
    ys = [h[acc_key] for h in hist]
    def plot(x, xlabel: str, name: str) -> str:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot(x, ys, marker="o")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=110)
        plt.close(fig)
        return name

    names = [plot(xs, xkey, "accuracy.png")]
    if "uplink_bytes" in hist[0]:
        cum = [sum(h["uplink_bytes"] for h in hist[: i + 1]) / 1e6 for i in range(len(hist))]
        names.append(plot(cum, "cumulative uplink MB", "accuracy_vs_uplink.png"))
    return names


def write_report(ctx) -> dict[str, Any]:
    out_dir = ctx.dir("report")
    out_dir.mkdir(parents=True, exist_ok=True)
    train, export, ref = _load(ctx, "train"), _load(ctx, "export"), _load(ctx, "reference")
    verify, build = _load(ctx, "verify"), _load(ctx, "build")
    r = Report("fedxnor flow report")
    headline: dict[str, Any] = {}
    r.para(f"Run directory: {ctx.run_dir}. Configuration: config.toml beside the stage directories.")

    rows = []
    if train:
        headline["train_test_accuracy"] = train.get("test_accuracy")
        rows.append(["training", f"{train['algo']} / {train['model']}", "test accuracy (torch eval)",
                     train.get("test_accuracy")])
        if "uplink_bits_per_param" in train:
            headline["uplink_bits_per_param"] = train["uplink_bits_per_param"]
            rows.append(["training", "communication", "uplink bits per parameter", train["uplink_bits_per_param"]])
        if "uplink_bytes_total" in train:
            headline["uplink_bytes_total"] = train["uplink_bytes_total"]
            rows.append(["training", "communication", "total uplink bytes", train["uplink_bytes_total"]])
    if ref:
        headline.update(reference_accuracy=ref["accuracy"], reference_agreement=ref["agreement"])
        rows.append(["reference", f"{ref['images']} test images", "accuracy", ref["accuracy"]])
        rows.append(["reference", "vs torch eval", "agreement", ref["agreement"]])
    if verify:
        headline.update(verify_mismatches=verify["mismatches"], verify_images=verify["images"])
        rows.append(["verification", f"{verify.get('sim', '')}, {verify['images']} images", "mismatches",
                     verify["mismatches"]])
        if "images_per_s" in verify:
            rows.append(["verification", verify.get("sim", ""), "images per second (simulated)",
                         verify["images_per_s"]])
    if build:
        for key, label in (("fmax_mhz", "post-route Fmax (MHz)"), ("clock_mhz", "clock (MHz)"),
                           ("cycles_per_inference", "cycles per inference"),
                           ("inferences_per_s", "inferences per second"),
                           ("bram_bound_share", "share of block-RAM bandwidth bound")):
            if key in build:
                headline[key] = build[key]
                rows.append(["hardware", build.get("board", ""), label, build[key]])
    r.heading("Headline")
    r.table(["stage", "what", "figure", "value"], rows)

    if train:
        images = training_curves(Path(train["metrics"]), out_dir)
        if images:
            r.heading("Training")
            for name in images:
                r.image(name, name.removesuffix(".png").replace("_", " "))
    if export:
        r.heading("Folding")
        r.para("Per layer: fan-in N, fan-out M, input bits, PE rows P and SIMD lanes L (docs/datapath.md).")
        r.table(["layer", "kind", "N", "M", "input bits", "P", "L", "ROM depth per PE", "weight bits"],
                [[la["name"], la.get("kind", "dense"), *(la.get(k, "-") for k in ("fan_in", "fan_out", "input_bits", "pe",
                                                                                "simd", "weight_depth", "weight_bits"))]
                 for la in export["layers"]])
    if build and isinstance(build.get("utilisation"), dict):
        r.heading("Utilisation")
        r.table(["resource", "used", "available"],
                [[k, v.get("used"), v.get("available")] for k, v in build["utilisation"].items()
                 if isinstance(v, dict)])
        if build.get("bitstream"):
            r.para(f"Bitstream: {build['bitstream']}")
    r.write(out_dir)
    (out_dir / "headline.json").write_text(json.dumps(headline, indent=1) + "\n")
    return {"report": str(out_dir / "report.md"), "html": str(out_dir / "report.html"), "headline": headline}
