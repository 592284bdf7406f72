"""The event model of a conv layer built with the column-parallel window generator (hw/colwindow.py) and the pixel
ring collector (hw/collector.py): one unit of contract/mapcycles.py's event network (docs/accelerator.md, "Cycle
model"), exact as the serial unit's is (tests/hw/test_conv_cycles.py).

Events, indices across images (position n of the padded map's walk, window w, pixel w):

    adv(n)   = max(adv(n − 1) + 1,
                   offer of its pixel                     (a position inside the map takes one),
                   start(w − 2Q) + T_w                    (a window's end: its group's hold bank released, free again))
    start(w) = max(adv(end of w) + 1 + WINDOW_LAG, start(w − Q) + T_w, sent(w − Q·S) + 1)   bank loaded,
                                                           sequencer, a free slot
    full(w)  = start(w) + T_w − 1 + D                      the pixel's last bit in (valid from this cycle)
    offer(w) = max(full(w), sent(w − 1) + 1),  sent(w) = the consumer's take

S = Conv.collector_slots, D = R + P + DRAIN_FIXED, T_w = Conv.window_tokens, Q = Conv.window_parallelism (window w
goes to group w mod Q: its own hold banks, sequencer, array and ring; the output takes the groups in turn),
WINDOW_LAG = 1: the hold bank is loaded (and offered) a cycle after the walker passes the window's end.
It duck-types mapcycles' Stream (lists `offer` and `hand`), so mapcycles can import it without a cycle.
"""

from __future__ import annotations

from typing import Any

from fedxnor.contract.structure import DRAIN_FIXED, WINDOW_LAG, tree_levels


def _walk(spec: Any) -> tuple[list[bool], list[bool]]:
    """Per position of one image's padded walk (raster order): whether it takes a pixel, whether a window ends."""
    k, s, p = spec.k, spec.stride, spec.pad
    hp, wp = spec.in_h + 2 * p, spec.in_w + 2 * p
    real, ends = [], []
    for y in range(hp):
        for x in range(wp):
            real.append(p <= y < spec.in_h + p and p <= x < spec.in_w + p)
            ends.append(y >= k - 1 and x >= k - 1 and (y - k + 1) % s == 0 and (x - k + 1) % s == 0)
    return real, ends


class ColumnConvUnit:
    """hw/convlayer.py with hw/colwindow.py and hw/collector.py (Conv.column_window true)."""

    def __init__(self, spec: Any, fold: Any, inp: Any, out: Any, images: int, stages: int | None = None) -> None:
        self.inp, self.out, self.images = inp, out, images
        self.real, self.ends = _walk(spec)
        self.Tw = spec.window_tokens(fold)
        self.D = (tree_levels(fold.simd) if stages is None else stages) + fold.pe + DRAIN_FIXED
        self.S = spec.collector_slots(fold)
        self.Q = spec.window_parallelism(fold)
        self.adv: list[int] = []  # per position
        self.end: list[int] = []  # per window: the cycle its last position advanced (the hold bank loaded)
        self.start: list[int] = []
        self.full: list[int] = []

    def _advance_walk(self) -> bool:
        n = len(self.adv)
        per = len(self.real)
        if n >= per * self.images:
            return False
        j = n % per
        t = self.adv[-1] + 1 if n else 0
        take = self.inp.hand
        if self.real[j]:
            if len(take) >= len(self.inp.offer):
                return False
            t = max(t, self.inp.offer[len(take)])
        if self.ends[j]:
            w = len(self.end)
            b = w - 2 * self.Q  # the window its hold bank held before
            if b >= 0:
                if len(self.start) <= b:
                    return False
                t = max(t, self.start[b] + self.Tw)
            self.end.append(t)
        if self.real[j]:
            take.append(t)
        self.adv.append(t)
        return True

    def advance(self) -> bool:
        moved = False
        hand = self.out.hand
        while True:
            step = self._advance_walk()
            n, Q, QS = len(self.start), self.Q, self.Q * self.S
            if n < len(self.end) and (n < QS or len(hand) > n - QS):
                t = self.end[n] + 1 + WINDOW_LAG
                if n >= Q:
                    t = max(t, self.start[n - Q] + self.Tw)
                if n >= QS:
                    t = max(t, hand[n - QS] + 1)
                self.start.append(t)
                self.full.append(t + self.Tw - 1 + self.D)
                step = True
            n = len(self.out.offer)
            if n < len(self.full) and (n == 0 or len(hand) >= n):
                self.out.offer.append(max(self.full[n], hand[n - 1] + 1) if n else self.full[n])
                step = True
            if not step:
                return moved
            moved = True
