"""QONNX binarized MLP -> fedxnor integer network, folded exactly against qonnx's own executor.

Torch-free (onnx, qonnx, numpy). The graph must be one chain (see docs/qonnx.md):

    input -> [Reshape/Flatten, elementwise by constants, BipolarQuant]          the input mapping
          -> MatMul/Gemm (1-bit weights) -> [BatchNorm, BipolarQuant | MultiThreshold, ...]   hidden layers
          -> MatMul/Gemm (1-bit weights) -> [TensorNorm / BatchNorm / nothing] -> output scores

Every elementwise chain is evaluated with qonnx's executor on EVERY value its input can take (all 256
pixels; every accumulator value of a layer), so the integer thresholds are those of the model as qonnx
runs it, including its float rounding. BatchNorm chains are also folded with export/thresholds.fold_thresholds
(the contract's float32 rule) and the two are compared; the report counts where onnxruntime rounds differently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from fedxnor.contract.network import IntLayer, IntNetwork
from fedxnor.errors import FedxnorError
from fedxnor.export.qonnx_graph import ELEMENTWISE, SHAPE_OPS, constant_value, execute_span, refuse, run_chain, with_batch
from fedxnor.export.thresholds import fold_thresholds

TABLE_CELLS = 4_000_000  # table rows x neurons per executor call


@dataclass
class MatLayer:
    node: object  # the MatMul / Gemm
    weight: str
    chain: list = field(default_factory=list)  # elementwise nodes after it


def parse_input_scale(text: str) -> int:
    """'pixel/255' (bnn_pynq's ToTensor), 'pixel/256', 'pixel' -> the divisor."""
    m = re.fullmatch(r"\s*pixel\s*(?:/\s*(\d+))?\s*", text or "")
    if not m or (m.group(1) is not None and int(m.group(1)) < 1):
        raise FedxnorError(f"--input-scale {text!r}: use 'pixel/D' with a positive integer D (bnn_pynq: pixel/255) or 'pixel'")
    return int(m.group(1) or 1)


def walk(model) -> tuple[list, list[MatLayer]]:
    """Split the graph into the input chain and the layers; refuse anything that is not a single chain."""
    g = model.graph
    cur, out = g.input[0].name, g.output[0].name
    pre: list = []
    layers: list[MatLayer] = []
    while cur != out:
        users = model.find_consumers(cur)
        if len(users) != 1:
            where = refuse(users[0], "") if users else None
            raise FedxnorError(f"tensor '{cur}' feeds {len(users)} nodes{' (first: ' + str(where)[:-2] + ')' if where else ''}; "
                               "fedxnor imports a single chain of layers (an MLP)")
        node = users[0]
        if node.input[0] != cur:
            raise refuse(node, f"takes the data tensor '{cur}' as a later operand; supported: data first, constants after")
        consts = [t for t in node.input[1:] if t]
        op = node.op_type
        if op in ("MatMul", "Gemm"):
            if op == "Gemm":
                attrs = {a.name: a for a in node.attribute}
                alpha = attrs["alpha"].f if "alpha" in attrs else 1.0
                if alpha != 1.0 or ("transA" in attrs and attrs["transA"].i != 0):
                    raise refuse(node, "Gemm with alpha != 1 or transA is not supported (Brevitas' QuantLinear exports alpha=1)")
                if len(node.input) > 2 and node.input[2]:
                    c = model.get_initializer(node.input[2])
                    if c is None or np.any(np.asarray(c) != 0):
                        raise refuse(node, "a linear bias is not supported (use QuantLinear(bias=False), as bnn_pynq does)")
            layers.append(MatLayer(node, node.input[1]))
        elif op in SHAPE_OPS and not layers:
            pre.append(node)
        elif op in ELEMENTWISE:
            for t in consts:
                if model.get_initializer(t) is None:
                    raise refuse(node, f"operand '{t}' is not a constant; supported: elementwise ops by constants")
            (layers[-1].chain if layers else pre).append(node)
        else:
            raise refuse(node, "is not supported at this place of the chain; supported: Reshape/Flatten before the first layer, "
                               "MatMul/Gemm, BatchNormalization, BipolarQuant, MultiThreshold, Mul/Div/Add/Sub by constants")
        cur = node.output[0]
    if not layers:
        raise FedxnorError("the graph has no MatMul/Gemm layer; fedxnor imports binarized MLPs")
    return pre, layers


def weight_bits(model, layer: MatLayer, fan_in: int) -> tuple[np.ndarray, np.ndarray]:
    """(M, N) sign bits and (M,) positive magnitudes of a layer's 1-bit weights; refuse anything else."""
    node = layer.node
    b = np.asarray(constant_value(model, layer.weight, node), np.float64)
    trans_b = any(a.name == "transB" and a.i for a in node.attribute)
    if b.ndim != 2:
        raise refuse(node, f"weight operand has shape {b.shape}; a fully connected layer needs a 2-D matrix")
    w = b if trans_b else b.T
    if w.shape[1] != fan_in:
        raise refuse(node, f"weight matrix {w.shape} does not take the {fan_in} inputs it receives")
    mag = np.abs(w)
    if (mag == 0).any() or not np.isfinite(mag).all():
        raise refuse(node, "weights contain 0 or non-finite values; supported: 1-bit weights ±s (BipolarQuant, scale != 0)")
    if (mag != mag[:, :1]).any():
        raise refuse(node, "weights are not 1-bit (more than one magnitude per output neuron); supported: BipolarQuant weights")
    return (w > 0).astype(np.uint8), mag[:, 0]


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
        raise refuse(where, "does not binarize the input (bipolar or 0/1) nor pass the 8-bit pixel through; "
                            "supported: 2x-1 then BipolarQuant (bnn_pynq TFC/SFC/LFC), or pixel values scaled by one constant")
    up, down = (np.diff(bits.astype(int)) >= 0).all(), (np.diff(bits.astype(int)) <= 0).all()
    flip = bool(down and not up)
    if not (up or down) or (flip and enc == "unsigned"):
        raise refuse(where, "maps pixels to bits non-monotonically; supported: bit = (pixel >= T) or bipolar (pixel < T)")
    on = ~bits if flip else bits
    threshold = int(256 - on.sum())  # on = (pixel >= threshold)
    return {"encoding": enc, "input_bits": 1, "spec": {"encoding": "pixels-binarized", "threshold": threshold},
            "value_scale": u, "flip": flip}


def _pow2(x: np.ndarray) -> bool:
    x = np.abs(np.asarray(x, np.float64))
    return bool((x > 0).all() and (np.frexp(x)[0] == 0.5).all())


def fold_layer(model, layer: MatLayer, probe: IntLayer, c: np.ndarray, is_output: bool) -> dict:
    """Run the layer's chain on every accumulator value; return thresholds, inverted rows and the value scale."""
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


def contract_fold(model, layer: MatLayer, probe: IntLayer, c: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
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


def to_network(model, divisor: int) -> tuple[IntNetwork, dict, dict]:
    """The integer network, the manifest's input section and a report of how the graph was folded."""
    pre, mls = walk(model)
    inp = input_mapping(model, pre, mls[0], divisor)
    ishape = model.get_tensor_shape(model.graph.input[0].name)
    spec = {"shape": [int(d) for d in ishape[1:]], **inp["spec"], "qonnx_input": f"pixel/{divisor}"}
    u, fan_in = inp["value_scale"], int(np.prod(ishape[1:]))
    layers, exact, adjusted = [], _pow2(u), 0
    for i, ml in enumerate(mls):
        is_output = i == len(mls) - 1
        bits, s = weight_bits(model, ml, fan_in)
        if i == 0 and inp["flip"]:
            bits ^= 1  # XNOR(~b, w) = XNOR(b, ~w): an input mapping that falls with the pixel folds into the weights
        enc, b = (inp["encoding"], inp["input_bits"]) if i == 0 else ("bipolar", 1)
        probe = IntLayer(bits, None, input_bits=b, encoding=enc)
        c = (np.float64(np.float32(u)) * s.astype(np.float32).astype(np.float64))
        exact &= _pow2(c) and probe.acc_range[1] * (2 if enc == "bipolar" else 1) < 2**24
        folded = fold_layer(model, ml, probe, c, is_output)
        if is_output:
            if folded["invert_all"]:
                bits ^= 1  # a decreasing output map (negative TensorNorm scale): inverting every row reverses the order
            layers.append(IntLayer(bits, None, input_bits=b, encoding=enc))
            break
        t, inv = folded["thresholds"], folded["inverted"]
        ref = contract_fold(model, ml, probe, c)
        if ref is not None:
            adjusted += int(((ref[0] != t) | (ref[1] != inv)).sum())
        bits[inv] ^= 1
        layers.append(IntLayer(bits, t, input_bits=b, encoding=enc, inverted=inv))
        u, fan_in = folded["value"], bits.shape[0]
    report = {"layers": [f"{la.fan_in}x{la.fan_out}" for la in layers], "input": inp["spec"],
              "exact_accumulators": bool(exact), "thresholds_differing_from_float32_fold": adjusted,
              "output_order_inverted": bool(folded.get("invert_all", False))}
    return IntNetwork(tuple(layers)), spec, report


class DisagreementError(FedxnorError):
    """The imported network and qonnx's executor disagree on an image: a check failed (exit 1)."""

    exit_code = 1


def source_predictions(model, images: np.ndarray, divisor: int) -> np.ndarray:
    """qonnx's executor on the dataset images scaled as the graph expects; classes by argmax, ties to the lowest index."""
    from fedxnor.contract.network import argmax_lowest
    from fedxnor.export.qonnx_graph import run_graph

    x = images.reshape(len(images), -1).astype(np.float32) / np.float32(divisor)
    return argmax_lowest(run_graph(model, x))


def import_qonnx(path, out_dir, input_scale: str = "pixel/255", images: int | None = None, data_dir=None) -> dict:
    """QONNX file -> export directory. Writes nothing unless the integer network equals qonnx on every checked image."""
    from pathlib import Path

    from fedxnor.datasets import load_split
    from fedxnor.export.manifest import PREDICTIONS_FILE, sha256_file, write_export
    from fedxnor.export.qonnx_graph import load_model

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
    if pix.shape[1] != network.layers[0].fan_in:
        raise FedxnorError(f"the dataset's images have {pix.shape[1]} values, the model's first layer takes "
                           f"{network.layers[0].fan_in}; give --data with images of the model's input size")
    spec = {**spec, "shape": [int(d) for d in test.images.shape[1:]], "qonnx_shape": spec["shape"]}  # the dataset's own layout
    x = (pix >= spec["threshold"]).astype(np.int64) if spec["encoding"] == "pixels-binarized" else pix.astype(np.int64)
    _, _, ours = network.run(x)
    try:
        theirs = source_predictions(model, pix, divisor)
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
