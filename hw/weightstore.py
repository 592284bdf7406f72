"""Writable weight stores: a layer's per-row weight memory written at run time instead of by the bitstream.

The UP5K has 30 block RAMs of 4 Kbit (initialised by the bitstream) and four
SB_SPRAM256KA of 16384 x 16 bits, which the bitstream cannot initialise. A layer
listed in `NetworkTop(export, weight_store={layer: "spram"})` keeps each PE row's
weight words in a WeightStore: on an iCE40 UP5K platform that is SB_SPRAM256KA
cells (a row of L lanes takes ceil(L / 16) of them side by side), elsewhere (the
Amaranth simulator, Verilog for cocotb, other devices) an amaranth.lib.memory
Memory that starts at zero. Both read with the same one-cycle latency as the
ROM they replace, so the cycle model (contract/cycles.py) is unchanged.

Rows are written through one shared port on the top (`wload`: row select,
address, data, enable; docs/accelerator.md). Writing and reading share the
single SPRAM port: a write takes the address for that cycle, so weights are
written while the accelerator is idle (the board's loader does so before it
serves, docs/hostlink.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import ClockSignal, Instance, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from fedxnor.contract.structure import SPRAM_DEPTH, SPRAM_WIDTH, spram_cells
from fedxnor.errors import FedxnorError
from fedxnor.export import images as img

KINDS = ("spram", "ram")  # spram: SB_SPRAM256KA on a UP5K, Memory elsewhere; ram: always Memory
SPRAM_DEVICES = ("iCE40UP5K", "iCE40UP3K")  # FPGAs with SB_SPRAM256KA (amaranth-boards' `device`)



def platform_has_spram(platform) -> bool:
    return str(getattr(platform, "device", "")) in SPRAM_DEVICES


@dataclass(frozen=True)
class WritableImage:
    """One row's weight image that is written at run time: the file the host sends, and where it goes.

    index: the row select on the top's `wload` port (and the board's file number): writable layers in
    layer order, PE rows in order within a layer.
    """

    index: int
    layer: int
    pe: int
    width: int  # L bits per word
    depth: int  # words
    file: str  # the export's file name (l0_w_pe2.hex)
    sha256: str  # the manifest's sha256 of that file
    nbytes: int  # the file's length: depth lines of ceil(width / 4) hex digits and a newline

    @property
    def digits(self) -> int:
        return img.hex_digits(self.width)


def normalize_weight_store(export, weight_store) -> dict[int, str]:
    """{layer: kind} checked against the export; None or {} is every layer in ROM (the default)."""
    if not weight_store:
        return {}
    out = {}
    n = len(export.layers)
    for layer, kind in dict(weight_store).items():
        if not isinstance(layer, int) or not 0 <= layer < n:
            raise FedxnorError(f"weight_store: layer {layer!r} is not a layer index of this network (0..{n - 1})")
        if kind not in KINDS:
            raise FedxnorError(f"weight_store: layer {layer} kind {kind!r} must be one of {', '.join(KINDS)}")
        out[layer] = kind
    return dict(sorted(out.items()))


def writable_images(export, weight_store) -> tuple[WritableImage, ...]:
    """The run-time-written weight files of `export` under `weight_store`, in row-select order."""
    stores = normalize_weight_store(export, weight_store)
    out = []
    for layer in stores:
        info = export.layers[layer]
        entry = export.manifest["layers"][layer]
        for p in range(info.pe):
            ref = entry["weight_images"][p]
            nbytes = info.weight_depth * (img.hex_digits(info.simd) + 1)
            out.append(WritableImage(len(out), layer, p, info.simd, info.weight_depth, ref["file"], ref["sha256"],
                                     nbytes))
    if len(out) > 255:
        raise FedxnorError(f"weight_store: {len(out)} writable rows, at most 255; store fewer layers or use fewer PEs")
    return tuple(out)


def write_layout(rows: int, addr_width: int, data_width: int) -> data.StructLayout:
    """The top's shared write port: row select, word address, word (LSB-aligned), enable."""
    return data.StructLayout({"en": 1, "row": max(1, (rows - 1).bit_length()), "addr": max(1, addr_width),
                              "data": max(1, data_width)})


class WeightStore(wiring.Component):
    """One row's writable weight memory: `raddr` -> `rdata` one cycle later; `wen` writes `wdata` at `waddr`.

    cells: True builds SB_SPRAM256KA instances, False a Memory; None (default) decides by the
    platform at elaboration (SPRAM on a UP5K, Memory in simulation and on other devices).
    """

    def __init__(self, width: int, depth: int, *, cells: bool | None = None):
        if width < 1 or depth < 1:
            raise FedxnorError(f"weight store of {width} x {depth} words: both must be positive")
        self.width, self.depth, self.cells = width, depth, cells
        aw = max(1, (depth - 1).bit_length())
        super().__init__({"raddr": In(aw), "rdata": Out(width), "wen": In(1), "waddr": In(aw), "wdata": In(width)})

    def elaborate(self, platform):
        cells = platform_has_spram(platform) if self.cells is None else self.cells
        if cells:
            return self._spram()
        m = Module()
        # amaranth.lib.memory: a synchronous read port like the ROM's, one write port; zero at start
        mem = Memory(shape=unsigned(self.width), depth=self.depth, init=[])
        m.submodules.mem = mem
        rd = mem.read_port()
        wr = mem.write_port()
        m.d.comb += [rd.addr.eq(self.raddr), self.rdata.eq(rd.data),
                     wr.addr.eq(self.waddr), wr.data.eq(self.wdata), wr.en.eq(self.wen)]
        return m

    def _spram(self) -> Module:
        if spram_cells(self.width, self.depth) == 0:
            raise FedxnorError(f"a {self.width} x {self.depth} weight store does not fit SB_SPRAM256KA "
                               f"({SPRAM_DEPTH} words deep): fold the layer with more PE rows")
        m = Module()
        addr = Signal(14)
        # one port: a write takes the address for its cycle (writes happen only while the core is idle)
        m.d.comb += addr.eq(Mux(self.wen, self.waddr, self.raddr))
        for k in range(spram_cells(self.width, self.depth)):
            lo, hi = k * SPRAM_WIDTH, min(self.width, (k + 1) * SPRAM_WIDTH)
            din = Signal(SPRAM_WIDTH, name=f"din{k}")
            dout = Signal(SPRAM_WIDTH, name=f"dout{k}")
            m.d.comb += [din.eq(self.wdata[lo:hi]), self.rdata[lo:hi].eq(dout[: hi - lo])]
            m.submodules[f"spram{k}"] = Instance(
                "SB_SPRAM256KA", i_ADDRESS=addr, i_DATAIN=din, i_MASKWREN=0b1111, i_WREN=self.wen,
                i_CHIPSELECT=1, i_CLOCK=ClockSignal("sync"), i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1, o_DATAOUT=dout)
        return m
