"""The M x K binary weight matrix every weighted layer kind folds, packs and multiplies: defined once.

A fully connected layer is one matrix-vector product per image (K = fan-in); a convolution is one per
output pixel (K = k·k·C_in, the window in (ky, kx, c) order). Both kinds inherit `MatrixKind`, which
reads only `fan_in` (K), `fan_out` (M), `input_bits`, `encoding` and `is_output` from the kind.

Accumulator of one row, by the encoding of the input (docs/datapath.md):

* ``bipolar`` (1-bit activations): acc = popcount(XNOR(a, w)) in [0, K]; the ±1 dot product is 2·acc − K.
* ``unsigned`` (B-bit unsigned inputs, first layer only): acc = Σ_b 2^b (2·popcount(x_b AND w) − popcount(x_b))
  = Σ_i w_i x_i, w_i ∈ {−1, +1}, in [−K(2^B − 1), K(2^B − 1)].
* ``signed`` (B-bit two's complement inputs, first layer only, B >= 2): the same planes, but the MSB plane weighs
  −2^(B−1): acc = Σ_b s_b 2^b (2·popcount(x_b AND w) − popcount(x_b)), s_(B−1) = −1, else +1; acc = Σ_i w_i x_i
  in [−K·2^(B−1), K·2^(B−1)].

Folding onto P rows of L lanes (docs/accelerator.md): P divides M, 1 <= L <= K; matrix row m lives in PE row
m % P at local index m // P; its weights are cut into W = ceil(K / L) words, word c holding inputs
[c·L, c·L + L), input c·L + j in bit j; PE row p's ROM holds word c of matrix row m at (m // P)·W + c. The
last word is padded with weight bit 1 and input 0, so padding never adds to a popcount. PE row p's threshold
ROM holds row m's threshold at m // P, in two's complement of the threshold width.
"""

from __future__ import annotations

import math

import numpy as np

from fedxnor.contract.bits import ceil_div, signed_width
from fedxnor.contract.folding import Folding
from fedxnor.errors import FedxnorError

ENCODINGS = ("bipolar", "unsigned", "signed")
MULTIBIT = ("unsigned", "signed")  # B-bit values read by bit plane, MSB first
CHUNK_VALUES = 1 << 22  # float64 values of one product operand at a time (32 MiB): bounds the reference's memory


def check_encoding(input_bits: int, encoding: str) -> None:
    """One-line errors for an input encoding a matrix kind cannot read."""
    if encoding not in ENCODINGS:
        raise FedxnorError(f"unknown input encoding {encoding!r}: use 'bipolar', 'unsigned' or 'signed'")
    if not 1 <= input_bits <= 16:
        raise FedxnorError(f"input_bits must be in 1..16, got {input_bits}")
    if encoding == "bipolar" and input_bits != 1:
        raise FedxnorError("a bipolar layer takes 1-bit inputs")
    if encoding == "signed" and input_bits < 2:
        raise FedxnorError("a signed layer takes 2..16-bit two's complement inputs (a 1-bit input is 'bipolar' or 'unsigned')")


def input_range(input_bits: int, encoding: str) -> tuple[int, int]:
    """Smallest and largest input value of an encoding: bits 0..1, unsigned 0..2^B − 1, signed −2^(B−1)..2^(B−1) − 1."""
    if encoding == "signed":
        return -(1 << (input_bits - 1)), (1 << (input_bits - 1)) - 1
    return 0, (1 << input_bits) - 1


