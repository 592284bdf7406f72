"""Reading a QONNX file safely, and running parts of it with qonnx's own executor.

Torch-free: onnx, qonnx and numpy only. Every problem becomes one FedxnorError line
naming the node, its op and what is supported (see docs/qonnx.md).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from fedxnor.errors import FedxnorError

# The ops a binarized MLP of bnn_pynq's kind uses, raw or after qonnx's cleanup / FINN's streamlining.
STANDARD_OPS = {"MatMul", "Gemm", "Conv", "MaxPool", "BatchNormalization", "Mul", "Div", "Add", "Sub", "Reshape", "Flatten",
                "Identity", "Transpose", "Pow", "Sqrt", "Constant"}
QONNX_OPS = {"BipolarQuant", "MultiThreshold"}
QONNX_DOMAINS = {"qonnx.custom_op.general", "finn.custom_op.general", "onnx.brevitas", "finn"}
SUPPORTED = "MatMul/Gemm/Conv with 1-bit weights, MaxPool, BatchNormalization, BipolarQuant, MultiThreshold, " \
            "Mul/Div/Add/Sub by constants, Reshape/Flatten, a Quant on the input"
ELEMENTWISE = {"BatchNormalization", "Mul", "Div", "Add", "Sub", "BipolarQuant", "MultiThreshold", "Identity"}
SHAPE_OPS = {"Reshape", "Flatten"}


ORIGINAL = "fedxnor-original-name:"  # kept in doc_string: qonnx's cleanup renames nodes, refusals name the file's own


def node_label(node) -> str:
    name = node.doc_string[len(ORIGINAL):] if node.doc_string.startswith(ORIGINAL) else (node.name or node.output[0])
    return f"node '{name}' ({node.op_type})"


def refuse(node, problem: str) -> FedxnorError:
    return FedxnorError(f"{node_label(node)}: {problem}")


def _describe_quant(model, node) -> str:
    """A Quant node's bit width, for the refusal line."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    if len(node.input) > 3 and node.input[3] in inits:
        bw = numpy_helper.to_array(inits[node.input[3]]).reshape(-1)
        if bw.size == 1:
            return f"a {float(bw[0]):g}-bit Quant"
    return "a multi-bit Quant"


def input_chain(model) -> set[int]:
    """Indices of the nodes between the data input and the first MatMul/Gemm/Conv, following single consumers: the
    input mapping, the one place a multi-bit Quant may be (bnn_pynq CNV's 8-bit input quantizer)."""
    g = model.graph
    inits = {i.name for i in g.initializer}
    data = [i.name for i in g.input if i.name not in inits]
    readers: dict[str, list[int]] = {}
    for k, n in enumerate(g.node):
        for t in n.input:
            readers.setdefault(t, []).append(k)
    found: set[int] = set()
    cur = data[0] if data else None
    while cur is not None and len(readers.get(cur, [])) == 1:
        k = readers[cur][0]
        node = g.node[k]
        if node.op_type in ("MatMul", "Gemm", "Conv") or k in found or not node.input or node.input[0] != cur:
            break
        found.add(k)
        cur = node.output[0] if node.output else None
    return found


def check_ops(model) -> None:
    """Refuse, before any transformation runs, a node whose op or domain is outside the supported set."""
    inputs = input_chain(model)
    for k, node in enumerate(model.graph.node):
        if node.op_type in QONNX_OPS and node.domain in QONNX_DOMAINS:
            continue
        if node.op_type in STANDARD_OPS and node.domain in ("", "ai.onnx"):
            continue
        if node.op_type == "Quant" and node.domain in QONNX_DOMAINS and k in inputs:
            continue  # the input quantizer: evaluated on all 256 pixels (docs/qonnx.md)
        if node.op_type == "Quant":
            raise refuse(node, f"{_describe_quant(model, node)} is not supported here: fedxnor imports 1-bit weights and "
                               "activations (BipolarQuant, or MultiThreshold with one threshold per channel) and a multi-bit "
                               "Quant only on the input, before the first layer")
        where = f" in domain '{node.domain}'" if node.domain else ""
        raise refuse(node, f"op {node.op_type}{where} is not supported; supported: {SUPPORTED}")


