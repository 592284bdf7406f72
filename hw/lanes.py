"""XNOR/AND-popcount lane group: L lanes and a pipelined adder tree.

The count of L one-bit lane terms is summed by a binary tree of adders. An
unpipelined 256-input popcount runs near 20 MHz on an iCE40 UP5K; a register
after every tree level reaches ~70 MHz, so by default every level is
registered. `stages` (0..levels) spreads fewer registers evenly over the levels.
`in_reg` adds a register on the a and w inputs themselves, so that the route
from a block RAM (or another register, hw/array.py) to the lanes gets a cycle
of its own (one cycle more latency, 2L flip-flops).

Lane terms, by mode:
* "xnor": ~(a ^ w), bipolar layers (1 = +1);
* "and":  a & w, one bit plane of an unsigned input times 0/1 weight bits;
* "pop":  a, the popcount of the input alone (the w port is ignored).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fedxnor.contract.structure import count_width, tree_levels


def register_after(levels: int, stages: int) -> list[int]:
    """Registers after each tree level 0..levels (level 0 = the lane terms themselves).

    min(stages, levels) registers are spread evenly, the last one after the last
    level; with stages == levels every level is registered. Any excess (and, for
    a one-lane group, every register) goes after the last level.
    """
    regs = [0] * (levels + 1)
    placed = min(stages, levels)
    for j in range(placed):
        regs[-(-(j + 1) * levels // placed)] += 1
    regs[levels] += stages - placed
    return regs


class LaneGroup(wiring.Component):
    """`count` = sum of the L lane terms of (a, w), `stages` cycles after a and w are presented."""

    def __init__(self, lanes: int, *, mode: str = "xnor", stages: int | None = None, in_reg: bool = False):
        if lanes < 1:
            raise ValueError("a lane group needs at least one lane")
        if mode not in ("xnor", "and", "pop"):
            raise ValueError(f"unknown lane mode {mode!r}")
        self.lanes = lanes
        self.mode = mode
        self.levels = tree_levels(lanes)
        self.stages = self.levels if stages is None else stages
        self.in_reg = bool(in_reg)
        if self.stages < 0:
            raise ValueError("stages must be >= 0")
        super().__init__({
            "a": In(lanes),
            "w": In(lanes),
            "count": Out(count_width(lanes)),
        })

    @property
    def latency(self) -> int:
        return self.stages + self.in_reg

    def elaborate(self, platform):
        m = Module()
        # Lane terms as one word (one expression for the simulator), then bit slices into the tree.
        a, w = self.a, self.w
        if self.in_reg:
            # data registers carry no reset: fewer loads on the reset net (the valid bits travel elsewhere)
            a = Signal(self.lanes, name="a_q", reset_less=True)
            w = Signal(self.lanes, name="w_q", reset_less=True)
            m.d.sync += [a.eq(self.a), w.eq(self.w)] if self.mode != "pop" else a.eq(self.a)
        word = Signal(self.lanes)
        if self.mode == "xnor":
            m.d.comb += word.eq(~(a ^ w))
        elif self.mode == "and":
            m.d.comb += word.eq(a & w)
        else:
            m.d.comb += word.eq(a)
        terms = [word[j] for j in range(self.lanes)]
        regs = register_after(self.levels, self.stages)
        # Each node: (value, its maximum) so widths stay minimal at every level. Comb sums stay
        # expressions and each register level is one wide Signal: the same netlist for Yosys, but
        # far fewer signals for the Python simulator to update each cycle.
        nodes: list[tuple[object, int]] = [(t, 1) for t in terms]
        level = 0
        while True:
            for r in range(regs[level]):
                nodes = self._register(m, nodes, f"l{level}r{r}")
            if len(nodes) == 1:
                break
            nxt = []
            for i in range(0, len(nodes) - 1, 2):
                (va, ma), (vb, mb) = nodes[i], nodes[i + 1]
                nxt.append(((va + vb)[: (ma + mb).bit_length()], ma + mb))
            if len(nodes) % 2:
                nxt.append(nodes[-1])
            nodes = nxt
            level += 1
        m.d.comb += self.count.eq(nodes[0][0])
        return m

    @staticmethod
    def _register(m: Module, nodes, tag: str):
        widths = [max(1, mx.bit_length()) for _, mx in nodes]
        reg = Signal(sum(widths), name=f"pipe_{tag}", reset_less=True)
        m.d.sync += reg.eq(Cat(*[v[:w] for (v, _), w in zip(nodes, widths)]))
        out, pos = [], 0
        for (_, mx), w in zip(nodes, widths):
            out.append((reg[pos: pos + w], mx))
            pos += w
        return out
