"""A small SHA-256 core for the board's weight loader: hashes a byte stream, pads it itself.

The board hashes each weight image as it arrives over the UART (one byte per ~1000
cycles) and compares the digest with the manifest's sha256, so area is everything and
speed hardly matters. The design therefore keeps all working state in one 128 x 32
block RAM (two iCE40 EBRs) and runs one 32-bit adder as a tiny microcoded machine:

* memory map: K[0..63] (initialized), W ring [64..79] (the 16-word message schedule,
  W[t] overwrites W[t-16]), A ring [80..87] and E ring [88..95] (the working
  variables: a new `a` and a new `e` per round; b, c, d and f, g, h are the previous
  three of each, so a round writes two words and nothing shifts), IV [96..103]
  (initialized), H [104..111] (the chaining value), TMP [112..127] (T1 of round t at
  112 + t % 16);
* datapath: one read port feeds `rd` through a function unit (identity, sigma0,
  sigma1, Sigma0, Sigma1, each optionally ANDed with the register `x` or its
  complement) into the accumulator `acc` (load or add); the write port always writes
  `acc`. Ch and Maj use one register: their bitwise terms are disjoint, so
  Ch(e,f,g) = (e&f) + (~e&g) and Maj(a,b,c) = (a&b) + (c&(a^b)) are two adds each;
* a round takes 16 cycles (one read per cycle: four W words, K, h, e, f, g, d, a, b, c,
  TMP), a block 8 x 3 (ring init from H) + 64 x 16 + 8 x 4 (H += ring) = 1080 cycles
  during which `data.ready` is low; padding bytes and the big-endian bit length go
  through the same byte path as message bytes, one per cycle. A source delivering bytes
  no faster than one per 541 cycles (a UART at 115200 baud and 36 MHz: one per 3125) therefore
  needs only a one-byte holding register in front;
* three pipeline stages (read decision | block RAM + function unit | adder) keep the
  block RAM, the function unit and the 32-bit carry chain on separate register-to-
  register paths, so the core is not the board's critical path; the microcode table
  is written as if unpipelined and every stage lags it uniformly;
* the memory carries Yosys' `no_rw_check`: the iCE40 EBR leaves a read of the address
  being written undefined, and without the attribute Yosys adds bypass flip-flops and
  multiplexers to emulate Amaranth's read-old-data; the microcode never reads the
  address it writes in the same cycle (the testbench checks this every cycle);
* the 256 digest flip-flops are a shift register fed with each new H word, so they
  need no logic. The first block of a message reads IV in place of H (one address
  bit), so nothing is copied between messages.

Message length is counted in `length_bits` bits of bytes (default 24: up to 16 MiB);
a longer message would get a wrong length field.

`python -m fedxnor.boards.sha256 [up5k|hx8k]` prints the synthesized size (resources()).
"""

import enum
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from fedxnor.errors import FedxnorError

BYTE_LAYOUT = data.StructLayout({"byte": 8, "last": 1})
CYCLES_PER_BLOCK = 8 * 3 + 64 * 16 + 8 * 4  # INIT + ROUND + FINAL; ready is low for these

_PRIMES = [p for p in range(2, 312) if all(p % q for q in range(2, math.isqrt(p) + 1))]


