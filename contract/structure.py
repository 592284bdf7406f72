"""The gateware's structural numbers that the cost and cycle models need.

They are owned here, not in hw/, so that the gateware (which imports them) and the
models (which count with them) read one value: change a number here and both move.
Each says why it has its value; hw/ says how it is built.
"""

from __future__ import annotations

from math import gcd

from fedxnor.contract.bits import bits_for, ceil_div

# ---------------------------------------------------------------- adder trees (hw/lanes.py)


def count_width(lanes: int) -> int:
    """Bits of a count in [0, lanes]."""
    return max(1, lanes.bit_length())


def tree_levels(lanes: int) -> int:
    """Adder levels of a binary tree over `lanes` terms (the first level adds term pairs)."""
    return max(0, (lanes - 1).bit_length())


# ---------------------------------------------------------------- register copies (hw/fanout.py)


def slice_count(width: int, max_bits: int) -> int:
    """The fewest slices of at most max_bits that `width` bits are cut into (one register copy each)."""
    return ceil_div(width, max_bits)


def slice_edges(width: int, max_bits: int) -> list[int]:
    """Bit offsets of those slices, near-equal in width: [0, ..., width]."""
    n = slice_count(width, max_bits)
    return [width * k // n for k in range(n + 1)]


# ---------------------------------------------------------------- weight ROMs (hw/array.py, hw/top.py)

SMALL_ROM_BITS = 512  # ROMs up to this size are LUTs on every device: a 4 Kbit EBR is the scarce resource on iCE40
ROM_BITS_PER_ADDRESS = 24  # word bits of a LUT ROM per copy of its address register (read_regs builds)
WEIGHT_ROMS = ("auto", "logic", "shallow")
SHALLOW_ROM_DEPTH = 64  # "shallow": a ROM this deep is a 64:1 LUT mux per bit, three slice levels on ECP5


def rom_in_logic(weight_roms: str, depth: int) -> bool:
    """Whether the top builds a weight ROM of `depth` words of LUTs (the cost model counts it the same way)."""
    return weight_roms == "logic" or (weight_roms == "shallow" and depth <= SHALLOW_ROM_DEPTH)


# ---------------------------------------------------------------- run-time weight stores (hw/weightstore.py)

SPRAM_DEPTH = 16384  # SB_SPRAM256KA: 16K words of 16 bits, no bitstream init
SPRAM_WIDTH = 16


def spram_cells(width: int, depth: int) -> int:
    """SB_SPRAM256KA cells one row of `width` x `depth` words takes (0 if it cannot be built of them)."""
    if depth > SPRAM_DEPTH:
        return 0
    return ceil_div(width, SPRAM_WIDTH)


# ---------------------------------------------------------------- buffers (hw/buffers.py)

READ_GROUP = 8  # words per first-stage mux of a two-stage activation-buffer read (an 8:1 mux is one slice pair)
SELECT_BITS = 24  # lanes per register copy of a select (first-stage muxes of activation reads, the image plane select)
# A conv network's dense tail reads its activation buffers in one stage (NetworkTop has no read_regs with a conv
# front): bank·W + word into a 2W:1 mux. On a device that wants read registers (ECP5) the solver keeps W at most
# this: the ULX3S build of the 3136-768-10 tail, its last layer at L = 3 (256 words), routed at 56.5 MHz with that
# mux as the critical path (17.7 ns, 14.8 of it routing across a congested die). At 32 words (L = 24) it was the
# critical path again once fc6's weight ROM read through the block RAM output registers (15.2 ns, 65.7 MHz: word
# register, select LUT, 5.6 ns route, four mux levels); 16 words (L = 48) drop a mux level for 24 more lanes.
SINGLE_READ_MAX_WORDS = 16
READ_STAGE_CONTROL_FFS = 12  # read_regs: the sequencer's token fields delayed one cycle more (~12 bits)


def read_select_copies(lanes: int, words: int) -> int:
    """Copies of (word, bank) a two-stage activation read takes: one per slice of SELECT_BITS lanes per group."""
    return ceil_div(words, READ_GROUP) * slice_count(lanes, SELECT_BITS)


def image_address_bits(words: int, input_bits: int) -> int:
    """Bits of an image-buffer address within one bank (bit planes x words per plane, a power of two)."""
    return bits_for(input_bits * words)


def image_buffer_depth(words: int, input_bits: int) -> int:
    """Rows of the image buffer's RAM: two banks of 2^ceil(log2(B * W)) rows of L bits."""
    return 2 << max(0, (input_bits * words - 1).bit_length())


def read_stage_bits(lanes: int, words: int, first: bool, input_bits: int = 8) -> int:
    """Flip-flops the ECP5 register stages add to a layer's input buffer (read_reg + write_reg): the first half
    of a two-stage read and, for the image buffer, the copies of its plane select and its write register (data,
    address with bank, enable, the delayed full flag); for an activation buffer, the sequencer's copies of
    (word, bank). Its door registers belong to the producing layer (door_bits)."""
    if first:
        return (lanes + (slice_count(lanes, SELECT_BITS) - 1) * input_bits
                + lanes + image_address_bits(words, input_bits) + 1 + 2)
    return lanes * ceil_div(words, READ_GROUP) + read_select_copies(lanes, words) * (bits_for(words) + 1)


# ---------------------------------------------------------------- vector buffers (hw/vectorbuffer.py, hw/mapbuffer.py)

# A vector buffer (a conv window, the flattened map) goes to a RAM when it holds at least this many bits per bank:
# two banks of flip-flops cost a flip-flop and about a LUT (the read mux) per stored bit, which the UP5K cannot spare
# for the flattened map (1,600 of each for cnv-small's 800 bits); below it a RAM tile would be mostly wasted.
VECTOR_RAM_MIN_BITS = 128
VECTOR_RAM_MAX_WIDTH = 64  # widest RAM word (4 iCE40 EBRs side by side); a wider one wastes block RAM: flip-flops


def vector_ram_word(width: int, lanes: int, bits: int = 1) -> int:
    """The RAM word a vector of `width`-bit pieces read in `lanes`-bit words packs into, 0 if none does.

    A RAM word holds whole pieces (a piece of C bits is written in its arrival cycle: the stream timing of the
    flip-flop buffer, contract/mapcycles.py) and whole L-bit read words, a power of two of them (the word number's
    low bits pick one): the word is lcm(C, L) bits, which needs C / gcd(C, L) to be a power of two. Binary vectors
    (B = 1) only: a first layer's pixel windows (B planes) are small."""
    per_row = width // gcd(width, lanes)  # read words per RAM word
    ram = lanes * per_row
    if bits != 1 or per_row & (per_row - 1) or ram > VECTOR_RAM_MAX_WIDTH:
        return 0
    return ram


EBR_WIDTH, EBR_BITS = 16, 4096  # an iCE40 SB_RAM40_4K at its widest: 256 x 16


def vector_ram_width(pieces: int, width: int, lanes: int, bits: int = 1, *, split: bool = False) -> int:
    """The RAM word of a vector buffer VectorBuffer keeps in RAM (hw/mapbuffer.py), 0 if it stays in flip-flops:
    at least VECTOR_RAM_MIN_BITS bits, packed as vector_ram_word says.

    split (the flattened map only, whose intake is never a layer's per-cycle path): a piece wider than an EBR may
    be written as C / Wm parts of an EBR-wide word, one a cycle, when both banks then fit one EBR (cnv-small's
    5 x 5 x 32 map: one EBR instead of two side by side); the pieces then take C / Wm cycles each
    (vector_piece_cycles, contract/mapcycles.py)."""
    if pieces * width < VECTOR_RAM_MIN_BITS:
        return 0
    wm = vector_ram_word(width, lanes, bits)
    if split and bits == 1 and (wm == 0 or wm > EBR_WIDTH) and 2 * pieces * width <= EBR_BITS:
        j = 1
        while width % (1 << j) == 0 and width >> j >= lanes:  # the widest part of C / 2^j bits that fits an EBR
            part, j = width >> j, j + 1
            if part <= EBR_WIDTH and part % lanes == 0 and not (part // lanes) & (part // lanes - 1):
                return part
    return wm


def vector_piece_cycles(width: int, ram_width: int) -> int:
    """Cycles a VectorBuffer takes a piece in: 1, or the parts of a split piece (vector_ram_width split)."""
    return width // ram_width if ram_width and ram_width < width else 1


def vector_ram_rows(pieces: int, width: int, ram_width: int) -> int:
    """RAM words of one bank, a power of two (the bank is the address's top bit: no adder on either port)."""
    return 1 << max(0, (ceil_div(pieces * width, ram_width) - 1).bit_length())


def door_bits(pe: int) -> int:
    """Flip-flops of an activation buffer's door (in_reg): its producer's shift, bit and bank per row, done, bank."""
    return 3 * pe + 2


# ---------------------------------------------------------------- handshakes (hw/sequencer.py, hw/array.py, hw/argmax.py)

DRAIN_FIXED = 3  # last token issued -> next layer may issue its first token: R + P + 3
RESULT_FIXED = 4  # last token of the output layer -> result valid: R + P + 4
CREDIT_FIXED = 4  # result FIFO credits: output layer start n -> start n + 2 >= T + R + P + 4
READ_REGS_CYCLES = 3  # read_regs: two weight registers (hw/array.py) + the input read's second stage
RESULT_REG_CYCLES = 1  # read_regs: the class registered before the result FIFO (hw/argmax.py)
INTAKE_REG_CYCLES = 1  # read_regs: the image buffer's registered write sets its full flag a cycle later
DRAIN_REG_CYCLES = 1  # read_regs: an activation buffer registers its producer's outputs (hw/buffers.py)
START_REG_CYCLES = 1  # read_regs: a sequencer's registered start_ok (hw/sequencer.py) starts a cycle later
START_GAP = 1  # read_regs: and leaves an idle cycle between two images of a layer
# hw/colwindow.py: the window register and hold banks load a cycle after the walker's go, so a bank is ready
# 1 + WINDOW_LAG cycles after its window's last position
WINDOW_LAG = 1
# a conv network's fully connected layers register their weight words twice before the lanes (hw/array.py in_reg,
# on every device: the ULX3S build's critical path was a deep weight ROM's DP16KD read, its output mux and the
# first adder level, 15.1 ns): R + WEIGHT_REG_CYCLES
WEIGHT_REG_CYCLES = 2
# hw/colwindow.py: the column memory's write lands a cycle late (from the registered column) on maps at least this
# many words wide (padded); it adds no cycle
COLUMN_WRITE_LAG_MIN_WIDTH = 3
