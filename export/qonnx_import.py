"""QONNX binarized network (MLP or CNV-shaped) -> fedxnor integer network, folded exactly against qonnx's own executor.

Torch-free (onnx, qonnx, numpy). The graph is one chain (export/qonnx_layers.py, docs/qonnx.md): an input mapping,
conv blocks (Conv, BatchNorm, 1-bit activation, MaxPool), the flatten, fully connected layers, the output map.

Every elementwise chain is evaluated with qonnx's executor on EVERY value its input can take (all 256
pixels; every accumulator value of a layer), so the integer thresholds are those of the model as qonnx
runs it, including its float rounding. BatchNorm chains are also folded with export/thresholds.fold_thresholds
(the contract's float32 rule) and the two are compared; the report counts where onnxruntime rounds differently.
"""

from __future__ import annotations

import re

import numpy as np

from fedxnor.contract.dense import Dense
from fedxnor.contract.network import IntLayer, IntNetwork
from fedxnor.errors import FedxnorError
from fedxnor.export.qonnx_graph import execute_span, refuse, run_chain, with_batch
from fedxnor.export.qonnx_layers import MatLayer, conv_layer, dense_weights, nchw_shape, pool_layer, walk
from fedxnor.export.thresholds import fold_thresholds

TABLE_CELLS = 4_000_000  # table rows x neurons per executor call
MAX_MAPPED_BITS = 16  # the contract's widest first-layer input


def parse_input_scale(text: str) -> int:
    """'pixel/255' (bnn_pynq's ToTensor), 'pixel/256', 'pixel' -> the divisor."""
    m = re.fullmatch(r"\s*pixel\s*(?:/\s*(\d+))?\s*", text or "")
    if not m or (m.group(1) is not None and int(m.group(1)) < 1):
        raise FedxnorError(f"--input-scale {text!r}: use 'pixel/D' with a positive integer D (bnn_pynq: pixel/255) or 'pixel'")
    return int(m.group(1) or 1)


def input_mapping(model, pre: list, first: MatLayer, divisor: int) -> dict:
    """Evaluate the input chain on all 256 pixel values with qonnx's executor; express it in the contract."""
    batched = with_batch(model, 256)
    iname = batched.graph.input[0].name
    shape = batched.get_tensor_shape(iname)
    pix = np.arange(256, dtype=np.float32) / np.float32(divisor)
    x = np.broadcast_to(pix.reshape(256, *([1] * (len(shape) - 1))), shape).astype(np.float32)
    data = first.node.input[0]
    if pre:
        end = batched.get_node_from_name(pre[-1].name)
        vals = execute_span(batched, {iname: x}, batched.graph.node[0], end, data).reshape(256, -1)
    else:
        vals = x.reshape(256, -1)
    where = pre[-1] if pre else first.node
    if (vals != vals[:, :1]).any():
        raise refuse(where, "maps pixels differently at different positions; fedxnor's input mapping is one rule for all pixels")
    v = vals[:, 0].astype(np.float64)
    levels = np.unique(v)
    if levels.size <= 2 and (np.abs(levels) == np.abs(levels[-1])).all() and levels[-1] != 0 and (levels[0] < 0 or levels.size == 1):
        enc, bits, u = "bipolar", v > 0, float(np.abs(levels[-1]))
    elif levels.size <= 2 and levels[0] == 0 and levels[-1] >= 0:
        enc, bits, u = "unsigned", v > 0, float(levels[-1]) if levels[-1] > 0 else 1.0
    elif v[1] > 0 and np.array_equal(v, np.arange(256) * v[1]):
        return {"encoding": "unsigned", "input_bits": 8, "spec": {"encoding": "pixels"}, "value_scale": float(v[1]), "flip": False}
    else:
        return integer_mapping(model, pre, vals[:, 0], where)
    up, down = (np.diff(bits.astype(int)) >= 0).all(), (np.diff(bits.astype(int)) <= 0).all()
    flip = bool(down and not up)
    if not (up or down) or (flip and enc == "unsigned"):
        raise refuse(where, "maps pixels to bits non-monotonically; supported: bit = (pixel >= T) or bipolar (pixel < T)")
    on = ~bits if flip else bits
    threshold = int(256 - on.sum())  # on = (pixel >= threshold)
    return {"encoding": enc, "input_bits": 1, "spec": {"encoding": "pixels-binarized", "threshold": threshold},
            "value_scale": u, "flip": flip}