def _icbrt(n: int) -> int:
    """floor(cbrt(n)) for a non-negative integer."""
    x = 1 << ((n.bit_length() + 2) // 3)
    while True:
        y = (2 * x + n // (x * x)) // 3
        if y >= x:
            break
        x = y
    while x ** 3 > n:
        x -= 1
    while (x + 1) ** 3 <= n:
        x += 1
    return x


# FIPS 180-4: fractional bits of cube roots (K) and square roots (IV) of the first primes.
K = [_icbrt(p << 96) & 0xFFFFFFFF for p in _PRIMES[:64]]
IV = [math.isqrt(p << 64) & 0xFFFFFFFF for p in _PRIMES[:8]]

# Word addresses of the memory map (7-bit address).
_IV = 96  # see the docstring for the rest of the map


def _memory_init() -> list[int]:
    words = [0] * 128
    words[0:64] = K
    words[_IV:_IV + 8] = IV
    return words


class _F(enum.IntEnum):
    ID = 0
    S0 = 1  # sigma0 (schedule)
    S1 = 2  # sigma1 (schedule)
    B0 = 3  # Sigma0 (compression)
    B1 = 4  # Sigma1 (compression)


class _Mask(enum.IntEnum):
    NONE = 0
    X = 1
    NX = 2


class _R(enum.IntEnum):  # read-address regions
    HSRC = 0  # IV[k] on a message's first block, else H[k]
    RING = 1  # A[3-k] / E[7-k]: the ring slot of H word k
    W = 2
    A = 3
    E = 4
    K = 5
    TMP = 6


class _Acc(enum.IntEnum):
    HOLD = 0
    LOAD = 1
    ADD = 2
    BYTE = 3


class _X(enum.IntEnum):
    HOLD = 0
    LOAD = 1
    XOR = 2


def _registered(m: Module, suffix: str, *signals: Signal) -> list[Signal]:
    """One pipeline stage: a register of each signal's shape (enums too), named after it."""
    out = [Signal.like(sig, name=sig.name + suffix) for sig in signals]
    m.d.sync += [o.eq(sig) for o, sig in zip(out, signals)]
    return out


class Sha256(wiring.Component):
    """SHA-256 of each message on `data` (bytes, `last` on the final one; >= 1 byte).

    `digest` equals int.from_bytes(hashlib.sha256(message).digest(), "big") while `done`
    is high: from the end of the message's last block until the next message's first
    byte is accepted. `data.ready` is low for CYCLES_PER_BLOCK cycles after every 64th
    byte and while the core emits the padding after `last`.
    """

    data: In(stream.Signature(BYTE_LAYOUT))
    digest: Out(256)
    done: Out(1)

    def __init__(self, *, length_bits: int = 24):
        if not 6 <= length_bits <= 61:
            raise ValueError(f"length_bits must be 6..61, not {length_bits}")
        self.length_bits = length_bits
        super().__init__()

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.mem = mem = Memory(shape=32, depth=128, init=_memory_init(), attrs={"no_rw_check": 1})
        rport = mem.read_port()
        wport = mem.write_port()
        rd = rport.data
        self._mem_ports = (rport, wport)  # for the testbench's read/write collision check

        acc = Signal(32)
        x = Signal(32)
        step = Signal(4)   # cycle within a round / loop iteration
        t = Signal(6)      # round, or word index k in the INIT/FINAL loops
        pos = Signal(6)    # byte position in the block (message and padding)
        count = Signal(self.length_bits)  # message bytes so far
        wpend = Signal()   # the assembled word in acc goes to the W ring this cycle
        first = Signal(init=1)   # first block of a message: H is the IV
        padding = Signal()       # `last` seen: the rest is padding
        need80 = Signal()        # the 0x80 byte is still to come
        lenok = Signal()         # this block's last 8 bytes are the length
        final = Signal()         # this block ends the message

        # Control of the datapath, set per state below (defaults: idle).
        fsel = Signal(_F)
        mask = Signal(_Mask)
        acc_op = Signal(_Acc)
        x_op = Signal(_X)
        emit = Signal()
        byte = Signal(8)
        we = Signal()
        waddr = Signal(7)
        dshift = Signal()
        set_done = Signal()

        # Pipeline (for Fmax): the microcode step decides a read (region and offset, registered), whose
        # address goes to the block RAM the next cycle (stage 0); its data reaches the function unit and x one cycle later, under the
        # step's other controls registered once (stage 1); the function unit's output is registered
        # and the accumulator, the writes of acc, the digest shift and `done` act one more cycle later
        # (stage 2). Everything moves uniformly, so the step table below reads as if unpipelined.
        fsel_d, mask_d, x_op_d, acc_op_d, byte_d, we_d, waddr_d, dshift_d, set_done_d = _registered(
            m, "_d", fsel, mask, x_op, acc_op, byte, we, waddr, dshift, set_done)

        # Function unit: rd through a sigma function, then masked with x or ~x.
        def rotr(v, n):
            return v.rotate_right(n)

        fval = Signal(32)
        with m.Switch(fsel_d):
            with m.Case(_F.ID):
                m.d.comb += fval.eq(rd)
            with m.Case(_F.S0):
                m.d.comb += fval.eq(rotr(rd, 7) ^ rotr(rd, 18) ^ (rd >> 3))
            with m.Case(_F.S1):
                m.d.comb += fval.eq(rotr(rd, 17) ^ rotr(rd, 19) ^ (rd >> 10))
            with m.Case(_F.B0):
                m.d.comb += fval.eq(rotr(rd, 2) ^ rotr(rd, 13) ^ rotr(rd, 22))
            with m.Case(_F.B1):
                m.d.comb += fval.eq(rotr(rd, 6) ^ rotr(rd, 11) ^ rotr(rd, 25))
        operand = Signal(32)
        m.d.comb += operand.eq(Mux(mask_d == _Mask.NONE, fval, fval & Mux(mask_d == _Mask.X, x, ~x)))
        with m.Switch(x_op_d):
            with m.Case(_X.LOAD):
                m.d.sync += x.eq(rd)
            with m.Case(_X.XOR):
                m.d.sync += x.eq(x ^ rd)

        operand_q, acc_op_q, byte_q, we_q, waddr_q, dshift_q, set_done_q = _registered(
            m, "_q", operand, acc_op_d, byte_d, we_d, waddr_d, dshift_d, set_done_d)
        with m.Switch(acc_op_q):
            with m.Case(_Acc.LOAD, _Acc.ADD):
                m.d.sync += acc.eq(Mux(acc_op_q == _Acc.ADD, acc, 0) + operand_q)
            with m.Case(_Acc.BYTE):
                m.d.sync += acc.eq(Cat(byte_q, acc[:24]))
        m.d.comb += [wport.en.eq(we_q), wport.addr.eq(waddr_q), wport.data.eq(acc)]
        with m.If(dshift_q):
            m.d.sync += self.digest.eq(Cat(acc, self.digest[:224]))
        with m.If(set_done_q):
            m.d.sync += self.done.eq(1)

        # Byte path (message and padding): shift into acc, write every 4th byte's word next cycle.
        m.d.sync += wpend.eq(0)
        with m.If(emit):
            m.d.comb += acc_op.eq(_Acc.BYTE)
            m.d.sync += [pos.eq(pos + 1), wpend.eq(pos[:2] == 3)]
        with m.If(wpend):
            m.d.comb += [we.eq(1), waddr.eq(Cat((pos[2:] - 1)[:4], Const(0b100, 3)))]

        # Addresses.
        k = t[:3]
        h_dst = Cat(k, Const(1, 1), Const(0b110, 3))        # H[k]
        ring = Cat(~k[:2], Const(0, 1), k[2], Const(0b101, 3))  # k<4: A[3-k], else E[7-k]

        def w_at(off):  # write address W[t+off]
            return Cat((t[:4] + off)[:4], Const(0b100, 3))

        def a_at(off):  # write address A[t+off]
            return Cat((t[:3] + off)[:3], Const(0, 1), Const(0b101, 3))

        def e_at(off):  # write address E[t+off]
            return Cat((t[:3] + off)[:3], Const(1, 1), Const(0b101, 3))

        # Read addresses share one 4-bit adder t + roff; `region` picks the rest of the address.
        region = Signal(_R)
        roff = Signal(4)
        region_q, roff_q = _registered(m, "_q", region, roff)
        rsum = Signal(4)
        m.d.comb += rsum.eq(t[:4] + roff_q)
        rbit3 = Signal()
        rhigh = Signal(3)
        with m.Switch(region_q):
            with m.Case(_R.HSRC):
                m.d.comb += [rbit3.eq(~first), rhigh.eq(0b110)]
            with m.Case(_R.RING):
                m.d.comb += [rbit3.eq(t[2]), rhigh.eq(0b101)]
            with m.Case(_R.W):
                m.d.comb += [rbit3.eq(rsum[3]), rhigh.eq(0b100)]
            with m.Case(_R.A):
                m.d.comb += [rbit3.eq(0), rhigh.eq(0b101)]
            with m.Case(_R.E):
                m.d.comb += [rbit3.eq(1), rhigh.eq(0b101)]
            with m.Case(_R.K):
                m.d.comb += [rbit3.eq(rsum[3]), rhigh.eq(t[4:])]
            with m.Case(_R.TMP):
                m.d.comb += [rbit3.eq(rsum[3]), rhigh.eq(0b111)]
        m.d.comb += rport.addr.eq(Cat(Mux(region_q == _R.RING, Cat(~t[:2], Const(0, 1)), rsum[:3]), rbit3, rhigh))

        def read(where, off=0):
            return [region.eq(where), roff.eq(off)]

        t16 = t[4] | t[5]  # round >= 16: compute W[t] from the ring
        length = Cat(Const(0, 3), count, Const(0, 61 - self.length_bits))  # bit length, 64 bits

        with m.FSM():
            with m.State("COLLECT"):
                busy = set_done_d | set_done_q  # done rises before the next message starts
                m.d.comb += self.data.ready.eq(~busy)
                with m.If(self.data.valid & ~busy):
                    m.d.comb += [emit.eq(1), byte.eq(self.data.payload.byte)]
                    m.d.sync += [count.eq(count + 1), self.done.eq(0)]
                    with m.If(self.data.payload.last):
                        m.d.sync += [padding.eq(1), need80.eq(1)]
                        m.next = "PAD"
                    with m.If(pos == 63):
                        m.next = "INIT"
            with m.State("PAD"):
                m.d.comb += emit.eq(1)
                with m.If(need80):
                    m.d.comb += byte.eq(0x80)
                    m.d.sync += [need80.eq(0), lenok.eq(pos[3:] != 7)]
                with m.Elif(lenok & (pos[3:] == 7)):
                    m.d.comb += byte.eq(length.word_select(~pos[:3], 8))
                with m.If(pos == 63):
                    m.d.sync += [final.eq(lenok & ~need80), lenok.eq(1)]
                    m.next = "INIT"
            with m.State("INIT"):  # ring <- H (or IV), 3 cycles a word
                with m.Switch(step):
                    with m.Case(0):  # reads H[k] (region HSRC, the default)
                        m.d.sync += step.eq(1)
                    with m.Case(1):
                        m.d.comb += acc_op.eq(_Acc.LOAD)
                        m.d.sync += step.eq(2)
                    with m.Case(2):
                        m.d.comb += [we.eq(1), waddr.eq(ring)]
                        m.d.sync += [step.eq(0), t.eq(t + 1)]
                        with m.If(k == 7):
                            m.d.sync += t.eq(0)
                            m.next = "ROUND"
            with m.State("ROUND"):  # 16 cycles: read at step s, use rd at step s+1
                m.d.sync += step.eq(step + 1)
                with m.Switch(step):
                    with m.Case(0):
                        m.d.comb += read(_R.W, 0)  # W[t-16]
                    with m.Case(1):
                        m.d.comb += read(_R.W, 1)  # W[t-15]
                        with m.If(t16):
                            m.d.comb += acc_op.eq(_Acc.LOAD)
                    with m.Case(2):
                        m.d.comb += read(_R.W, 9)  # W[t-7]
                        with m.If(t16):
                            m.d.comb += [acc_op.eq(_Acc.ADD), fsel.eq(_F.S0)]
                    with m.Case(3):
                        m.d.comb += read(_R.W, Mux(t16, 14, 0))  # W[t-2], or W[t]
                        with m.If(t16):
                            m.d.comb += acc_op.eq(_Acc.ADD)
                    with m.Case(4):
                        m.d.comb += read(_R.K)  # K[t]
                        with m.If(t16):
                            m.d.comb += [acc_op.eq(_Acc.ADD), fsel.eq(_F.S1)]  # acc = W[t]
                        with m.Else():
                            m.d.comb += acc_op.eq(_Acc.LOAD)
                    with m.Case(5):
                        m.d.comb += [*read(_R.E, 0), acc_op.eq(_Acc.ADD),  # + K; read h
                                     we.eq(1), waddr.eq(w_at(0))]       # W[t]
                    with m.Case(6):
                        m.d.comb += [*read(_R.E, 3), acc_op.eq(_Acc.ADD)]  # + h; read e
                    with m.Case(7):
                        m.d.comb += [*read(_R.E, 2), acc_op.eq(_Acc.ADD), fsel.eq(_F.B1),
                                     x_op.eq(_X.LOAD)]                             # + Sigma1(e); x = e
                    with m.Case(8):
                        m.d.comb += [*read(_R.E, 1), acc_op.eq(_Acc.ADD), mask.eq(_Mask.X)]  # + e&f
                    with m.Case(9):
                        m.d.comb += [*read(_R.A, 0), acc_op.eq(_Acc.ADD), mask.eq(_Mask.NX)]  # + ~e&g
                    with m.Case(10):  # acc = T1: keep it, add d
                        m.d.comb += [*read(_R.A, 3), acc_op.eq(_Acc.ADD),
                                     we.eq(1), waddr.eq(Cat(t[:4], Const(0b111, 3)))]
                    with m.Case(11):  # acc = new e
                        m.d.comb += [*read(_R.A, 2), acc_op.eq(_Acc.LOAD), fsel.eq(_F.B0),
                                     x_op.eq(_X.LOAD), we.eq(1), waddr.eq(e_at(4))]
                    with m.Case(12):
                        m.d.comb += [*read(_R.A, 1), acc_op.eq(_Acc.ADD), mask.eq(_Mask.X),
                                     x_op.eq(_X.XOR)]                              # + a&b; x = a^b
                    with m.Case(13):
                        m.d.comb += [*read(_R.TMP), acc_op.eq(_Acc.ADD), mask.eq(_Mask.X)]  # + c&(a^b)
                    with m.Case(14):
                        m.d.comb += acc_op.eq(_Acc.ADD)                    # + T1 = new a
                    with m.Case(15):
                        m.d.comb += [we.eq(1), waddr.eq(a_at(4))]
                        m.d.sync += t.eq(t + 1)
                        with m.If(t == 63):
                            m.next = "FINAL"
            with m.State("FINAL"):  # H[k] += ring word, 4 cycles a word; the digest shifts in H[k]
                m.d.sync += step.eq(step + 1)
                with m.Switch(step):
                    with m.Case(0):  # reads H[k] (region HSRC, the default)
                        pass
                    with m.Case(1):
                        m.d.comb += [*read(_R.RING), acc_op.eq(_Acc.LOAD)]
                    with m.Case(2):
                        m.d.comb += acc_op.eq(_Acc.ADD)
                    with m.Case(3):
                        m.d.comb += [we.eq(1), waddr.eq(h_dst)]
                        m.d.comb += dshift.eq(1)
                        m.d.sync += [step.eq(0), t.eq(t + 1)]
                        with m.If(k == 7):
                            m.d.sync += [t.eq(0), first.eq(0)]
                            with m.If(final):
                                m.d.comb += set_done.eq(1)
                                m.d.sync += [first.eq(1), final.eq(0), padding.eq(0),
                                             lenok.eq(0), count.eq(0)]
                                m.next = "COLLECT"
                            with m.Elif(padding):
                                m.next = "PAD"
                            with m.Else():
                                m.next = "COLLECT"
        return m


def resources(device: str = "up5k") -> dict[str, int]:
    """iCE40 figures of the core alone: Yosys synth_ice40 cells (luts, ffs, carry, bram = EBRs) and
    lcs, the logic cells after nextpnr packs LUTs and flip-flops together (--pack-only: the 256-bit
    digest has no pins to place on)."""
    from amaranth.back import verilog

    from fedxnor.contract.devices import get_device
    from fedxnor.hw.estimate import cell_counts, summarize_cells, yosys_command
    from fedxnor.tools import tool

    dev = get_device(device)
    if dev.family != "ice40":
        raise FedxnorError(f"sha256 resources: {device} is not an iCE40 device; use up5k or hx8k")
    with tempfile.TemporaryDirectory(prefix="fedxnor-sha256-") as tmp:
        Path(tmp, "sha256.v").write_text(verilog.convert(Sha256(), name="sha256"))
        synth = (f"read_verilog -sv sha256.v; synth_ice40 {' '.join(dev.yosys_args)} -abc9 -top sha256 "
                 "-json sha256.json; tee -q -o stat.json stat -json")
        subprocess.run([*yosys_command(), "-q", "-p", synth], cwd=tmp, check=True, capture_output=True)
        cells = summarize_cells(cell_counts(json.loads(Path(tmp, "stat.json").read_text())), "ice40")
        part = {"up5k": ["--up5k", "--package", "sg48"], "hx8k": ["--hx8k", "--package", "ct256"]}[device]
        subprocess.run([tool("NEXTPNR_ICE40"), *part, "--json", "sha256.json", "--pack-only",
                        "--pcf-allow-unconstrained", "--report", "report.json"], cwd=tmp, check=True, capture_output=True)
        lcs = json.loads(Path(tmp, "report.json").read_text())["utilization"]["ICESTORM_LC"]["used"]
    return {"luts": cells["luts"], "ffs": cells["ffs"], "carry": cells["carry"], "bram": cells["bram"], "lcs": lcs}


if __name__ == "__main__":
    figures = resources(sys.argv[1] if len(sys.argv) > 1 else "up5k")
    print(" ".join(f"{k}={v}" for k, v in figures.items()), f"cycles_per_block={CYCLES_PER_BLOCK}")
