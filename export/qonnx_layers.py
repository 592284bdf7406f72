"""The layers of a QONNX binarized network: the chain split into steps, and each step read into a contract kind.

Torch-free (onnx, qonnx, numpy). The graph must be one chain (docs/qonnx.md):

    input -> [Reshape/Flatten, elementwise by constants, BipolarQuant | Quant]                    the input mapping
          -> Conv (1-bit weights) -> [BatchNorm, BipolarQuant | MultiThreshold, ...] -> [MaxPool]  conv blocks
          -> [Reshape/Flatten]                                                                  the NCHW flatten
          -> MatMul/Gemm (1-bit weights) -> [BatchNorm, BipolarQuant | MultiThreshold, ...]     hidden dense layers
          -> MatMul/Gemm (1-bit weights) -> [TensorNorm / BatchNorm / nothing] -> output scores

Feature maps are NCHW in the graph and NHWC in the contract: a conv's (out_c, in_c, k, k) weights become the M x K
matrix with columns in (ky, kx, c) order, and a fully connected layer after a map (or after a multi-channel image)
has its columns permuted from the graph's CHW flatten to the contract's HWC flatten.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fedxnor.contract.conv import Conv
from fedxnor.contract.pool import MaxPool
from fedxnor.errors import FedxnorError
from fedxnor.export.qonnx_graph import ELEMENTWISE, SHAPE_OPS, constant_value, refuse

BINARIZERS = {"BipolarQuant", "MultiThreshold"}


@dataclass
class MatLayer:
    node: object  # the MatMul / Gemm / Conv
    weight: str
    chain: list = field(default_factory=list)  # elementwise nodes after it

    @property
    def is_conv(self) -> bool:
        return self.node.op_type == "Conv"


@dataclass
class PoolStep:
    node: object  # the MaxPool


def attrs_of(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _check_gemm(model, node) -> None:
    attrs = attrs_of(node)
    if attrs.get("alpha", 1.0) != 1.0 or attrs.get("transA", 0) != 0:
        raise refuse(node, "Gemm with alpha != 1 or transA is not supported (Brevitas' QuantLinear exports alpha=1)")
    _check_no_bias(model, node, "QuantLinear")


def _check_no_bias(model, node, module: str) -> None:
    if len(node.input) > 2 and node.input[2]:
        c = model.get_initializer(node.input[2])
        if c is None or np.any(np.asarray(c) != 0):
            raise refuse(node, f"a bias is not supported (use {module}(bias=False), as bnn_pynq does)")


def walk(model) -> tuple[list, list]:
    """Split the graph into the input chain and the steps (MatLayer, PoolStep); refuse anything that is not one chain
    of supported nodes."""
    g = model.graph
    cur, out = g.input[0].name, g.output[0].name
    pre: list = []
    steps: list = []
    flat = False  # a Reshape/Flatten after a map: only a dense layer may come next
    while cur != out:
        users = model.find_consumers(cur)
        if len(users) != 1:
            where = refuse(users[0], "") if users else None
            raise FedxnorError(f"tensor '{cur}' feeds {len(users)} nodes{' (first: ' + str(where)[:-2] + ')' if where else ''}; "
                               "fedxnor imports a single chain of layers")
        node = users[0]
        if node.input[0] != cur:
            raise refuse(node, f"takes the data tensor '{cur}' as a later operand; supported: data first, constants after")
        op = node.op_type
        last = steps[-1] if steps else None
        if flat and op not in ("MatMul", "Gemm"):
            raise refuse(node, "follows the flatten of a feature map; supported there: MatMul/Gemm (a dense layer)")
        if op in ("MatMul", "Gemm", "Conv"):
            flat = False
            if op == "Gemm":
                _check_gemm(model, node)
            if op == "Conv":
                _check_no_bias(model, node, "QuantConv2d")
                conv_attrs(node)  # every attribute checked before anything is evaluated
            steps.append(MatLayer(node, node.input[1]))
        elif op == "MaxPool":
            if not (isinstance(last, MatLayer) and last.is_conv or isinstance(last, PoolStep)):
                raise refuse(node, "supported only after a conv block (Conv -> BatchNorm -> 1-bit activation -> MaxPool)")
            if isinstance(last, MatLayer) and not any(n.op_type in BINARIZERS for n in last.chain):
                raise refuse(node, "pools before the 1-bit activation; supported: Conv -> BatchNorm -> BipolarQuant -> MaxPool "
                                   "(max-pool commutes with BatchNorm + sign only for positive scales, so fedxnor pools the bits)")
            pool_attrs(node)
            steps.append(PoolStep(node))
        elif op in SHAPE_OPS and (not steps or isinstance(last, PoolStep) or last.is_conv):
            to = model.get_tensor_shape(node.output[0])
            if steps and (to is None or len(to) != 2):
                raise refuse(node, f"reshapes a feature map to {to}; supported: the flatten (batch, C*H*W) before a dense layer")
            if steps:
                flat = True
            else:
                pre.append(node)
        elif op in ELEMENTWISE or (op == "Quant" and not steps):
            for t in node.input[1:]:
                if t and model.get_initializer(t) is None:
                    raise refuse(node, f"operand '{t}' is not a constant; supported: elementwise ops by constants")
            if isinstance(last, PoolStep):
                raise refuse(node, "follows a MaxPool; supported after a MaxPool: Conv, MaxPool, Reshape/Flatten")
            (last.chain if steps else pre).append(node)
        else:
            raise refuse(node, "is not supported at this place of the chain; supported: Reshape/Flatten before the first layer "
                               "and after the last conv block, Conv/MatMul/Gemm, BatchNormalization, BipolarQuant, "
                               "MultiThreshold, Mul/Div/Add/Sub by constants, MaxPool after a conv block's activation")
        cur = node.output[0]
    mats = [s for s in steps if isinstance(s, MatLayer)]
    if not mats:
        raise FedxnorError("the graph has no MatMul/Gemm/Conv layer; fedxnor imports binarized networks")
    if not isinstance(steps[-1], MatLayer) or steps[-1].is_conv:
        raise refuse(steps[-1].node, "ends the network; the last layer must be fully connected (MatMul/Gemm): its scores "
                                     "give the class")
    if not isinstance(steps[0], MatLayer):
        raise refuse(steps[0].node, "comes before any layer; supported: a MaxPool after a conv block")
    return pre, steps


def sign_bits(node, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(M, K) sign bits and (M,) magnitudes of 1-bit weights ±s (one s per output row); refuse anything else."""
    mag = np.abs(w)
    if (mag == 0).any() or not np.isfinite(mag).all():
        raise refuse(node, "weights contain 0 or non-finite values; supported: 1-bit weights ±s (BipolarQuant, scale != 0)")
    if (mag != mag[:, :1]).any():
        raise refuse(node, "weights are not 1-bit (more than one magnitude per output neuron); supported: BipolarQuant weights")
    return (w > 0).astype(np.uint8), mag[:, 0]