def check_tensors(model) -> None:
    """Every tensor a node reads must be produced, be an initializer, or be the one data input."""
    g = model.graph
    inits = {i.name for i in g.initializer}
    produced = {o for n in g.node for o in n.output}
    data_inputs = [i.name for i in g.input if i.name not in inits]
    if len(g.node) == 0:
        raise FedxnorError("the graph has no nodes (truncated file?); export the model again")
    if len(g.output) != 1:
        raise FedxnorError(f"the graph has {len(g.output)} outputs; fedxnor imports a classifier with one output (the scores)")
    readers = {}
    for n in g.node:
        for t in n.input:
            if t:
                readers.setdefault(t, n)
    for name in data_inputs[1:] if data_inputs else []:
        if name in readers:
            raise refuse(readers[name], f"reads '{name}', a graph input with no initializer (missing initializer); "
                                        "the model needs exactly one data input")
    if not data_inputs:
        raise FedxnorError("the graph has no data input; export the model again")
    known = inits | produced | set(data_inputs)
    for n in g.node:
        for t in n.input:
            if t and t not in known:
                raise refuse(n, f"reads '{t}', which no node, initializer or input provides (missing initializer)")
    if g.output[0].name not in produced:
        raise FedxnorError(f"the graph output '{g.output[0].name}' is produced by no node (truncated file?)")


def load_model(path: Path):
    """Read, check and clean up a QONNX file; returns a qonnx ModelWrapper (names global_in/global_out)."""
    import onnx
    from google.protobuf.message import DecodeError
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    path = Path(path)
    if not path.is_file():
        raise FedxnorError(f"{path}: no such file; give the .onnx file Brevitas' export_qonnx wrote")
    try:
        proto = onnx.load_model_from_string(path.read_bytes())
    except (DecodeError, ValueError, RuntimeError) as e:
        raise FedxnorError(f"{path}: not a readable ONNX model (truncated or corrupt file?): {type(e).__name__}") from None
    if not proto.HasField("graph"):
        raise FedxnorError(f"{path}: the ONNX model has no graph (truncated file?)")
    check_text(proto, path)
    load_external(proto, path)
    check_ops(proto)
    check_tensors(proto)
    for node in proto.graph.node:
        node.doc_string = ORIGINAL + (node.name or node.output[0])
    try:
        model = cleanup_model(ModelWrapper(proto))
    except Exception as e:  # qonnx's transformations raise bare Exceptions/AssertionErrors on malformed graphs
        raise FedxnorError(f"{path}: qonnx's cleanup_model failed on this graph ({type(e).__name__}: "
                           f"{' '.join(str(e).split())[:160]}); check the file with onnx.checker") from None
    if len(model.graph.input) != 1:
        raise FedxnorError(f"{path}: after cleanup the graph has {len(model.graph.input)} data inputs; it needs one")
    return model


def check_text(proto, path: Path) -> None:
    """Names and ops must be text: ONNX is proto2, whose Python reader hands back a string field that is not valid
    UTF-8 as bytes instead of refusing it (a corrupt byte inside a node's name does that)."""
    g = proto.graph
    fields = [(f"node {k}", v) for k, n in enumerate(g.node)
              for v in (n.name, n.op_type, n.domain, *n.input, *n.output)]
    fields += [("a graph tensor", v) for v in (*(i.name for i in g.input), *(o.name for o in g.output),
                                               *(t.name for t in g.initializer))]
    for where, v in fields:
        if not isinstance(v, str):
            raise FedxnorError(f"{path}: {where} has a name or op that is not UTF-8 text ({bytes(v)[:24]!r}); "
                               "the file is corrupt: export the model again")


def load_external(proto, path: Path) -> None:
    """Initializers kept beside the model (torch's dynamo exporter writes MODEL.onnx.data for larger models): read them
    from the model's directory, or one line saying which file is missing."""
    from onnx.external_data_helper import load_external_data_for_model, uses_external_data

    if not any(uses_external_data(t) for t in proto.graph.initializer):
        return
    try:
        load_external_data_for_model(proto, str(path.parent))
    except Exception as e:  # OSError, or onnx's checker.ValidationError for a missing or escaping data file
        raise FedxnorError(f"{path}: its weights live in an external data file that cannot be read ({type(e).__name__}: "
                           f"{' '.join(str(e).split())[:120]}); keep the .onnx.data file Brevitas wrote beside the model") from None


