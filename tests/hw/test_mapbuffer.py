"""RamVectorBuffer (hw/mapbuffer.py): the vector buffer in a RAM reads back what the flip-flop buffer reads back,
word for word (the pad bits past the vector 0), under random stalls and random reads, and with the same cycles:
the same piece handshakes and the same bank-ready cycles. VectorBuffer picks its storage by contract/structure.py's
rule."""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.back import rtlil
from fxconvnets import random_conv_network
from gateware import simulate, stream_feeder
from hw_helpers import run_images
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fedxnor.contract import cycles, mapcycles
from fedxnor.contract.conv import Conv
from fedxnor.contract.dense import Dense
from fedxnor.contract.folding import Folding
from fedxnor.contract.pool import MaxPool
from fedxnor.contract.structure import VECTOR_RAM_MIN_BITS, vector_ram_width, vector_ram_word
from fedxnor.export.manifest import load_export, write_export
from fedxnor.export.reference import Reference
from fedxnor.hw.mapbuffer import RamVectorBuffer
from fedxnor.hw.top import NetworkTop
from fedxnor.hw.vectorbuffer import VectorBuffer


def want_words(vec, lanes):
    bits = list(vec) + [0] * (-len(vec) % lanes)
    return [sum(int(b) << j for j, b in enumerate(bits[i:i + lanes])) for i in range(0, len(bits), lanes)]


async def read_pipelined(ctx, rd, count, words, rng, got):
    """As tests/gateware.py read_vectors, but a new word asked for every cycle, as the sequencer asks: the data
    seen in a cycle is the word asked for in the one before, while the next word is already asked for."""
    for v in range(count):
        bank = v % 2
        await ctx.tick().until(rd.ready.bit_select(bank, 1))
        for _ in range(rng.randrange(3)):
            await ctx.tick()
        order = list(range(words)) * rng.choice([1, 2])
        rng.shuffle(order)
        ctx.set(rd.bank, bank)
        seen = {}
        for i, c in enumerate(order):
            ctx.set(rd.word, c)
            ctx.set(rd.release, i == len(order) - 1)
            await ctx.tick()
            ctx.set(rd.word, rng.randrange(words))  # the next request, before the data is looked at
            ctx.set(rd.release, 0)
            seen[c] = ctx.get(rd.data)
        got.append([seen[c] for c in range(words)])


def run(store, pieces, width, lanes, vectors, seed, split=False):
    """Feed the vectors' pieces with stalls, read them back as a sequencer would; returns (words read, per cycle the
    (pieces.ready, rd.ready) pair)."""
    dut = VectorBuffer(pieces=pieces, width=width, lanes=lanes, store=store, split=split)
    rng = random.Random(seed)
    payloads = [sum(int(b) << j for j, b in enumerate(vec[i * width:(i + 1) * width])) for vec in vectors
                for i in range(pieces)]
    got, trace = [], []

    async def read(ctx):
        await read_pipelined(ctx, dut.rd, len(vectors), dut.words, rng, got)

    async def watch(ctx):
        async for _, _, pr, rr in ctx.tick().sample(dut.pieces.ready, dut.rd.ready):
            trace.append((pr, rr))
            if len(got) == len(vectors):
                break

    feed_rng = random.Random(seed + 1)  # the feeder's own stream of stalls: identical in both runs
    simulate(dut, stream_feeder(dut.pieces, payloads, feed_rng), read, watch)
    return got, trace


@settings(max_examples=20, deadline=None)
@given(pieces=st.integers(1, 24), width=st.sampled_from([1, 2, 3, 4, 8, 16, 32]), lanes=st.integers(1, 64),
       seed=st.integers(0, 2**16))
def test_ram_buffer_reads_and_times_as_the_flip_flop_buffer(pieces, width, lanes, seed):
    n = pieces * width
    assume(lanes <= n and vector_ram_word(width, lanes))
    vectors = [np.random.default_rng(seed + v).integers(0, 2, n) for v in range(3)]
    ram_words, ram_trace = run("ram", pieces, width, lanes, vectors, seed)
    ff_words, ff_trace = run("ff", pieces, width, lanes, vectors, seed)
    assert ram_words == [want_words(v, lanes) for v in vectors]
    assert ram_words == ff_words
    assert ram_trace == ff_trace  # same handshakes, same bank-ready cycles


@settings(max_examples=10, deadline=None)
@given(pieces=st.integers(4, 30), width=st.sampled_from([32, 48, 64]), lanes=st.sampled_from([1, 2, 4, 8, 16]),
       seed=st.integers(0, 2**16))