def dense_weights(model, layer: MatLayer, fan_in: int, map_shape: tuple[int, int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """(M, N) sign bits and (M,) magnitudes of a MatMul/Gemm layer. After a map (H, W, C) the graph flattened it NCHW
    (index c·H·W + y·W + x); the contract flattens NHWC ((y·W + x)·C + c), so the columns are permuted."""
    node = layer.node
    b = np.asarray(constant_value(model, layer.weight, node), np.float64)
    trans_b = attrs_of(node).get("transB", 0) if node.op_type == "Gemm" else 0
    if b.ndim != 2:
        raise refuse(node, f"weight operand has shape {b.shape}; a fully connected layer needs a 2-D matrix")
    w = b if trans_b else b.T
    if w.shape[1] != fan_in:
        raise refuse(node, f"weight matrix {w.shape} does not take the {fan_in} inputs it receives")
    if map_shape is not None:
        h, wd, c = map_shape
        w = w.reshape(len(w), c, h, wd).transpose(0, 2, 3, 1).reshape(len(w), -1)
    return sign_bits(node, w)


def conv_attrs(node) -> tuple[int, int]:
    """(stride, pad) of a Conv node, or a refusal naming the first attribute outside the contract."""
    a = attrs_of(node)
    pads, strides, kernel = list(a.get("pads", [0, 0, 0, 0])), list(a.get("strides", [1, 1])), list(a.get("kernel_shape", []))
    problems = [
        (a.get("group", 1) != 1, f"group {a.get('group')}"),
        (any(d != 1 for d in a.get("dilations", [1, 1])), f"dilations {a.get('dilations')}"),
        (a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"), f"auto_pad {a.get('auto_pad')}"),
        (len(kernel) not in (0, 2) or len(set(kernel)) > 1, f"kernel_shape {kernel}"),
        (len(set(pads)) != 1 or len(pads) != 4, f"pads {pads}"),
        (len(set(strides)) != 1 or len(strides) != 2, f"strides {strides}"),
    ]
    bad = [text for cond, text in problems if cond]
    if bad:
        raise refuse(node, f"{bad[0]} is not supported; supported: 2-D convolution, group 1, dilation 1, square kernel, "
                           "equal strides, the same padding on every side")
    return int(strides[0]), int(pads[0])


def conv_layer(model, layer: MatLayer, in_shape: tuple[int, int, int], bits: int, enc: str):
    """(Conv specification, (M, K) sign bits, (M,) magnitudes) of a QONNX Conv on an (H, W, C) map."""
    node = layer.node
    h, w, c = in_shape
    stride, pad = conv_attrs(node)
    wt = np.asarray(constant_value(model, layer.weight, node), np.float64)
    if wt.ndim != 4 or wt.shape[2] != wt.shape[3] or wt.shape[1] != c:
        raise refuse(node, f"weights of shape {wt.shape}; supported: square (out_c, {c}, k, k) kernels on {c} channels")
    k = int(wt.shape[2])
    kernel = list(attrs_of(node).get("kernel_shape", [k, k]))
    if kernel != [k, k]:
        raise refuse(node, f"kernel_shape {kernel} does not match the {k}x{k} weights")
    if pad and enc == "bipolar":
        raise refuse(node, f"pads a ±1 map with {pad} zeros: a ±1 network has no zero (the contract pads bits with -1); "
                           "supported: pad 0 (bnn_pynq's CNV), or padding of a multi-bit or 0/1 first layer")
    try:
        spec = Conv(h, w, c, int(wt.shape[0]), k, stride, pad, bits, enc)
    except FedxnorError as err:
        raise refuse(node, str(err)) from None
    matrix = wt.transpose(0, 2, 3, 1).reshape(len(wt), -1)  # columns in (ky, kx, c) order
    wbits, mag = sign_bits(node, matrix)
    return spec, wbits, mag


def pool_attrs(node) -> tuple[int, int]:
    """(k, stride) of a MaxPool node, or a refusal naming the first attribute outside the contract."""
    a = attrs_of(node)
    kernel, strides = list(a.get("kernel_shape", [])), list(a.get("strides", [1, 1]))
    problems = [
        (len(kernel) != 2 or kernel[0] != kernel[1], f"kernel_shape {kernel}"),
        (len(strides) != 2 or strides[0] != strides[1], f"strides {strides}"),
        (any(p != 0 for p in a.get("pads", [0, 0, 0, 0])), f"pads {a.get('pads')}"),
        (a.get("ceil_mode", 0) != 0, "ceil_mode 1"),
        (any(d != 1 for d in a.get("dilations", [1, 1])), f"dilations {a.get('dilations')}"),
        (a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"), f"auto_pad {a.get('auto_pad')}"),
        (len([o for o in node.output if o]) != 1, "an indices output"),
    ]
    bad = [text for cond, text in problems if cond]
    if bad:
        raise refuse(node, f"{bad[0]} is not supported; supported: square k x k max-pool, equal strides, no padding, floor mode")
    return int(kernel[0]), int(strides[0])


def pool_layer(step: PoolStep, in_shape: tuple[int, int, int]) -> MaxPool:
    k, stride = pool_attrs(step.node)
    h, w, c = in_shape
    try:
        return MaxPool(h, w, c, k, stride)
    except FedxnorError as err:
        raise refuse(step.node, str(err)) from None


def nchw_shape(model, tensor: str, user) -> tuple[int, int, int]:
    """(H, W, C) of a (1, C, H, W) graph tensor."""
    shape = model.get_tensor_shape(tensor)
    if shape is None or len(shape) != 4 or shape[0] != 1:
        raise refuse(user, f"reads '{tensor}' of shape {shape}; supported: NCHW feature maps (1, C, H, W)")
    return int(shape[2]), int(shape[3]), int(shape[1])
