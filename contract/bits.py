"""Widths and words: the arithmetic every packed image and every register width follows."""

from __future__ import annotations


def bits_for(n: int) -> int:
    """Unsigned bits that index n items (at least 1)."""
    return max(1, (max(1, n) - 1).bit_length())


def signed_width(lo: int, hi: int) -> int:
    """Bits of a two's complement number that holds every value in [lo, hi]."""
    w = 1
    while not (-(1 << (w - 1)) <= lo and hi <= (1 << (w - 1)) - 1):
        w += 1
    return w


def to_signed(value: int, width: int) -> int:
    """The two's complement word `value` of `width` bits as a Python int."""
    return value - (1 << width) if value >> (width - 1) & 1 else value


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)
