"""Export directory -> QONNX model: standard ONNX (Flatten, MatMul, Conv, MaxPool) plus QONNX's BipolarQuant and
MultiThreshold.

Torch-free. The graph takes pixel/255 as float (bnn_pynq's convention; NCHW (1, C, H, W) for a conv network) and outputs
the class scores:

    [Flatten] -> MultiThreshold (the input mapping: bit = pixel >= T, the 8-bit pixel itself, or input.map[pixel] as
                                 one threshold per step of a non-decreasing map, out_bias = map[0])
              -> per layer: MatMul or Conv (activations, BipolarQuant(±1 weights)) -> MultiThreshold(dot >= t, out 2x-1)
                            (hidden layers; t = 2T - N for bipolar inputs, T otherwise); MaxPool; Flatten before the
                            first dense layer after a map (its weight columns permuted from HWC to the graph's CHW)
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


def _input_thresholds(export: Export) -> tuple[np.ndarray, str, float]:
    """MultiThreshold thresholds on x = pixel/255 that reproduce prepare_inputs exactly, the output datatype and the
    output bias (the value of pixel 0)."""
    spec, first = export.manifest["input"], export.network.layers[0]
    enc = spec.get("encoding", "raw")
    div = np.float32(PIXEL_DIVISOR)
    bias = 0.0
    # x = float32(p) / 255 is strictly increasing in p (steps of 1/255 dwarf one ulp), so x >= float32(k)/255 iff p >= k.
    if enc == "pixels-binarized":
        levels = [int(spec["threshold"])]
    elif enc in ("pixels", "raw") and first.encoding == "unsigned" and first.input_bits <= 8:
        levels = list(range(1, 1 << first.input_bits))
    elif enc == "pixels-mapped":
        q = np.asarray(spec["map"], np.int64)
        steps = np.diff(q)
        if (steps < 0).any():
            raise FedxnorError("the input map falls somewhere (not monotone in the pixel); a MultiThreshold cannot express it, "
                               "so export-qonnx covers non-decreasing maps only")
        levels = [p for p in range(1, 256) for _ in range(int(steps[p - 1]))]  # the output steps up by one per threshold
        bias = float(q[0])
    else:
        raise FedxnorError(f"input encoding {enc!r} with a {first.input_bits}-bit {first.encoding} first layer has no pixel/255 "
                           "form; export-qonnx covers pixel-input models (8-bit, mapped or binarized pixels)")
    t = (np.asarray(levels, np.float32) / div).reshape(1, -1)
    if first.encoding == "bipolar":
        return t, "BIPOLAR", bias
    if first.encoding == "signed":
        return t, f"INT{first.input_bits}", bias
    return t, "BINARY" if len(levels) == 1 else f"UINT{first.input_bits}", bias


def _weights(info, layer, prev_map) -> np.ndarray:
    """The layer's ±1 weights in the graph's layout: (N, M) for MatMul (columns of a layer after a map permuted from the
    contract's HWC flatten to the graph's CHW Flatten), (M, C, k, k) for Conv."""
    w = 2.0 * layer.weights.astype(np.float32) - 1.0  # (M, K), rows already inverted
    spec = info.spec
    if spec.kind == "conv":
        return w.reshape(spec.out_c, spec.k, spec.k, spec.in_c).transpose(0, 3, 1, 2)
    if prev_map is not None:
        h, wd, c = prev_map
        w = w.reshape(len(w), h, wd, c).transpose(0, 3, 1, 2).reshape(len(w), -1)
    return w.T


def build_model(export: Export):
    """The QONNX ModelWrapper of an export (not yet checked). Maps are NCHW in the graph (Brevitas' layout): the input is
    (1, C, H, W) when the first layer is a conv, and a dense layer after a map reads its CHW Flatten."""
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    layers, infos = export.network.layers, export.layers
    maps = infos[0].kind != "dense"
    shape = [int(d) for d in export.manifest["input"]["shape"]]
    image_map = None  # a dense first layer on a multi-channel image reads the graph's CHW flatten of it
    if maps:
        h, w, c = infos[0].spec.in_shape
        in_shape = [1, c, h, w]
    elif len(shape) == 3 and shape[2] > 1:
        image_map = tuple(shape)
        in_shape = [1, shape[2], shape[0], shape[1]]
    else:
        in_shape = [1, *shape]
    for info in infos:
        if info.kind == "conv" and info.spec.pad and info.encoding == "bipolar":
            raise FedxnorError(f"layer {info.index} pads a ±1 map with -1 bits; ONNX's Conv pads with 0, so this network has "
                               "no QONNX form fedxnor reads back (export-qonnx covers conv layers without padding on bits)")
    nodes, inits = [], {}
    t_in, in_dtype, in_bias = _input_thresholds(export)
    bipolar_out = {"out_dtype": "BIPOLAR", "out_scale": 2.0, "out_bias": -1.0}
    in_attrs = bipolar_out if in_dtype == "BIPOLAR" else {"out_dtype": in_dtype, **({"out_bias": in_bias} if in_bias else {})}
    src = "global_in"
    if not maps:
        nodes.append(helper.make_node("Flatten", ["global_in"], ["pixels"], axis=1, name="flatten"))
        src = "pixels"
    nodes.append(helper.make_node("MultiThreshold", [src, "input_thresholds"], ["a0"], domain=DOMAIN, name="input_map",
                                  **in_attrs))
    inits["input_thresholds"] = t_in
    dtypes = {"a0": in_dtype}
    cur, prev_map = "a0", None
    for i, (info, layer) in enumerate(zip(infos, layers)):
        spec = info.spec
        if spec.kind == "maxpool":
            nodes.append(helper.make_node("MaxPool", [cur], [f"a{i + 1}"], kernel_shape=[spec.k, spec.k],
                                          strides=[spec.stride, spec.stride], name=f"pool{i}"))
            cur, prev_map = f"a{i + 1}", spec.out_shape
            dtypes[cur] = "BIPOLAR"
            continue
        if spec.kind == "dense" and prev_map is not None:
            nodes.append(helper.make_node("Flatten", [cur], [f"flat{i}"], axis=1, name=f"flatten{i}"))
            cur = f"flat{i}"
            dtypes[cur] = "BIPOLAR"
        inits[f"w{i}"] = _weights(info, layer, prev_map or (image_map if i == 0 else None))
        inits[f"w{i}_scale"] = np.float32(1.0)
        nodes.append(helper.make_node("BipolarQuant", [f"w{i}", f"w{i}_scale"], [f"w{i}_q"], domain=DOMAIN, name=f"l{i}_wq"))
        dot = "global_out" if layer.is_output else f"dot{i}"
        if spec.kind == "conv":
            nodes.append(helper.make_node("Conv", [cur, f"w{i}_q"], [dot], kernel_shape=[spec.k, spec.k],
                                          strides=[spec.stride, spec.stride], pads=[spec.pad] * 4, name=f"conv{i}"))
            prev_map = spec.out_shape
        else:
            nodes.append(helper.make_node("MatMul", [cur, f"w{i}_q"], [dot], name=f"fc{i}"))
            prev_map = None
        dtypes[f"w{i}_q"] = "BIPOLAR"
        if layer.is_output:
            break
        n = layer.fan_in
        t = layer.thresholds * 2 - n if layer.encoding == "bipolar" else layer.thresholds  # dot = 2 acc - N, or acc
        inits[f"t{i}"] = t.astype(np.float32).reshape(-1, 1)
        nodes.append(helper.make_node("MultiThreshold", [dot, f"t{i}"], [f"a{i + 1}"], domain=DOMAIN, name=f"l{i}_sign",
                                      **bipolar_out))
        cur = f"a{i + 1}"
        dtypes[cur] = "BIPOLAR"
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
    raw = np.asarray(raw)  # channels-last; source_predictions transposes (N, H, W, C) to the graph's NCHW
    if raw.ndim == 3 and ref.export.layers[0].kind != "dense":  # (N, H, W): one channel
        raw = raw[..., None]
    theirs = source_predictions(model, raw, PIXEL_DIVISOR)
    differ = np.flatnonzero(ours != theirs)
    if differ.size:
        raise DisagreementError(f"qonnx's executor disagrees with the reference on {differ.size} of {len(raw)} images "
                                f"(first: image {int(differ[0])}); nothing written; this is a fedxnor bug, please report it")
    write_bytes_atomic(out, model.model.SerializeToString())
    return {"out": str(out), "checked_images": int(len(raw)), "agreement": 1.0, "nodes": len(model.graph.node)}
