"""The dense side of the cycle model (contract/mapcycles.py): the event streams every unit is joined by, the
front's map buffer, the fully connected chain and a dense-only network's image intake. Same rules as the
gateware's flags (hw/convfront.py's map buffer, hw/network.py's layer chain); see mapcycles.py for the model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fedxnor.contract.structure import CREDIT_FIXED, DRAIN_FIXED, RESULT_FIXED, WEIGHT_REG_CYCLES, tree_levels


class Stream:
    def __init__(self) -> None:
        self.offer: list[int] = []
        self.hand: list[int] = []


class Source:
    """The image stream, always valid: every pixel offered from cycle 0."""

    def __init__(self, out: Stream, count: int) -> None:
        out.offer.extend([0] * count)

    def advance(self) -> bool:
        return False


class Sink:
    """A consumer that is always ready (a unit measured alone)."""

    def __init__(self, inp: Stream) -> None:
        self.inp = inp

    def advance(self) -> bool:
        n = len(self.inp.hand)
        if n < len(self.inp.offer):
            self.inp.hand.extend(self.inp.offer[n:])
            return True
        return False


class MapBuffer:
    """The front's last VectorBuffer (the flattened map, 2 banks), read by the first dense layer: while its bank is
    free, a pixel offered from cycle f (and not before the cycle after the previous take) is taken at f + h − 1
    (h = 1, or the parts of a split RAM, hw/mapbuffer.py, written one a cycle); full the cycle after the last; free
    again the cycle after the release."""

    def __init__(self, pixels: int, inp: Stream, images: int, chain: DenseChain, piece_cycles: int = 1) -> None:
        self.px, self.inp, self.images, self.chain = pixels, inp, images, chain
        self.h = piece_cycles
        self.full: list[int] = []

    def advance(self) -> bool:
        moved = False
        take, offer, start = self.inp.hand, self.inp.offer, self.chain.start[0]
        while len(take) < min(len(offer), self.px * self.images):
            n = len(take)
            m, j = divmod(n, self.px)
            if m >= 2 and len(start) <= m - 2:
                break
            t = max(offer[n], take[n - 1] + 1 if n else 0)
            if j == 0 and m >= 2:
                t = max(t, start[m - 2] + self.chain.T[0])  # dense layer 0 released image m - 2's bank
            t += self.h - 1  # the parts before the last, one a cycle
            take.append(t)
            if j == self.px - 1:
                self.full.append(t + 1)
            moved = True
        return moved


class DenseChain:
    """The fully connected layers (contract/cycles.py's stages, per image): layer j starts image m when its input
    bank is full, its previous image's tokens are out and its output bank (or result FIFO entry) is free."""

    def __init__(self, layers: Sequence[Any], stages: int | None, images: int, weight_regs: bool = False) -> None:
        """weight_regs: the arrays register their weight words twice (a conv network's tail, WEIGHT_REG_CYCLES)."""
        self.T = [x.spec.tokens(x.fold) for x in layers]
        reg = WEIGHT_REG_CYCLES * bool(weight_regs)
        tree = [(tree_levels(x.fold.simd) if stages is None else stages) + reg + x.fold.pe for x in layers]
        self.D = [r + DRAIN_FIXED for r in tree[:-1]] + [tree[-1] + RESULT_FIXED]
        self.credit = tree[-1] + CREDIT_FIXED
        self.start: list[list[int]] = [[] for _ in layers]
        self.result: list[int] = []
        self.images = images
        self.source: Any = None  # an object with .full: per image, the cycle the first layer's input bank is full

    def advance(self) -> bool:
        moved = False
        S, T, n = self.start, self.T, len(self.T)
        while len(self.result) < min(len(self.source.full), self.images):
            m = len(self.result)
            ready = self.source.full[m]
            for j in range(n):
                t = ready
                if m:
                    t = max(t, S[j][m - 1] + T[j])
                if m >= 2:  # the output bank of image m - 2: consumed and cleared, or its result FIFO entry back
                    t = max(t, S[j + 1][m - 2] + T[j + 1] + 1 if j < n - 1 else S[j][m - 2] + T[j] + self.credit)
                S[j].append(t)
                ready = t + T[j] - 1 + self.D[j]
            self.result.append(ready)
            moved = True
        return moved


class ImageIntake:
    """The dense-only network's image buffer: one plane of one beat per cycle while its bank is free."""

    def __init__(self, tokens: int, chain: DenseChain) -> None:
        self.T, self.chain = tokens, chain
        self.full: list[int] = []

    def advance(self) -> bool:
        moved = False
        start = self.chain.start[0]
        while len(self.full) < self.chain.images:
            m = len(self.full)
            if m >= 2 and len(start) <= m - 2:
                break
            t = self.full[-1] if m else 0
            if m >= 2:
                t = max(t, start[m - 2] + self.chain.T[0])
            self.full.append(t + self.T)
            moved = True
        return moved


def run_units(units: list[Any]) -> None:
    while any([u.advance() for u in units]):
        pass
