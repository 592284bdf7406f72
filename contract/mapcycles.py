"""The exact cycle model of a conv network (docs/accelerator.md, "Cycle model", conv and max-pool part).

The conv front (hw/convfront.py) is a chain of pixel streams with back-pressure, so its timing has no short
closed form: an image-boundary bubble in the line buffer, collector banks that make windows alternate, rows
that arrive late. This is an event (max-plus) model instead: every handshake the gateware makes gets a cycle,
computed from the cycles of the handshakes it waits for, by the same rules the gateware's flags follow. It is
exact (tests/hw/test_conv_cycles.py compares every image's result cycle with simulation) and costs O(pixels)
per image: a window's k·k taps are one event, because once a window's first tap is consumed its others follow
one per cycle.

Units, each one list of event cycles per kind, all indexed across images (image m, pixel / window j):

    source ─> [ConvUnit | PoolUnit] ... ─> MapBuffer ─> DenseChain ─> results
              WindowTaps (hw/linebuffer.py): take (pixel in), taps (per window: first issue, last issue,
              last consumed); ConvUnit: VectorBuffer banks, sequencer start, collector full, pixel offered;
              PoolUnit: the OR register's pixel offered

A stream between two units holds `offer` (cycle from which its producer holds pixel n valid) and `hand`
(the cycle it was taken: filled by the consumer). Units advance in turns (a Kahn network): each computes
every event whose inputs are known, until all images are through.

Cycle 0 is the first cycle the first pixel is offered; the input stream is always valid and the result
always taken.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from fedxnor.contract.colcycles import ColumnConvUnit
from fedxnor.contract.densecycles import DenseChain, ImageIntake, MapBuffer, Sink, Source, Stream, run_units
from fedxnor.contract.structure import (
    DRAIN_FIXED,
    tree_levels,
    vector_piece_cycles,
    vector_ram_width,
)

MAP_KINDS = ("conv", "maxpool")
COLLECTOR_TURN = 2  # collector bank full -> free again: consumed and sent flags set, then the bank cleared
OUT_REG = 1  # a pooled pixel is offered the cycle after its window's last tap is taken
IMAGE_TURN = 2  # line buffer: last tap issued and last pixel taken -> the next image is the tap image


class _Taps:
    """WindowTaps' events: pixel takes and, per window, its first and last tap issued and last tap consumed."""

    def __init__(self, spec: Any, inp: Stream, images: int) -> None:
        self.H, self.W, self.k, self.s = spec.in_h, spec.in_w, spec.k, spec.stride
        self.p = getattr(spec, "pad", 0)
        self.OH, self.OW = spec.out_h, spec.out_w
        self.R = self.k + self.s  # rows of the line buffer
        self.inp, self.images = inp, images
        self.px, self.win = self.H * self.W, self.OH * self.OW
        self.take = inp.hand  # the take is the input stream's handshake
        self.i0: list[int] = []
        self.ilast: list[int] = []
        self.clast: list[int] = []

    def advance(self) -> bool:
        """Every event now known, pass after pass (a pixel take, then the unit's own window steps) until none moves."""
        moved, kk = False, self.k * self.k
        while True:
            t = self._take_ready()
            if t is not None:
                self.take.append(t)
            if not (self._pass(kk) or t is not None):
                return moved
            moved = True

    def _pass(self, kk: int) -> bool:
        """One pass of the unit's window events after the take; True if any moved."""
        raise NotImplementedError

    def _switch(self, m: int) -> int | None:
        """The first cycle image m is the tap image (its rows count from 0): the cycle after its predecessor's last
        tap is issued and last pixel taken, plus one (IMAGE_TURN); None while unknown."""
        if m == 0:
            return 0
        w, px = m * self.win - 1, m * self.px - 1
        if len(self.ilast) <= w or len(self.take) <= px:
            return None
        return max(self.ilast[w], self.take[px]) + IMAGE_TURN

    def _row_out(self, m: int, q: int) -> int | None:
        """The cycle output row q of image m is the line buffer's current row (row q - 1's taps all issued)."""
        if q <= 0:
            return self._switch(m)
        w = m * self.win + min(q, self.OH) * self.OW - 1
        return self.ilast[w] + 1 if len(self.ilast) > w else None

    def _take_ready(self) -> int | None:
        """The cycle the line buffer takes its next pixel, or None while it depends on unknown events.
        Row r of image m lands on slot row (r + m·H) mod R, over the row R before it; it is taken once no output
        row still to go reads that row (hw/linebuffer.py): while image m − 1 is the tap image, its rows r < R − p
        once image m − 1's output row q1 = (H + r − R + p) // s + 1 is current (or image m is the tap image if
        q1 > OH); the others once image m's output row q = (r − R + p) // s + 1 is current."""
        n = len(self.take)
        if n >= self.px * self.images or n >= len(self.inp.offer):
            return None
        m, j = divmod(n, self.px)
        row = j // self.W
        t = self.inp.offer[n]
        if n:
            t = max(t, self.take[n - 1] + 1)
        R, p, s = self.R, self.p, self.s
        if m and row < R - p:
            q1 = (self.H + row - R + p) // s + 1
            ready = self._switch(m - 1) if q1 <= 0 else self._row_out(m - 1, q1) if q1 <= self.OH else self._switch(m)
        else:
            ready = self._row_out(m, (row - R + p) // s + 1)
        if ready is None:
            return None
        return max(t, ready)

    def _window_start(self) -> int | None:
        """Earliest cycle the next window's first tap issues (rows present, previous tap consumed)."""
        n = len(self.i0)
        if n >= self.win * self.images:
            return None
        m, j = divmod(n, self.win)
        oy = j // self.OW
        need = min(self.H, oy * self.s + self.k - self.p)  # input rows complete before output row oy
        last_px = m * self.px + need * self.W - 1
        if len(self.take) <= last_px or (n and len(self.clast) < n):
            return None
        t = self.take[last_px] + 1
        if j == 0:
            sw = self._switch(m)
            if sw is None:
                return None
            t = max(t, sw)
        return max(t, self.clast[n - 1]) if n else t


class ConvUnit(_Taps):
    """hw/convlayer.py: taps -> VectorBuffer (2 banks) -> sequencer (T_w tokens a window) -> array ->
    collector (2 banks; a full bank is released at once and its pixel sent through the debug tap)."""

    def __init__(self, spec: Any, fold: Any, inp: Stream, out: Stream, images: int, stages: int | None = None) -> None:
        super().__init__(spec, inp, images)
        self.out = out
        self.Tw = spec.tokens(fold) // self.win
        self.D = (tree_levels(fold.simd) if stages is None else stages) + fold.pe + DRAIN_FIXED
        self.start: list[int] = []
        self.full: list[int] = []

    def _pass(self, kk: int) -> bool:
        step = False
        t = self._window_start()
        n = len(self.i0)
        if t is not None and (n < 2 or len(self.start) > n - 2):
            c0 = max(t + 1, self.start[n - 2] + self.Tw if n >= 2 else 0)  # vector buffer bank free
            self.i0.append(t)
            self.clast.append(c0 + kk - 1)
            self.ilast.append(c0 + kk - 2 if kk > 1 else t)
            step = True
        n = len(self.start)
        if n < len(self.clast) and (n < 2 or len(self.out.hand) > n - 2):
            t = self.clast[n] + 1  # the window's bank is full
            if n:
                t = max(t, self.start[n - 1] + self.Tw)
            if n >= 2:  # the collector bank of window n - 2 is free again
                t = max(t, max(self.full[n - 2], self.out.hand[n - 2]) + COLLECTOR_TURN)
            self.start.append(t)
            self.full.append(t + self.Tw - 1 + self.D)
            step = True
        n = len(self.out.offer)
        if n < len(self.full) and (n == 0 or len(self.out.hand) >= n):
            self.out.offer.append(max(self.full[n], self.out.hand[n - 1] + 1) if n else self.full[n])
            step = True
        return step


def conv_unit(spec: Any, fold: Any, inp: Stream, out: Stream, images: int, stages: int | None = None) -> Any:
    """The unit hw/convlayer.py builds for this folding: the serial generator's ConvUnit, or contract/colcycles.py's
    ColumnConvUnit when Conv.column_window picks the column-parallel generator."""
    if spec.column_window(fold):
        return ColumnConvUnit(spec, fold, inp, out, images, stages)
    return ConvUnit(spec, fold, inp, out, images, stages)


class PoolUnit(_Taps):
    """hw/pool.py: taps -> an OR register; a window's last tap waits until the previous pixel is sent."""

    def __init__(self, spec: Any, inp: Stream, out: Stream, images: int) -> None:
        super().__init__(spec, inp, images)
        self.out = out

    def _pass(self, kk: int) -> bool:
        step = False
        t = self._window_start()
        n = len(self.i0)
        if t is not None and (n == 0 or len(self.out.hand) >= n):
            il = t + kk - 1
            c = max(il + 1, self.out.hand[n - 1]) if n else il + 1
            self.i0.append(t)
            self.ilast.append(il)
            self.clast.append(c)
            self.out.offer.append(c + OUT_REG)
            step = True
        return step


def result_cycles(layers: Sequence[Any], images: int, stages: int | None = None) -> list[int]:
    """Each image's result cycle (result.valid) when `images` images are offered back to back from cycle 0
    and every result is taken at once (NetworkTop, no read registers, no debug stream)."""
    layers = list(layers)
    n_front = next((i for i, x in enumerate(layers) if x.spec.kind not in MAP_KINDS), len(layers))
    chain = DenseChain(layers[n_front:], stages, images, weight_regs=n_front > 0)  # a conv front's tail: weight registers
    if not n_front:
        first = layers[0]
        chain.source = ImageIntake(first.spec.intake_tokens(first.fold), chain)
        run_units([chain.source, chain])
        return chain.result
    streams = [Stream() for _ in range(n_front + 1)]
    units: list[Any] = [Source(streams[0], images * layers[0].spec.in_h * layers[0].spec.in_w)]
    for i, x in enumerate(layers[:n_front]):
        if x.spec.kind == "conv":
            units.append(conv_unit(x.spec, x.fold, streams[i], streams[i + 1], images, stages))
        else:
            units.append(PoolUnit(x.spec, streams[i], streams[i + 1], images))
    oh, ow, _ = layers[n_front - 1].spec.out_shape
    oc, lanes = layers[n_front - 1].spec.out_shape[2], layers[n_front].fold.simd  # hw/convfront.py's map buffer
    h = vector_piece_cycles(oc, vector_ram_width(oh * ow, oc, lanes, split=True))
    chain.source = MapBuffer(oh * ow, streams[-1], images, chain, h)
    run_units(units + [chain.source, chain])
    if len(chain.result) < images:
        raise RuntimeError("cycle model: the event network stopped early (a deadlock in the model)")
    return chain.result


def steady_interval(times: Sequence[int]) -> float:
    """The mean interval of an eventually periodic sequence of event cycles, from its periodic tail (period <= 4)."""
    d = [b - a for a, b in zip(times, times[1:])]
    for q in (1, 2, 3, 4):
        span = 2 * q
        if len(d) >= span + 1 and all(d[-i] == d[-i - q] for i in range(1, span + 1 - q + 1)):
            return sum(d[-q:]) / q
    return None  # type: ignore[return-value]


def _periodic(run, start: int = 8, limit: int = 64) -> tuple[float, list[int]]:
    n = start
    while True:
        times = run(n)
        ii = steady_interval(times)
        if ii is not None or n >= limit:
            return (ii if ii is not None else (times[-1] - times[n // 2]) / (n - 1 - n // 2)), times
        n *= 2


def map_initiation_interval(layers: Sequence[Any], stages: int | None = None) -> float:
    """Steady-state cycles between results with images back to back (a conv network)."""
    return _periodic(lambda n: result_cycles(layers, n, stages))[0]


def map_latency(layers: Sequence[Any], stages: int | None = None) -> int:
    """Cycles from the first pixel offered to an idle accelerator until its result is valid."""
    return result_cycles(layers, 1, stages)[0]


def unit_output_cycles(spec: Any, fold: Any, images: int, stages: int | None = None) -> list[int]:
    """One conv or max-pool unit alone (input always valid, output always ready): each image's last output
    pixel's cycle."""
    inp, out = Stream(), Stream()
    src = Source(inp, images * spec.in_h * spec.in_w)
    unit = (conv_unit(spec, fold, inp, out, images, stages) if spec.kind == "conv"
            else PoolUnit(spec, inp, out, images))
    run_units([src, unit, Sink(out)])
    per = spec.out_h * spec.out_w
    return [out.hand[(m + 1) * per - 1] for m in range(images)]


@lru_cache(maxsize=4096)
def map_layer_timing(spec: Any, fold: Any, stages: int | None = None) -> tuple[int, int]:
    """(D, own) of a conv or max-pool layer for the solver. own: its steady per-image cycles alone (input always
    valid, output always ready), exact for the unit alone; D: the cycles from its last window's first token
    (its last tap, for a pool) to that window's pixel being offered."""
    ii, _ = _periodic(lambda n: unit_output_cycles(spec, fold, n, stages), start=6)
    own = int(-(-ii // 1))
    if spec.kind == "conv":
        win = spec.out_h * spec.out_w
        drain = spec.tokens(fold) // win - 1 + (tree_levels(fold.simd) if stages is None else stages) + fold.pe + DRAIN_FIXED
    else:
        drain = OUT_REG
    return drain, own
