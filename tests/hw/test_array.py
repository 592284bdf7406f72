"""One layer (sequencer + systolic array + ROMs) against the reference: random foldings, fan-ins not
divisible by L, thresholds at both ends (lo and N + 1), inverted rows, unsigned and bipolar inputs."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from fedxnor.contract.network import IntLayer, IntNetwork, argmax_lowest
from fedxnor.export.manifest import Folding, load_export, write_export
from fedxnor.export.reference import literal_accumulate
from fedxnor.hw.array import SystolicArray
from fedxnor.hw.sequencer import LayerSequencer


def export_with(tmp_path, rng, n, m, classes, fold, bits, enc, *, ties=False):
    """Layer 0 under test (fan-in n, fan-out m) plus an output layer; thresholds include lo and hi + 1."""
    w0 = rng.integers(0, 2, (m, n), dtype=np.uint8)
    w0[-1], w0[-2] = 1, 0  # with all-max inputs these reach the accumulator's extremes hi and lo
    probe = IntLayer(w0, None, input_bits=bits, encoding=enc)
    lo, hi = probe.acc_range
    t = rng.integers(lo, hi + 2, m)
    t[0], t[1 % m] = lo, hi + 1  # always / never
    if m > 3:
        t[2] = (lo + hi) // 2
    inv = rng.random(m) < 0.4
    l0 = IntLayer(w0, t, input_bits=bits, encoding=enc, inverted=inv)
    w1 = rng.integers(0, 2, (classes, m), dtype=np.uint8)
    if ties:
        w1[:] = w1[0]  # every class scores the same: the lowest index must win
        w1[classes // 2:] = w1[classes // 2]
    l1 = IntLayer(w1, None)
    return load_export(write_export(IntNetwork((l0, l1)), tmp_path / "exp", [Folding(*fold[:2]), Folding(*fold[2:])]))


def plane_words(x, info):
    """Input words in the order the sequencer's rd_lin counts them: plane (B-1-q), word c at q*W + c."""
    L, W = info.simd, info.words_per_row
    B = info.input_bits if info.encoding == "unsigned" else 1
    vals = [int(v) for v in x] + [0] * (W * L - len(x))
    words = []
    for q in range(B):
        b = B - 1 - q
        for c in range(W):
            words.append(sum(((vals[c * L + j] >> b) & 1) << j for j in range(L)))
    return words


def run_layer(ex, layer, xs):
    info = ex.layers[layer]
    arr = SystolicArray(info, ex.weight_words[layer], None if info.is_output else ex.threshold_words[layer])
    seq = LayerSequencer(arr.shape)
    top = Module()
    top.submodules.seq, top.submodules.arr = seq, arr
    top.d.comb += arr.tok.eq(seq.tok)
    words = [plane_words(x, info) for x in xs]
    events = []  # hidden: (image, neuron, bit); output: (score, idx, first_pass, imglast)
    P = info.pe

    async def bench(ctx):
        started, img_rd, img_row = 0, 0, [0] * P
        seen = [0] * P
        lin_prev, img_rd_prev = None, 0
        for _ in range(len(xs) * (arr.shape.NP * arr.shape.W * arr.shape.B + 5) + arr.latency + 40):
            more = started < len(xs)  # every bank ready while images remain, the output always free
            ctx.set(seq.rd.ready, 0b11 if more else 0)
            ctx.set(seq.claim.free, 0b11)
            if lin_prev is not None:
                ctx.set(seq.rd.data, words[img_rd_prev][lin_prev])
            if ctx.get(seq.claim.start):
                started += 1
            running = ctx.get(seq.running) or more
            lin_prev, img_rd_prev = (ctx.get(seq.rd.lin), img_rd) if running else (None, img_rd)
            if running and ctx.get(seq.rd.release):
                img_rd += 1
            if info.is_output:
                if ctx.get(arr.arg.valid):
                    events.append((ctx.get(arr.arg.score), ctx.get(arr.arg.idx), ctx.get(arr.arg.first_pass),
                                   ctx.get(arr.arg.imglast)))
            else:
                for p in range(P):
                    if ctx.get(arr.rows.shift[p]):
                        k = seen[p] % arr.shape.NP
                        events.append((img_row[p], k * P + p, ctx.get(arr.rows.bits[p])))
                        seen[p] += 1
                        if seen[p] % arr.shape.NP == 0:
                            img_row[p] += 1
            await ctx.tick()

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return events


CASES = [  # (n, m, classes, (P0, L0, P1, L1), bits, encoding)
    (20, 6, 4, (2, 6, 2, 6), 3, "unsigned"),    # 20 = 3·6 + 2: padding in the last word
    (13, 8, 3, (8, 13, 1, 8), 8, "unsigned"),    # one word per row, P = M
    (11, 9, 5, (3, 4, 5, 2), 1, "bipolar"),     # bipolar first layer (binarized inputs)
    (37, 12, 6, (4, 5, 3, 5), 2, "unsigned"),
]


@pytest.mark.parametrize("n,m,classes,fold,bits,enc", CASES)
def test_hidden_layer_bits_equal_reference(tmp_path, n, m, classes, fold, bits, enc):
    rng = np.random.default_rng(n * m + bits)
    ex = export_with(tmp_path, rng, n, m, classes, fold, bits, enc)
    xs = rng.integers(0, 1 << bits, (3, n))
    xs[0] = (1 << bits) - 1  # extreme inputs
    events = run_layer(ex, 0, xs)
    t = ex.network.layers[0].thresholds
    got = np.full((len(xs), m), 9)
    for img, neuron, bit in events:
        got[img, neuron] = bit
    want = np.array([(literal_accumulate(ex, 0, x) >= t).astype(int) for x in xs])
    assert np.array_equal(got, want)
    assert np.array_equal(want, ex.network.layers[0].forward(xs))
    # the constant neurons really are constant
    assert (got[:, 0] == 1).all() and (got[:, 1 % m] == 0).all()


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("n,m,classes,fold,bits,enc", CASES[:3])
def test_output_layer_argmax_equals_reference(tmp_path, n, m, classes, fold, bits, enc, ties):
    rng = np.random.default_rng(n + m + classes)
    ex = export_with(tmp_path, rng, n, m, classes, fold, bits, enc, ties=ties)
    xs = rng.integers(0, 2, (3, m))
    events = run_layer(ex, 1, xs)
    scores = ex.network.layers[1].forward(xs)
    P = ex.layers[1].pe
    passes = classes // P
    assert len(events) == len(xs) * passes
    for i, x in enumerate(xs):
        acc = literal_accumulate(ex, 1, x)
        assert np.array_equal(acc, scores[i])
        best = None
        for k in range(passes):
            score, idx, first, last = events[i * passes + k]
            chunk = acc[k * P:(k + 1) * P]
            assert (score, idx) == (chunk.max(), k * P + int(np.argmax(chunk))), (i, k)
            assert first == (k == 0) and last == (k == passes - 1)
            best = (score, idx) if best is None or score > best[0] else best
        assert best[1] == argmax_lowest(scores[i:i + 1])[0]
