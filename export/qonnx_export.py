"""Export directory -> QONNX model: standard ONNX (Flatten, MatMul) plus QONNX's BipolarQuant and MultiThreshold.

Torch-free. The graph takes pixel/255 as float (bnn_pynq's convention) and outputs the class scores:

    Flatten -> MultiThreshold (the input mapping: bit = pixel >= T, or the 8-bit pixel itself)
            -> per layer: MatMul(activations, BipolarQuant(±1 weights))
                          -> MultiThreshold(dot >= t, out 2x-1)   hidden layers; t = 2T - N (bipolar) or T (unsigned)
            -> scores (the last MatMul: 2 acc - N or acc, the same order and ties as the accumulators)

Every value is an integer far below 2^24 in float32, so qonnx computes exactly what the reference computes;
the export still proves it on the test images before writing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fedxnor.atomic import write_bytes_atomic
from fedxnor.errors import FedxnorError
from fedxnor.export.manifest import Export

DOMAIN = "qonnx.custom_op.general"
PIXEL_DIVISOR = 255


def _input_thresholds(export: Export) -> tuple[np.ndarray, str]:
    """MultiThreshold thresholds on x = pixel/255 that reproduce prepare_inputs exactly, and the output datatype."""
    spec, first = export.manifest["input"], export.network.layers[0]
    enc = spec.get("encoding", "raw")
    div = np.float32(PIXEL_DIVISOR)
    # x = float32(p) / 255 is strictly increasing in p (steps of 1/255 dwarf one ulp), so x >= float32(k)/255 iff p >= k.
    if enc == "pixels-binarized":
        levels = [int(spec["threshold"])]
    elif enc in ("pixels", "raw") and first.encoding == "unsigned" and first.input_bits <= 8:
        levels = list(range(1, 1 << first.input_bits))
    else:
        raise FedxnorError(f"input encoding {enc!r} with a {first.input_bits}-bit {first.encoding} first layer has no pixel/255 "
                           "form; export-qonnx covers pixel-input models (8-bit or binarized pixels)")
    t = (np.asarray(levels, np.float32) / div).reshape(1, -1)
    if first.encoding == "bipolar":
        return t, "BIPOLAR"
    return t, "BINARY" if len(levels) == 1 else f"UINT{first.input_bits}"


def build_model(export: Export):
    """The QONNX ModelWrapper of an export (not yet checked)."""
    if any(info.kind != "dense" for info in export.layers):
        raise FedxnorError("export-qonnx writes networks of dense layers only; this export has conv or max-pool layers "
                           "(run it with 'fedxnor reference')")
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    layers = export.network.layers
    in_shape = [1, *[int(d) for d in export.manifest["input"]["shape"]]]
    nodes, inits = [], {}
    t_in, in_dtype = _input_thresholds(export)
    bipolar_out = {"out_dtype": "BIPOLAR", "out_scale": 2.0, "out_bias": -1.0}
    in_attrs = bipolar_out if in_dtype == "BIPOLAR" else {"out_dtype": in_dtype}
    nodes.append(helper.make_node("Flatten", ["global_in"], ["pixels"], axis=1, name="flatten"))
    nodes.append(helper.make_node("MultiThreshold", ["pixels", "input_thresholds"], ["a0"], domain=DOMAIN, name="input_map",
                                  **in_attrs))
    inits["input_thresholds"] = t_in
    dtypes = {"a0": in_dtype}
    for i, layer in enumerate(layers):
        inits[f"w{i}"] = (2.0 * layer.weights.T.astype(np.float32) - 1.0)  # (N, M), ±1, rows already inverted
        inits[f"w{i}_scale"] = np.float32(1.0)
        nodes.append(helper.make_node("BipolarQuant", [f"w{i}", f"w{i}_scale"], [f"w{i}_q"], domain=DOMAIN, name=f"fc{i}_wq"))
        dot = "global_out" if layer.is_output else f"dot{i}"
        nodes.append(helper.make_node("MatMul", [f"a{i}", f"w{i}_q"], [dot], name=f"fc{i}"))
        dtypes[f"w{i}_q"] = "BIPOLAR"
        if layer.is_output:
            break
        n = layer.fan_in
        t = layer.thresholds * 2 - n if layer.encoding == "bipolar" else layer.thresholds  # dot = 2 acc - N, or acc
        inits[f"t{i}"] = t.astype(np.float32).reshape(-1, 1)
        nodes.append(helper.make_node("MultiThreshold", [dot, f"t{i}"], [f"a{i + 1}"], domain=DOMAIN, name=f"fc{i}_sign",
                                      **bipolar_out))
        dtypes[f"a{i + 1}"] = "BIPOLAR"
    graph = helper.make_graph(
        nodes, "fedxnor", [helper.make_tensor_value_info("global_in", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("global_out", TensorProto.FLOAT, [1, layers[-1].fan_out])])
    model = ModelWrapper(qonnx_make_model(graph, producer_name="fedxnor",
                                          opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(DOMAIN, 1)]))
    for name, value in inits.items():
        model.set_initializer(name, np.asarray(value, np.float32))
    for name, dt in dtypes.items():
        model.set_tensor_datatype(name, DataType[dt])
    model.set_metadata_prop("fedxnor.input", f"pixel/{PIXEL_DIVISOR}")
    model.set_metadata_prop("fedxnor.manifest_sha256", export.sha256)
    return model


def check_model(model):
    """qonnx's own checks: cleanup, shape and datatype inference; onnx.checker on the graph."""
    import onnx
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.util.cleanup import cleanup_model

    onnx.checker.check_model(model.model)
    cleaned = cleanup_model(model).transform(InferShapes()).transform(InferDataTypes())
    if not cleaned.check_all_tensor_shapes_specified():
        raise FedxnorError("qonnx could not infer every tensor shape of the exported model; this is a fedxnor bug, please report it")
    return cleaned


def export_qonnx(directory: Path, out: Path, images: int | None = None, data_dir: Path | None = None) -> dict:
    """Write out (.onnx) unless qonnx's executor equals the reference on every checked image."""
    from fedxnor.export.qonnx_import import DisagreementError, source_predictions
    from fedxnor.export.recorded_data import reference_inputs
    from fedxnor.export.reference import Reference

    if images is not None and images < 1:
        raise FedxnorError(f"--images must be at least 1, got {images}")
    out = Path(out)
    if out.is_dir():
        raise FedxnorError(f"{out}: is a directory; give the .onnx file to write")
    ref = Reference(Path(directory))
    model = build_model(ref.export)
    check_model(model)
    raw, _labels = reference_inputs(ref, data_dir, images)
    ours = ref.classify(raw).classes
    theirs = source_predictions(model, np.asarray(raw).reshape(len(raw), -1), PIXEL_DIVISOR)
    differ = np.flatnonzero(ours != theirs)
    if differ.size:
        raise DisagreementError(f"qonnx's executor disagrees with the reference on {differ.size} of {len(raw)} images "
                                f"(first: image {int(differ[0])}); nothing written; this is a fedxnor bug, please report it")
    write_bytes_atomic(out, model.model.SerializeToString())
    return {"out": str(out), "checked_images": int(len(raw)), "agreement": 1.0, "nodes": len(model.graph.node)}
