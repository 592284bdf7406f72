"""The network top: every layer of an export as one dataflow pipeline.

    image stream ─> ImageBuffer (EBR, plane-major, 2 banks)
                ─> layer 0: LayerSequencer ─> SystolicArray (P0 rows × L0 lanes, weight ROMs)
                ─> ActivationBuffer 0 (2 banks) ─> layer 1 ─> ... ─> output layer
                ─> ArgmaxMerge ─> result stream
    ActivationBuffers ─> debug emitter ─> debug stream (debug=True)

See docs/accelerator.md for the interface contract and the cycle model.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.back import verilog
from amaranth.hdl import Array, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from fedxnor.contract.beats import BeatGeometry
from fedxnor.contract.cost import best_tile_shape
from fedxnor.contract.network import check_chain, check_hardware
from fedxnor.contract.structure import WEIGHT_ROMS, rom_in_logic
from fedxnor.errors import FedxnorError
from fedxnor.export.manifest import Export
from fedxnor.hw.argmax import ArgmaxMerge
from fedxnor.hw.array import SystolicArray
from fedxnor.hw.buffers import ActivationBuffer, ImageBuffer
from fedxnor.hw.convfront import build_front, front_layers
from fedxnor.hw.debugmerge import DebugMerge
from fedxnor.hw.ports import bits_for
from fedxnor.hw.sequencer import LayerSequencer
from fedxnor.hw.weightstore import normalize_weight_store, writable_images, write_layout


@dataclass(frozen=True)
class TopPorts:
    """The generated module's name and its streams' layout: image beats, classes and debug fields are the
    one geometry of contract/beats.py (in_width, in_beats, dbg_fields, ... read through to it)."""

    module: str
    beats: BeatGeometry
    extra_outputs: tuple[tuple[str, int], ...] = (("busy", 1), ("cycles", 32))

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.beats, name)

    @property
    def out_width(self) -> int:
        return self.beats.class_width


def check_buildable(export: Export, *, maps: bool = True) -> None:
    """One-line FedxnorError for anything the generator cannot build (load_export checked the rest).

    maps: conv and max-pool layers may be built (hw/convfront.py); False refuses them, as a kind not in the
    hardware is refused (contract/network.py check_hardware)."""
    check_hardware([info.spec for info in export.layers])
    if not maps and any(info.kind != "dense" for info in export.layers):
        raise FedxnorError("this build takes fully connected layers only; the export has conv or max-pool layers")
    err = check_chain([info.spec for info in export.layers])
    if err:
        raise FedxnorError(err)
    for info in export.layers:
        if not info.has_weights:
            continue
        where = f"layer {info.index} ({info.name})"
        info.spec.check_folding(info.fold, where)
        words = export.weight_words[info.index]
        if len(words) != info.pe or any(len(w) != info.weight_depth for w in words):
            raise FedxnorError(f"{where}: weight images do not match the folding (pe={info.pe}, depth={info.weight_depth})")
        if not info.is_output:
            t = export.threshold_words[info.index]
            if len(t) != info.pe or any(len(w) != info.neurons_per_pe for w in t):
                raise FedxnorError(f"{where}: threshold images do not match the folding (pe={info.pe})")


def top_ports(export: Export, *, debug: bool, name: str = "fedxnor_top") -> TopPorts:
    specs = [info.spec for info in export.layers]
    return TopPorts(name, BeatGeometry.of(specs, export.layers[0].simd, debug=debug))


class NetworkTop(wiring.Component):
    """image stream in, class stream out, optional debug stream; see docs/accelerator.md."""

    def __init__(self, export: Export, *, debug: bool = False, stages: int | None = None,
                 weight_store: dict[int, str] | None = None, read_regs: bool = False, weight_roms: str = "auto",
                 weight_tiles: tuple[tuple[int, int], ...] = (), maps: bool = True):
        check_buildable(export, maps=maps)
        self.export = export
        self.front = front_layers(export)  # conv / max-pool layers (hw/convfront.py)
        if self.front and (read_regs or weight_store):
            raise FedxnorError("a conv network builds without read registers or run-time weights so far (issue 21)")
        # a conv network's fully connected layers register their weight words twice before the lanes on every device
        # (contract/structure.py WEIGHT_REG_CYCLES; the ULX3S build's critical path was a deep weight ROM's read)
        self.weight_regs = bool(read_regs) or bool(self.front)
        self.stages = stages
        # registers after every memory read (ECP5): two between a weight RAM and its lanes (hw/array.py) and a
        # second stage in each layer's input-buffer read (hw/buffers.py); contract/cycles.py counts them
        self.read_regs = bool(read_regs)
        # "auto": Yosys picks block RAM or LUTs per ROM by cost; "logic": every weight ROM of LUTs (ECP5: no block
        # RAM clock-to-output in the weight path, contract/devices.py Device.weight_roms); "shallow": LUTs for ROMs of at
        # most SHALLOW_ROM_DEPTH words (a deeper LUT ROM is a slower mux tree than block RAM), Yosys decides the rest
        if weight_roms not in WEIGHT_ROMS:
            raise FedxnorError(f"weight_roms {weight_roms!r}: choose one of {', '.join(WEIGHT_ROMS)}")
        self.weight_roms = weight_roms
        # block RAM (width, depth) shapes: a deep weight ROM in block RAM is built as single-block tiles of the shape
        # that stores it in the fewest blocks, each with its own read register (hw/array.py, Device.weight_tiles)
        self.weight_tiles = tuple(weight_tiles)
        # layers whose weights are written at run time through `wload` (hw/weightstore.py), e.g. {0: "spram"}
        self.weight_store = normalize_weight_store(export, weight_store)
        self.weight_images = writable_images(export, self.weight_store)
        self.ports = top_ports(export, debug=debug)
        self.has_debug = self.ports.has_debug
        p = self.ports
        members = {
            "image": In(stream.Signature(p.in_width)),
            "result": Out(stream.Signature(p.class_width)),
            "busy": Out(1),
            "cycles": Out(32),
        }
        if debug:
            members["debug"] = Out(stream.Signature(max(1, p.dbg_width)))
        if self.weight_images:
            stored = [export.layers[i] for i in self.weight_store]
            members["wload"] = In(write_layout(len(self.weight_images), max(bits_for(i.weight_depth) for i in stored),
                                               max(i.simd for i in stored)))
        self.debug_port = debug
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        ex = self.export
        infos = ex.layers[len(self.front):]  # the fully connected layers
        first = infos[0]
        if self.front:  # pixels through the conv front into the flattened map the first dense layer reads
            pixels, img, busy_terms, map_taps = build_front(m, ex, self.front, first.simd, self.stages,
                                                            debug=self.debug_port and self.has_debug)
            wiring.connect(m, wiring.flipped(self.image), pixels)
        else:
            img = ImageBuffer(first.fan_in, first.input_bits, first.simd, read_reg=self.read_regs,
                              write_reg=self.read_regs)
            m.submodules.image_buffer = img
            wiring.connect(m, wiring.flipped(self.image), img.image)
            busy_terms = [img.busy]

        acts: list[ActivationBuffer] = []
        for info, nxt in zip(infos[:-1], infos[1:]):
            buf = ActivationBuffer(info.fan_out, info.pe, nxt.simd, debug=self.has_debug, read_reg=self.read_regs,
                                 in_reg=self.read_regs)
            m.submodules[f"act{info.index}"] = buf
            acts.append(buf)
            busy_terms.append(buf.busy)

        wl = None
        if self.weight_images:  # registered once: the write bus fans out to every writable row
            wl = Signal.like(self.wload)
            m.d.sync += wl.eq(self.wload)
        for j, info in enumerate(infos):
            i = info.index
            store = self.weight_store.get(i)
            arr = SystolicArray(info, ex.weight_words[i], None if info.is_output else ex.threshold_words[i],
                                stages=self.stages, store=store, in_reg=self.weight_regs,
                                rom_logic=rom_in_logic(self.weight_roms, info.weight_depth),
                                tile_depth=_tile_depth(self.weight_tiles, info))
            if store:
                base = next(w.index for w in self.weight_images if w.layer == i)
                m.d.comb += [arr.wr.en[p].eq(wl.en & (wl.row == base + p)) for p in range(info.pe)]
                m.d.comb += [arr.wr.addr.eq(wl.addr), arr.wr.data.eq(wl.data)]
            src = img if j == 0 else acts[j - 1]
            seq = LayerSequencer(arr.shape, read_latency=2 if self.read_regs else 1,
                                 read_copies=src.read_copies, start_reg=self.read_regs)
            m.submodules[f"seq{i}"] = seq
            m.submodules[f"array{i}"] = arr
            m.d.comb += arr.tok.eq(seq.tok)
            busy_terms.append(seq.running)
            wiring.connect(m, seq.rd, src.rd)  # input side: read the previous buffer's ready bank
            if info.is_output:  # output side: claim a result FIFO entry, or a bank of the next buffer
                merge = ArgmaxMerge(arr.shape, result_reg=self.read_regs)
                m.submodules.argmax = merge
                m.d.comb += merge.arg.eq(arr.arg)
                wiring.connect(m, seq.claim, merge.claim)
                wiring.connect(m, merge.result, wiring.flipped(self.result))
                busy_terms.append(merge.busy)
            else:
                wiring.connect(m, seq.claim, acts[j].claim)
                wiring.connect(m, arr.rows, acts[j].rows)

        if self.debug_port and self.has_debug:
            self._debug_port(m, acts, map_taps if self.front else [])

        busy = Signal()
        m.d.comb += busy.eq(_any(busy_terms))
        count = busy
        if self.read_regs or self.front:  # busy gathers flags from across the die (every unit of a conv front):
            count = Signal()  # the counter and the port take it a cycle late (same total); the iCEBreaker conv
            m.d.sync += count.eq(busy)  # build's critical path ran from a sequencer through the OR to the counter
        m.d.comb += self.busy.eq(count if self.front else busy)
        with m.If(count):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        return m

    def _debug_port(self, m: Module, acts: list[ActivationBuffer], map_taps: list) -> None:
        """The debug stream (contract/beats.py): the dense layers' beats in image order, untagged; with feature-map
        layers, their pixel streams and the dense beats merged round-robin, each beat tagged with its layer."""
        if not map_taps:
            self._dense_debug(m, acts, self.debug)
            return
        g = self.ports.beats
        widths, tags, sources = [t.payload.shape().width for t in map_taps], list(range(len(map_taps))), list(map_taps)
        if acts:  # the dense layers' beats, each tagged with its layer's index (after the map layers')
            dense = stream.Signature(g.dbg_width).create()
            self._dense_debug(m, acts, dense, first_tag=len(map_taps), data_width=g.dbg_data_width)
            widths, tags, sources = widths + [g.dbg_width], tags + [None], sources + [dense]
        merge = DebugMerge(widths, tags, g.dbg_data_width, g.dbg_tag_width)
        m.submodules.debug_merge = merge
        for source, port in zip(sources, merge.inputs()):
            wiring.connect(m, source, port)
        wiring.connect(m, merge.out, wiring.flipped(self.debug))

    def _dense_debug(self, m: Module, acts: list[ActivationBuffer], port, first_tag: int | None = None,
                     data_width: int = 0) -> None:
        """Per image, one beat per hidden dense layer, in image order; a bank is freed only once sent. With
        first_tag, beat j carries the tag first_tag + j above its data_width data bits."""
        if not acts:
            return
        layer = Signal(bits_for(len(acts)))
        bank = Signal()
        avail = Array([a.dbg.avail.bit_select(bank, 1) for a in acts])[layer]
        payload = Array([a.dbg.bits for a in acts])[layer]
        if first_tag is not None:
            payload = payload | ((layer + first_tag) << data_width)
        m.d.comb += [port.valid.eq(avail), port.payload.eq(payload)]
        sent = port.valid & port.ready
        for i, a in enumerate(acts):
            m.d.comb += [a.dbg.bank.eq(bank), a.dbg.ack.eq(sent & (layer == i))]
        with m.If(sent):
            m.d.sync += layer.eq(layer + 1)
            with m.If(layer == len(acts) - 1):
                m.d.sync += [layer.eq(0), bank.eq(~bank)]


def _tile_depth(shapes: tuple[tuple[int, int], ...], info) -> int | None:
    """The depth of the block RAM shape that stores this layer's weight ROMs in the fewest blocks; None: no tiles."""
    return best_tile_shape(info.simd, info.weight_depth, shapes)[1] if shapes else None


def _any(terms):
    out = terms[0]
    for t in terms[1:]:
        out = out | t
    return out


def generate_verilog(export: Export, *, debug: bool = True, name: str = "fedxnor_top",
                     stages: int | None = None, weight_store: dict[int, str] | None = None,
                     read_regs: bool = False, device: str | None = None) -> tuple[str, TopPorts]:
    """Verilog text of the network top (module `name`) and its port description. device: build it as that
    device's board build does (hw/plan/plan.py build_options), which then sets read_regs."""
    options: dict = {"read_regs": read_regs}
    if device is not None:
        from fedxnor.hw.plan.plan import build_options

        options = build_options(device, [info.spec for info in export.layers])
    top = NetworkTop(export, debug=debug, stages=stages, weight_store=weight_store, **options)
    text = verilog.convert(top, name=name, emit_src=False)
    ports = top_ports(export, debug=debug, name=name)
    return text, ports