def integer_mapping(model, pre: list, v32: np.ndarray, where) -> dict:
    """A multi-level input (e.g. bnn_pynq CNV's 8-bit signed Quant of 2x - 1): v = q·u exactly in float32 for integers q
    and one step u (the Quant's scale, else the largest power of two that divides every value) -> the manifest's input
    map, pixel -> q, with the narrowest unsigned or two's complement width that holds it."""
    steps = []
    if pre and pre[-1].op_type == "Quant":
        sc = model.get_initializer(pre[-1].input[1])
        if sc is not None and np.asarray(sc).size == 1 and float(np.asarray(sc).reshape(-1)[0]) > 0:
            steps.append(float(np.asarray(sc, np.float32).reshape(-1)[0]))
    steps += [2.0 ** -e for e in range(0, 40)]
    v32 = np.asarray(v32, np.float32)
    for u in steps:
        q = np.rint(v32.astype(np.float64) / u)
        if np.abs(q).max() < 1 << MAX_MAPPED_BITS and np.array_equal((q * np.float32(u)).astype(np.float32), v32):
            break
    else:
        raise refuse(where, "does not map pixels to a binarized input (bipolar or 0/1) nor to multiples of one step; "
                            "supported: 2x-1 then BipolarQuant (TFC/SFC/LFC), an 8-bit Quant (CNV), pixel values times a constant")
    q = q.astype(np.int64)
    lo, hi = int(q.min()), int(q.max())
    if lo >= 0:
        enc, bits = "unsigned", max(1, hi.bit_length())
    else:
        enc, bits = "signed", max(2, max((-lo - 1).bit_length(), hi.bit_length()) + 1)
    if bits > MAX_MAPPED_BITS:
        raise refuse(where, f"maps pixels to {bits}-bit values; supported: first-layer inputs of at most {MAX_MAPPED_BITS} bits")
    return {"encoding": enc, "input_bits": bits, "spec": {"encoding": "pixels-mapped", "map": q.tolist()}, "value_scale": u,
            "flip": False}


def _pow2(x: np.ndarray) -> bool:
    x = np.abs(np.asarray(x, np.float64))
    return bool((x > 0).all() and (np.frexp(x)[0] == 0.5).all())


