"""The conv front of a network: its conv and max-pool layers as a chain of pixel streams, ending in the
flattened map the first fully connected layer reads; NetworkTop builds it for every export that starts with
map layers. With the debug stream, each unit's output pixels are forked to it (hw/fork.py, hw/debugmerge.py).

    image (one pixel per beat: C·B bits) -> ConvLayer | MaxPoolUnit -> ... -> VectorBuffer (the map, NHWC)
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring

from fedxnor.errors import FedxnorError
from fedxnor.hw.convlayer import ConvLayer
from fedxnor.hw.fork import StreamFork
from fedxnor.hw.pool import MaxPoolUnit
from fedxnor.hw.vectorbuffer import VectorBuffer


def front_layers(export) -> list:
    """The conv/pool layers the network starts with: a conv first, and no map layer after a dense one."""
    infos = list(export.layers)
    n = next((i for i, info in enumerate(infos) if info.kind == "dense"), len(infos))
    if any(info.kind != "dense" for info in infos[n:]):
        raise FedxnorError("the accelerator runs conv and max-pool layers before the fully connected ones only")
    if n and infos[0].kind != "conv":
        raise FedxnorError("a network's first map layer must be a convolution (a max-pool needs a map to pool)")
    return infos[:n]


def build_front(m: Module, export, front: list, lanes: int, stages: int | None, *, debug: bool = False):
    """Add the front's components to `m`; returns (its pixel stream input, the map buffer, busy terms, debug
    streams). With debug, every layer's output pixels are forked (hw/fork.py) to a stream of their own, one per
    front layer in order, for the debug port's merge (hw/debugmerge.py)."""
    stream_in, prev, busy, taps = None, None, [], []
    for info in front:
        spec, i = info.spec, info.index
        if info.kind == "conv":
            unit = ConvLayer(info, export.weight_words[i], export.threshold_words[i], stages=stages)
            out = unit.out
        else:
            unit = MaxPoolUnit(in_h=spec.in_h, in_w=spec.in_w, channels=spec.c, k=spec.k, stride=spec.stride)
            out = unit.pooled
        m.submodules[f"map{i}"] = unit
        busy.append(unit.busy)
        if prev is None:
            stream_in = unit.pixels
        else:
            wiring.connect(m, prev, unit.pixels)
        if debug:  # the pixels go on to the next unit and to the debug port
            fork = StreamFork(spec.out_c if info.kind == "conv" else spec.c)
            m.submodules[f"map{i}_fork"] = fork
            wiring.connect(m, out, fork.i)
            out = fork.a
            taps.append(fork.b)
        prev = out
    last = front[-1].spec
    out_h, out_w, out_c = last.out_shape
    mapbuf = VectorBuffer(pieces=out_h * out_w, width=out_c, lanes=lanes, split=True)  # a pixel may take C / 16 cycles
    m.submodules.map_buffer = mapbuf
    wiring.connect(m, prev, mapbuf.pieces)
    busy.append(mapbuf.busy)
    return stream_in, mapbuf, busy, taps