def test_split_ram_buffer_takes_a_piece_in_parts(pieces, width, lanes, seed):
    """The flattened map's split RAM (a piece of C bits written as C / Wm EBR-wide words, one a cycle): the words
    read back are the vector's, and a piece is taken (ready) only on its last part's cycle, so pieces are at least
    C / Wm cycles apart."""
    n = pieces * width
    wm = vector_ram_width(pieces, width, lanes, split=True)
    assume(0 < wm < width)
    h = width // wm
    vectors = [np.random.default_rng(seed + v).integers(0, 2, n) for v in range(3)]
    words, trace = run("auto", pieces, width, lanes, vectors, seed, split=True)
    assert words == [want_words(v, lanes) for v in vectors]
    ready = [i for i, (pr, _) in enumerate(trace) if pr]
    assert all(b - a >= h for a, b in zip(ready, ready[1:]))


def test_pad_bits_are_zero_after_a_vector_of_ones():
    # 5 pieces of 4 bits in 8-bit RAM words (2 pieces a word) read in 8-bit words: the last word holds one piece;
    # a vector of ones first, so a stale bank would show ones in the pad
    vectors = [np.ones(20, int), np.zeros(20, int), np.ones(20, int) * (np.arange(20) % 3 == 0)]
    got, _ = run("ram", 5, 4, 8, vectors, 3)
    assert got == [want_words(v, 8) for v in vectors]
    assert got[2][-1] == want_words(vectors[2], 8)[-1] < 16


def test_storage_rule():
    # cnv-small's flattened map (5 x 5 x 32) read 2 lanes at a time: one 32-bit RAM word per pixel
    assert vector_ram_width(25, 32, 2) == 32 and VectorBuffer(pieces=25, width=32, lanes=2).ram_width == 32
    assert RamVectorBuffer(pieces=25, width=32, lanes=2).rows == 32
    assert vector_ram_width(9, 16, 48) == 48  # 3 pieces and one read word a RAM word
    assert vector_ram_width(25, 32, 5) == 0  # lcm 160: wider than 4 EBRs
    assert vector_ram_width(9, 12, 8) == 0  # 12 / gcd(12, 8) = 3 read words a RAM word: not a power of two
    assert vector_ram_width(9, 1, 8, bits=8) == 0  # pixel windows keep their planes in flip-flops
    assert vector_ram_width(4, 16, 16) == 0 and 4 * 16 < VECTOR_RAM_MIN_BITS  # too small for a RAM tile
    with pytest.raises(ValueError, match="do not pack"):
        VectorBuffer(pieces=9, width=12, lanes=8, store="ram")
    with pytest.raises(ValueError, match="cannot have"):
        RamVectorBuffer(pieces=9, width=12, lanes=8, ram_width=24)


def test_network_with_ram_buffers_equals_reference_and_cycle_model(tmp_path):
    """A CNV-shaped network whose flattened map (4 x 4 x 32, read 8 lanes a word: split, two cycles a pixel) and
    second conv's window (9 x 16 bits, 16 lanes) are RAMs: every class equals the reference's and every result cycle
    the event model's (contract/mapcycles.py: the window's RAM keeps the flip-flop buffer's cycles, the split map
    takes a pixel in two)."""
    specs = [Conv(8, 8, 1, 16, 3, 1, 1, 8, "unsigned"), MaxPool(8, 8, 16, 2, 2), Conv(4, 4, 16, 32, 3, 1, 1),
             Dense(512, 8), Dense(8, 3, is_output=True)]
    folds = [Folding(4, 9), None, Folding(1, 16), Folding(2, 8), Folding(1, 8)]
    assert not specs[2].column_window(folds[2])  # the serial window generator: its window is a VectorBuffer
    # the window: one 16-bit RAM word a tap; the 4 x 4 x 32 map: split, a pixel written as two 16-bit words
    assert vector_ram_width(9, 16, 16) == 16 and vector_ram_width(16, 32, 8, split=True) == 16
    rng = np.random.default_rng(5)
    net = random_conv_network(specs, rng)
    ex = load_export(write_export(net, tmp_path / "e", folds, input_spec={"shape": [8, 8, 1], "encoding": "pixels"}))
    text = rtlil.convert(NetworkTop(ex, maps=True))
    assert "top.map_buffer.ram" in text and "top.map2.window.buffer.ram" in text  # both built as RAMs
    x = rng.integers(0, 256, (5, 64))
    log = run_images(NetworkTop(ex, maps=True), x)
    assert log.classes == Reference(ex).run(x).classes.tolist()
    sim = [c - log.first_offer for c in log.result_cycles]
    assert sim == mapcycles.result_cycles(ex.layers, 5)
    assert cycles.latency_cycles(ex.layers) == sim[0]
