"""ROM images: weight words and thresholds packed by the (P, L) folding, as $readmemh hex.

Folding of a layer with fan-out M and fan-in N onto P processing elements (rows)
of L lanes each (P divides M; L need not divide N):

* neuron m lives in PE (m % P), at local index (m // P);
* its weight row is cut into W = ceil(N / L) words of L bits; word c holds inputs
  [c*L, c*L + L), input c*L + j in bit j (LSB first);
* PE p's weight ROM holds, at address (m // P) * W + c, word c of neuron m;
  depth (M / P) * W;
* the last word of a row is padded with weight bits 1; inputs are padded with 0,
  so XNOR(0, 1) = 0 and AND(0, 1) = 0: padding never adds to a popcount;
* PE p's threshold ROM holds, at address m // P, the threshold of neuron m in
  two's complement of the layer's threshold width.

One hex word per line, lowercase, exactly ceil(width / 4) digits: the format
Verilog's $readmemh and Amaranth's memory init both read.
"""

from __future__ import annotations

import numpy as np

from fedxnor.errors import FedxnorError


def words_per_row(fan_in: int, simd: int) -> int:
    return -(-fan_in // simd)


def hex_digits(width: int) -> int:
    return max(1, -(-width // 4))


def pack_weight_words(weights: np.ndarray, pe: int, simd: int) -> list[list[int]]:
    """Per-PE lists of L-bit weight words, in ROM address order."""
    m, n = weights.shape
    if pe < 1 or m % pe:
        raise FedxnorError(f"PE count {pe} does not divide fan-out {m}: choose a divisor of {m}")
    if not 1 <= simd <= n:
        raise FedxnorError(f"SIMD width {simd} must be in 1..{n} (the fan-in)")
    w = words_per_row(n, simd)
    padded = np.ones((m, w * simd), np.uint64)
    padded[:, :n] = weights
    chunks = padded.reshape(m, w, simd)
    # Python ints, not uint64: L may exceed 64 bits.
    place = [1 << j for j in range(simd)]
    words = [[int(sum(int(b) * p for b, p in zip(chunk, place) if b)) for chunk in row] for row in chunks]
    return [[word for local in range(p, m, pe) for word in words[local]] for p in range(pe)]


def unpack_weight_words(per_pe: list[list[int]], fan_out: int, fan_in: int, simd: int) -> np.ndarray:
    """Inverse of pack_weight_words; returns (M, N) bits and the padding bits it found."""
    pe = len(per_pe)
    w = words_per_row(fan_in, simd)
    out = np.zeros((fan_out, w * simd), np.uint8)
    for p, words in enumerate(per_pe):
        for local in range(fan_out // pe):
            m = local * pe + p
            for c in range(w):
                word = words[local * w + c]
                for j in range(simd):
                    out[m, c * simd + j] = (word >> j) & 1
    return out


def pack_thresholds(thresholds: np.ndarray, pe: int, width: int) -> list[list[int]]:
    """Per-PE lists of thresholds in two's complement of `width` bits."""
    mask = (1 << width) - 1
    t = [int(v) & mask for v in thresholds]
    return [t[p::pe] for p in range(pe)]


def to_signed(value: int, width: int) -> int:
    return value - (1 << width) if value >> (width - 1) & 1 else value


def format_hex(words: list[int], width: int) -> str:
    d = hex_digits(width)
    return "".join(f"{v:0{d}x}\n" for v in words)


def parse_hex(text: str, width: int, depth: int, name: str) -> list[int]:
    """Parse a ROM image strictly: exactly `depth` words of exactly the right digit count."""
    d = hex_digits(width)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != depth:
        raise FedxnorError(f"{name}: has {len(lines)} words, the manifest says {depth}; re-export the model")
    words = []
    for i, line in enumerate(lines):
        if len(line) != d or any(ch not in "0123456789abcdef" for ch in line):
            raise FedxnorError(
                f"{name}: line {i + 1} is not a {d}-digit lowercase hex word; re-export the model"
            )
        v = int(line, 16)
        if v >> width:
            raise FedxnorError(f"{name}: line {i + 1} has bits above the {width}-bit width; re-export the model")
        words.append(v)
    return words