def fold_layer(model, layer: MatLayer, probe, c: np.ndarray, is_output: bool) -> dict:
    """Run the layer's chain on every accumulator value; return thresholds, inverted rows and the value scale. probe: the
    layer's specification (Dense or Conv); a conv's chain sees (rows, M, 1, 1) NCHW tensors."""
    lo, hi = probe.acc_range
    n, m = probe.fan_in, probe.fan_out
    k, off = (2, -n) if probe.encoding == "bipolar" else (1, 0)
    data = layer.node.output[0]
    where = layer.chain[0] if layer.chain else layer.node
    step = max(1, TABLE_CELLS // m)
    count = np.zeros(m, np.int64)
    rises, falls = np.zeros(m, bool), np.zeros(m, bool)
    last, mags = None, set()
    cols_equal, strict_up, strict_down = True, True, True
    for s in range(lo, hi + 1, step):
        acc = np.arange(s, min(hi + 1, s + step), dtype=np.int64)
        x = ((k * acc + off)[:, None] * c[None, :]).astype(np.float32)
        if layer.is_conv:
            x = x.reshape(len(acc), m, 1, 1)
        y = run_chain(model, layer.chain, data, x).reshape(len(acc), m).astype(np.float64)
        if not np.isfinite(y).all():
            raise refuse(where, "produces NaN or Inf for some accumulator value")
        if last is not None:
            y_ext = np.vstack([last, y])
        else:
            y_ext = y
        if is_output:
            cols_equal &= bool((y == y[:, :1]).all())
            d = np.diff(y_ext[:, 0])
            strict_up &= bool((d > 0).all())
            strict_down &= bool((d < 0).all())
        else:
            mags.update(np.unique(np.abs(y)).tolist())
            f = (y_ext > 0).astype(np.int8)
            d = np.diff(f, axis=0)
            rises |= (d > 0).any(axis=0)
            falls |= (d < 0).any(axis=0)
            count += (y > 0).sum(axis=0)
        last = y[-1:]
    if is_output:
        if not cols_equal:
            raise refuse(where, "maps the classes' scores differently (a per-class scale or BatchNorm); the argmax would change; "
                                "supported after the last layer: one scalar affine (TensorNorm) or nothing")
        if not (strict_up or strict_down):
            raise refuse(where, "is not strictly monotone over the scores (it merges or reorders them); the argmax would change")
        return {"invert_all": bool(strict_down and not strict_up)}
    if len(mags) > 1 or 0.0 in mags:
        raise refuse(where, f"does not produce ±1 activations (values {sorted(mags)[:4]}); supported: 1-bit activations "
                            "(BipolarQuant, or MultiThreshold with one threshold and out_scale 2, out_bias -1)")
    bad = np.flatnonzero(rises & falls)
    if bad.size:
        raise refuse(where, f"neuron {int(bad[0])} is not monotone in its accumulator; only BatchNorm-like chains fold to thresholds")
    inverted = falls & ~rises
    thresholds = (hi + 1 - count).astype(np.int64)  # fires on the top `count` values of acc (of acc' when inverted)
    return {"thresholds": thresholds, "inverted": inverted, "value": float(next(iter(mags)))}


def contract_fold(model, layer: MatLayer, probe, c: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """BatchNorm + BipolarQuant folded by the contract's float32 rule (fold_thresholds), when the chain is exactly that."""
    ops = [n.op_type for n in layer.chain if n.op_type != "Identity"]
    if ops != ["BatchNormalization", "BipolarQuant"] or not _pow2(c):
        return None
    bn = layer.chain[[n.op_type for n in layer.chain].index("BatchNormalization")]
    gamma, beta, mean, var = (np.asarray(model.get_initializer(t), np.float32) for t in bn.input[1:5])
    eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
    scale = gamma / np.sqrt(var + np.float32(eps))
    c32 = c.astype(np.float32)
    n = probe.fan_in
    acc_to_x = (2, -n) if probe.encoding == "bipolar" else (1, 0)
    return fold_thresholds(mean / c32, scale * c32, beta, acc_to_x, probe.acc_range)


def layer_text(spec) -> str:
    if spec.kind == "dense":
        return f"{spec.fan_in}x{spec.fan_out}"
    shape = "x".join(map(str, spec.in_shape))
    if spec.kind == "conv":
        return f"conv{spec.k}x{spec.k}/{spec.stride}p{spec.pad}:{shape}->{spec.out_c}"
    return f"pool{spec.k}x{spec.k}/{spec.stride}:{shape}"


def to_network(model, divisor: int) -> tuple[IntNetwork, dict, dict]:
    """The integer network, the manifest's input section and a report of how the graph was folded."""
    pre, steps = walk(model)
    inp = input_mapping(model, pre, steps[0], divisor)
    ishape = model.get_tensor_shape(model.graph.input[0].name)
    spec = {"shape": [int(d) for d in ishape[1:]], **inp["spec"], "qonnx_input": f"pixel/{divisor}"}
    u = inp["value_scale"]
    # what the first layer reads: a map (H, W, C) for a conv; a 4-D image flattened NCHW for a dense layer
    shape = nchw_shape(model, steps[0].node.input[0], steps[0].node) if steps[0].is_conv else None
    image = tuple(int(d) for d in ishape[1:])
    flat_from = (image[1], image[2], image[0]) if len(image) == 3 and image[0] > 1 else None
    layers, exact, adjusted, folded = [], _pow2(u), 0, {}
    for i, st in enumerate(steps):
        enc, b = (inp["encoding"], inp["input_bits"]) if i == 0 else ("bipolar", 1)
        if not isinstance(st, MatLayer):
            pool = pool_layer(st, shape)
            layers.append(IntLayer(None, None, spec=pool))
            shape = pool.out_shape
            continue
        is_output = i == len(steps) - 1
        if st.is_conv:
            probe, bits, s = conv_layer(model, st, shape, b, enc)
            shape = probe.out_shape
        else:
            if shape is not None:
                flat_from = shape
                n = model.get_tensor_shape(st.node.input[0])
                if n is None or list(n) != [1, int(np.prod(shape))]:
                    raise refuse(st.node, f"reads '{st.node.input[0]}' of shape {n}; supported after a conv block: the flatten "
                                          f"(1, {int(np.prod(shape))})")
            fan_in = int(np.prod(shape)) if shape is not None else (layers[-1].fan_out if layers else int(np.prod(image)))
            bits, s = dense_weights(model, st, fan_in, flat_from)
            probe = Dense(fan_in, len(bits), b, enc, is_output=is_output)
            shape, flat_from = None, None
        if i == 0 and inp["flip"]:
            bits ^= 1  # XNOR(~b, w) = XNOR(b, ~w): an input mapping that falls with the pixel folds into the weights
        c = (np.float64(np.float32(u)) * s.astype(np.float32).astype(np.float64))
        exact &= _pow2(c) and probe.acc_range[1] * (2 if enc == "bipolar" else 1) < 2**24
        folded = fold_layer(model, st, probe, c, is_output)
        if is_output:
            if folded["invert_all"]:
                bits ^= 1  # a decreasing output map (negative TensorNorm scale): inverting every row reverses the order
            layers.append(IntLayer(bits, None, spec=probe))
            break
        t, inv = folded["thresholds"], folded["inverted"]
        ref = contract_fold(model, st, probe, c)
        if ref is not None:
            adjusted += int(((ref[0] != t) | (ref[1] != inv)).sum())
        bits[inv] ^= 1
        layers.append(IntLayer(bits, t, inverted=inv, spec=probe))
        u = folded["value"]
    shown = {k: v for k, v in inp["spec"].items() if k != "map"}
    if "map" in inp["spec"]:
        q = inp["spec"]["map"]
        shown.update(values=f"{inp['input_bits']}-bit {inp['encoding']} {min(q)}..{max(q)}", step=inp["value_scale"])
    report = {"layers": [layer_text(la.spec) for la in layers], "input": shown,
              "exact_accumulators": bool(exact), "thresholds_differing_from_float32_fold": adjusted,
              "output_order_inverted": bool(folded.get("invert_all", False))}
    try:
        network = IntNetwork(tuple(layers))
    except FedxnorError as err:
        raise FedxnorError(f"the imported layers do not chain: {err}") from None
    return network, spec, report


class DisagreementError(FedxnorError):
    """The imported network and qonnx's executor disagree on an image: a check failed (exit 1)."""

    exit_code = 1


def source_predictions(model, images: np.ndarray, divisor: int) -> np.ndarray:
    """qonnx's executor on the dataset images scaled as the graph expects; classes by argmax, ties to the lowest index."""
    from fedxnor.contract.network import argmax_lowest
    from fedxnor.export.qonnx_graph import run_graph

    if images.ndim == 4:  # channels-last (N, H, W, C) -> the graph's NCHW
        images = images.transpose(0, 3, 1, 2)
    x = images.reshape(len(images), -1).astype(np.float32) / np.float32(divisor)
    return argmax_lowest(run_graph(model, x))


def first_inputs(spec: dict, pix: np.ndarray) -> np.ndarray:
    """The first layer's integer inputs of NHWC-flattened pixels, as the manifest's input section says (prepare_inputs)."""
    if spec["encoding"] == "pixels-binarized":
        return (pix >= spec["threshold"]).astype(np.int64)
    if spec["encoding"] == "pixels-mapped":
        return np.asarray(spec["map"], np.int64)[pix]
    return pix.astype(np.int64)


def import_qonnx(path, out_dir, input_scale: str = "pixel/255", images: int | None = None, data_dir=None) -> dict:
    """QONNX file -> export directory. Writes nothing unless the integer network equals qonnx on every checked image."""
    from pathlib import Path

    from fedxnor.datasets import load_split
    from fedxnor.export.manifest import PREDICTIONS_FILE, sha256_file, write_export
    from fedxnor.export.qonnx_graph import load_model
    from fedxnor.export.reference import image_shape_error

    divisor = parse_input_scale(input_scale)
    if images is not None and images < 1:
        raise FedxnorError(f"--images must be at least 1, got {images}")
    test = load_split("test", data_dir).take(images)  # refuse a bad --data before the (slower) graph work
    model = load_model(Path(path))
    try:
        network, spec, report = to_network(model, divisor)
    except FedxnorError:
        raise
    except Exception as e:  # qonnx / onnxruntime on a graph they cannot run: still one line, naming the cause
        raise FedxnorError(f"{path}: qonnx could not evaluate this graph ({type(e).__name__}: {' '.join(str(e).split())[:160]}); "
                           "check it with onnx.checker and qonnx's cleanup") from None
    pix = test.images.reshape(len(test), -1)
    first = network.layers[0].spec
    if pix.shape[1] != first.in_size:
        raise FedxnorError(f"the dataset's images have {pix.shape[1]} values, the model's first layer takes "
                           f"{first.in_size}; give --data with images of the model's input size")
    err = image_shape_error(tuple(test.images.shape[1:]), first.in_shape) if first.kind == "conv" else None
    if err:
        raise FedxnorError(f"{err}; give --data with images of the model's input shape")
    spec = {**spec, "shape": [int(d) for d in test.images.shape[1:]], "qonnx_shape": spec["shape"]}  # the dataset's own layout
    _, _, ours = network.run(first_inputs(spec, pix))
    try:
        theirs = source_predictions(model, test.images, divisor)
    except Exception as e:
        raise FedxnorError(f"{path}: qonnx's executor failed on this graph ({type(e).__name__}: "
                           f"{' '.join(str(e).split())[:160]}); check it with onnx.checker and qonnx's cleanup") from None
    differ = np.flatnonzero(ours != theirs)
    if differ.size:
        raise DisagreementError(f"the imported network disagrees with qonnx's executor on {differ.size} of {len(pix)} images "
                                f"(first: image {int(differ[0])}); nothing written; please report it with the model")
    source = {"format": "qonnx", "model": str(Path(path).resolve()), "model_sha256": sha256_file(Path(path)),
              "predictions": "qonnx.core.onnx_exec.execute_onnx", "import": report,
              "dataset": {"dir": str(data_dir) if data_dir else "/usr/share/datasets/fashion-mnist", "split": "test",
                          "images": len(pix), "inputs": "pixels"}}
    write_export(network, Path(out_dir), source=source, input_spec=spec,
                 extra_files={PREDICTIONS_FILE: theirs.astype(np.uint8).tobytes()})
    return {"out": str(out_dir), **report, "checked_images": int(len(pix)), "agreement": 1.0,
            "accuracy": float((ours == test.labels).mean())}