def with_batch(model, batch: int):
    """A copy of the model with batch size `batch` (qonnx's ChangeBatchSize, then shape inference)."""
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.infer_shapes import InferShapes

    m = copy.deepcopy(model)
    m = m.transform(ChangeBatchSize(batch))
    return m.transform(InferShapes())


def execute_span(model, feed: dict[str, np.ndarray], start, end, want: str) -> np.ndarray:
    """Run nodes start..end of `model` (already at the feed's batch size) with qonnx's executor; return tensor `want`."""
    from qonnx.core.onnx_exec import execute_onnx

    ctx = execute_onnx(model, feed, return_full_exec_context=True, start_node=start, end_node=end)
    return np.asarray(ctx[want])


def run_graph(model, x: np.ndarray, batch: int = 500) -> np.ndarray:
    """The whole graph on float inputs x (n, *input shape) with qonnx's executor, in batches; returns the output."""
    from qonnx.core.onnx_exec import execute_onnx

    iname, oname = model.graph.input[0].name, model.graph.output[0].name
    outs = []
    sized = {}
    for s in range(0, len(x), batch):
        chunk = x[s : s + batch]
        if len(chunk) not in sized:
            sized[len(chunk)] = with_batch(model, len(chunk))
        m = sized[len(chunk)]
        chunk = chunk.reshape(m.get_tensor_shape(iname)).astype(np.float32)
        outs.append(np.asarray(execute_onnx(m, {iname: chunk})[oname]).reshape(len(chunk), -1))
    return np.concatenate(outs)


def constant_value(model, tensor: str, user) -> np.ndarray:
    """The value of a tensor computed from initializers only (e.g. BipolarQuant(weight, scale), Transpose)."""
    from qonnx.custom_op.registry import getCustomOp

    init = model.get_initializer(tensor)
    if init is not None:
        return np.asarray(init)
    node = model.find_producer(tensor)
    if node is None:
        raise refuse(user, f"input '{tensor}' is neither an initializer nor computed from initializers")
    args = [constant_value(model, t, node) for t in node.input if t]
    if node.op_type == "Identity":
        return args[0]
    if node.op_type == "Transpose":
        perm = [a.ints for a in node.attribute if a.name == "perm"]
        return np.transpose(args[0], list(perm[0]) if perm else None)
    if node.op_type == "BipolarQuant":
        ctx = {node.input[0]: args[0].astype(np.float32), node.input[1]: args[1].astype(np.float32)}
        getCustomOp(node).execute_node(ctx, model.graph)
        return np.asarray(ctx[node.output[0]])
    raise refuse(node, f"computes a weight operand of {node_label(user)}; supported there: an initializer, BipolarQuant "
                       "of an initializer, Transpose")


def run_chain(model, nodes: list, in_name: str, x: np.ndarray) -> np.ndarray:
    """Run an elementwise chain of `model`'s nodes on x (rows, channels) with qonnx's executor; returns its output.

    The chain's constant operands (BatchNorm statistics, scales, thresholds) are copied from the model, so
    the values are exactly those qonnx computes inside the whole graph for the same chain input.
    """
    from onnx import TensorProto, helper
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.util.basic import qonnx_make_model

    x = np.ascontiguousarray(x, np.float32)
    if not nodes:
        return x
    out_name = nodes[-1].output[0]
    inp = helper.make_tensor_value_info(in_name, TensorProto.FLOAT, list(x.shape))
    out = helper.make_tensor_value_info(out_name, TensorProto.FLOAT, None)
    graph = helper.make_graph([copy.deepcopy(n) for n in nodes], "chain", [inp], [out])
    sub = ModelWrapper(qonnx_make_model(graph, opset_imports=list(model.model.opset_import)))
    produced = {o for n in nodes for o in n.output}
    for n in nodes:
        for t in n.input:
            if t and t != in_name and t not in produced:
                sub.set_initializer(t, np.asarray(model.get_initializer(t)))
    sub = sub.transform(InferShapes())
    return np.asarray(execute_onnx(sub, {in_name: x})[out_name])