def matrix_accumulate(weights: np.ndarray, x: np.ndarray, encoding: str) -> np.ndarray:
    """Accumulators (rows, M), int64, of input vectors x (rows, K) against weight bits (M, K).

    Float products are exact here (every partial sum is an integer, and the float type is chosen to hold the
    largest) and fast; the result is converted back to integers. Rows are taken in chunks so a large im2col
    never needs gigabytes."""
    x = np.asarray(x)
    k = x.shape[1]
    # every partial sum is an integer of magnitude <= K·max|x|: float32 holds it exactly below 2^24, float64 below 2^53
    top = 1 if encoding == "bipolar" or x.size == 0 else int(np.abs(x).max())
    dtype = np.float32 if k * max(1, top) < 1 << 24 else np.float64
    wt = (2 * np.asarray(weights, dtype) - 1).T  # ±1 weights
    out = np.empty((x.shape[0], wt.shape[1]), np.int64)
    step = max(1, CHUNK_VALUES // max(1, k))
    for s in range(0, x.shape[0], step):
        a = x[s:s + step].astype(dtype)
        if encoding == "bipolar":  # popcount(XNOR) = (K + Σ (±1)(±1)) / 2
            p = ((2 * a - 1) @ wt).astype(np.int64)
            out[s:s + step] = (p + k) // 2
        else:
            out[s:s + step] = np.rint(a @ wt).astype(np.int64)  # Σ_i (±1)_i x_i
    return out


class Sized:
    """in_size / out_size of a kind from its in_shape / out_shape: the NHWC-flattened lengths that chain layers."""

    @property
    def in_size(self) -> int:
        return math.prod(self.in_shape)

    @property
    def out_size(self) -> int:
        return math.prod(self.out_shape)


class MatrixKind(Sized):
    """Folding, packing and accumulator arithmetic of a kind whose weights are one M x K bit matrix.

    The kind provides fan_in (K), fan_out (M), input_bits, encoding and is_output."""

    fan_in: int
    fan_out: int
    input_bits: int
    encoding: str
    is_output: bool
    has_weights = True

    @property
    def planes(self) -> int:
        """Bit planes the array walks per input word: B for unsigned and signed inputs, 1 for bipolar ones."""
        return self.input_bits if self.encoding in MULTIBIT else 1

    @property
    def weight_bits(self) -> int:
        return self.fan_in * self.fan_out

    @property
    def acc_range(self) -> tuple[int, int]:
        """Smallest and largest accumulator value this layer can produce."""
        if self.encoding == "bipolar":
            return 0, self.fan_in
        lo, hi = input_range(self.input_bits, self.encoding)
        m = self.fan_in * max(-lo, hi)  # |Σ ±x_i| <= K·max|x|; both ends reached (all weights ±1 alike)
        return -m, m

    @property
    def acc_width(self) -> int:
        """Two's complement bits that hold every accumulator value and every threshold ([lo, hi + 1])."""
        lo, hi = self.acc_range
        return signed_width(lo, hi + 1)

    @property
    def threshold_width(self) -> int:
        return 0 if self.is_output else self.acc_width

    # ------------------------------------------------------------ folding

    def folding_error(self, fold: Folding, names: tuple[str, str] = ("P=", "L=")) -> str | None:
        """Why (P, L) cannot fold this layer, or None: P must divide M, 1 <= L <= K. `names` prefix the values
        in the message (a CLI says "--pe 3", a config "'export.pe' 3")."""
        if fold.pe < 1 or self.fan_out % fold.pe:
            return f"{names[0]}{fold.pe} does not divide fan-out {self.fan_out}; choose a divisor of {self.fan_out}"
        if not 1 <= fold.simd <= self.fan_in:
            return f"{names[1]}{fold.simd} must be in 1..{self.fan_in} (the fan-in)"
        return None

    def check_folding(self, fold: Folding, where: str = "", names: tuple[str, str] = ("P=", "L=")) -> None:
        err = self.folding_error(fold, names)
        if err:
            raise FedxnorError(f"{where}: {err}" if where else err)

    def candidate_foldings(self) -> list[Folding]:
        """Every legal (P, L). Every L, not only the narrowest per words-per-row count: a wider ROM can cross
        Yosys' logic/block-RAM line and free a block RAM, so narrower is not always cheaper."""
        pes = [d for d in range(1, self.fan_out + 1) if self.fan_out % d == 0]
        return [Folding(p, s) for p in pes for s in range(1, self.fan_in + 1)]

    def words_per_row(self, fold: Folding) -> int:
        return ceil_div(self.fan_in, fold.simd)

    def neurons_per_pe(self, fold: Folding) -> int:
        return self.fan_out // fold.pe

    def weight_depth(self, fold: Folding) -> int:
        """Words per row's weight ROM: (M / P) · ceil(K / L)."""
        return self.neurons_per_pe(fold) * self.words_per_row(fold)

    def threshold_depth(self, fold: Folding) -> int:
        return 0 if self.is_output else self.neurons_per_pe(fold)

    # ------------------------------------------------------------ packing

    def pack_weights(self, weights: np.ndarray, fold: Folding) -> list[list[int]]:
        """Per-row lists of L-bit weight words in ROM address order (Python ints: L may exceed 64)."""
        self.check_folding(fold)
        m, n, lanes = self.fan_out, self.fan_in, fold.simd
        w = self.words_per_row(fold)
        padded = np.ones((m, w * lanes), np.uint8)
        padded[:, :n] = weights
        packed = np.packbits(padded.reshape(m, w, lanes), axis=2, bitorder="little")
        words = [[int.from_bytes(chunk.tobytes(), "little") for chunk in row] for row in packed]
        return [[word for local in range(p, m, fold.pe) for word in words[local]] for p in range(fold.pe)]

    def unpack_weights(self, per_pe: list[list[int]], fold: Folding) -> np.ndarray:
        """Inverse of pack_weights: (M, W·L) bits, the padding bits included."""
        lanes, w = fold.simd, self.words_per_row(fold)
        out = np.zeros((self.fan_out, w * lanes), np.uint8)
        nbytes = ceil_div(lanes, 8)
        for p, words in enumerate(per_pe):
            for local in range(self.fan_out // len(per_pe)):
                row = np.frombuffer(b"".join(int(x).to_bytes(nbytes, "little") for x in words[local * w:(local + 1) * w]),
                                    np.uint8).reshape(w, nbytes)
                out[local * len(per_pe) + p] = np.unpackbits(row, axis=1, bitorder="little")[:, :lanes].reshape(-1)
        return out

    def pack_thresholds(self, thresholds: np.ndarray, fold: Folding) -> list[list[int]]:
        """Per-row lists of thresholds in two's complement of threshold_width bits."""
        mask = (1 << self.threshold_width) - 1
        t = [int(v) for v in thresholds]
        return [[v & mask for v in t[p::fold.pe]] for p in range(fold.pe)]

    # ------------------------------------------------------------ the hardware's walk of one vector

    def literal_matvec(self, per_pe: list[list[int]], fold: Folding, x: np.ndarray) -> np.ndarray:
        """Accumulators (M,) of ONE input vector (K,) as the hardware computes them: each row's ROM words, L input
        bits per word, XNOR-popcount (bipolar) or AND-popcount per bit plane, shifted (unsigned; signed: the MSB
        plane's term negated, the bits being the B-bit two's complement of x). Slow; it pins down the contract, and
        tests check the fast path against it."""
        lanes, w = fold.simd, self.words_per_row(fold)
        x = [int(v) for v in np.asarray(x).reshape(-1)] + [0] * (w * lanes - self.fan_in)  # inputs padded with 0
        mask = (1 << lanes) - 1
        acc = np.zeros(self.fan_out, np.int64)
        for p in range(fold.pe):
            for local in range(self.neurons_per_pe(fold)):
                total = 0
                for c in range(w):
                    word = per_pe[p][local * w + c]
                    chunk = x[c * lanes:(c + 1) * lanes]
                    if self.encoding == "bipolar":
                        a = sum(b << j for j, b in enumerate(chunk))
                        total += (~(a ^ word) & mask).bit_count()
                    else:
                        for b in range(self.input_bits):
                            plane = sum(((v >> b) & 1) << j for j, v in enumerate(chunk))  # Python's >> is two's complement
                            d = (2 * (plane & word).bit_count() - plane.bit_count()) << b
                            total += -d if self.encoding == "signed" and b == self.input_bits - 1 else d
                acc[local * fold.pe + p] = total
        return acc
