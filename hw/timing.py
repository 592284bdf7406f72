"""Analytical cycle model of the accelerator in hw/ (docs/accelerator.md, "Cycle model").

Stages: the intake (one bit plane of one beat written per cycle) and one
stage per layer (one token per cycle, no gaps). Between two stages sits a
two-bank buffer, so the steady-state initiation interval is the slowest stage,
unless two neighbours are so close that a bank is held longer than two images'
issue: a bank is busy from the producer's first token until the consumer's
last, through the producer's drain D. Tests check this model against the
Amaranth simulation of the generated design.
"""

from __future__ import annotations

from dataclasses import dataclass

from fedxnor.export.manifest import Export, LayerInfo
from fedxnor.hw.lanes import tree_levels

# Fixed handshake cycles of the implementation (see hw/sequencer.py, hw/array.py, hw/argmax.py):
DRAIN_FIXED = 3  # last token issued -> next layer may issue its first token: R + P + 3
RESULT_FIXED = 4  # last token of the output layer -> result valid: R + P + 4
CREDIT_FIXED = 4  # result FIFO credits: output layer start n -> start n + 2 >= T + R + P + 4
READ_REGS_CYCLES = 3  # read_regs: two weight registers (hw/array.py) + the input read's second stage
RESULT_REG_CYCLES = 1  # read_regs: the class registered before the result FIFO (hw/argmax.py)
INTAKE_REG_CYCLES = 1  # read_regs: the image buffer's registered write sets its full flag a cycle later
DRAIN_REG_CYCLES = 1  # read_regs: an activation buffer registers its producer's outputs (hw/buffers.py)
START_REG_CYCLES = 1  # read_regs: a sequencer's registered start_ok (hw/sequencer.py) starts a cycle later
START_GAP = 1  # read_regs: and leaves an idle cycle between two images of a layer


def drain_fixed(read_regs: bool = False) -> int:
    """DRAIN_FIXED of a hidden layer: one more each when its activation buffer registers the producer's outputs
    and when the consumer's sequencer registers its start."""
    return DRAIN_FIXED + (DRAIN_REG_CYCLES + START_REG_CYCLES) * bool(read_regs)


def output_fixed(read_regs: bool = False) -> tuple[int, int]:
    """(RESULT_FIXED, CREDIT_FIXED) of the output layer: one more each with the result register."""
    extra = RESULT_REG_CYCLES * bool(read_regs)
    return RESULT_FIXED + extra, CREDIT_FIXED + extra + START_REG_CYCLES * bool(read_regs)


@dataclass(frozen=True)
class StageTiming:
    name: str
    tokens: int  # T: cycles of issue per image
    drain: int  # D: last issue -> consumer's first issue (or result valid for the output layer)


def layer_tokens(info: LayerInfo) -> int:
    """T_l = (M / P) · ceil(N / L) · B, B = input bits for an unsigned first layer, else 1."""
    b = info.input_bits if info.encoding == "unsigned" else 1
    return info.neurons_per_pe * info.words_per_row * b


def tree_latency(info: LayerInfo, stages: int | None = None, read_regs: bool = False) -> int:
    """R: register stages of the lane group's adder tree (default: one per level), plus, with read_regs,
    the two weight registers before the lanes and the extra cycle of the layer's input-buffer read."""
    return (tree_levels(info.simd) if stages is None else stages) + READ_REGS_CYCLES * bool(read_regs)


def stage_timings(export: Export, stages: int | None = None, read_regs: bool = False) -> list[StageTiming]:
    first = export.layers[0]
    out = [StageTiming("intake", first.words_per_row * first.input_bits,
                       (INTAKE_REG_CYCLES + START_REG_CYCLES) * bool(read_regs))]
    for info in export.layers:
        fixed = output_fixed(read_regs)[0] if info.is_output else drain_fixed(read_regs)
        out.append(StageTiming(info.name, layer_tokens(info), tree_latency(info, stages, read_regs) + info.pe + fixed))
    return out


def initiation_interval(export: Export, stages: int | None = None, read_regs: bool = False) -> float:
    """Steady-state cycles between results with images back to back and the result always taken.

        II = max( T_in, max_l T_l + G,
                  max over hidden l of (T_l + D_l + T_{l+1} + G) / 2,  bank of activation buffer l
                  (T_out + R_out + P_out + CREDIT_FIXED) / 2 )          the 2-entry result FIFO

    G = START_GAP with read_regs (an idle cycle between two images of a layer), else 0.
    """
    st = stage_timings(export, stages, read_regs)
    gap = START_GAP * bool(read_regs)
    ii = float(max([st[0].tokens] + [s.tokens + gap for s in st[1:]]))
    for prod, cons in zip(st[1:-1], st[2:]):  # hidden layer -> next layer
        ii = max(ii, (prod.tokens + prod.drain + cons.tokens + gap) / 2)
    out = st[-1]
    info = export.layers[-1]
    ii = max(ii, (out.tokens + tree_latency(info, stages, read_regs) + info.pe + output_fixed(read_regs)[1]) / 2)
    return ii


def cycles_per_inference(export: Export, *, stages: int | None = None, read_regs: bool = False) -> int:
    """Steady-state clock cycles per image (the initiation interval, rounded up)."""
    return int(-(-initiation_interval(export, stages, read_regs) // 1))


def latency_cycles(export: Export, stages: int | None = None, read_regs: bool = False) -> int:
    """Cycles from the first beat of an image being offered to an idle accelerator until its result is valid."""
    st = stage_timings(export, stages, read_regs)
    total = st[0].tokens + st[0].drain
    for s in st[1:]:
        total += s.tokens - 1 + s.drain
    return total
