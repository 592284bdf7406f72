"""ROM image files: one word per line as $readmemh hex (what Verilog's $readmemh and Amaranth's memory init
both read): lowercase, exactly ceil(width / 4) digits.

What the words hold (packing by the folding, padding, two's complement thresholds) is the layer kind's
business: fedxnor.contract.dense.Dense.pack_weights / pack_thresholds (docs/datapath.md).
"""

from __future__ import annotations

from fedxnor.errors import FedxnorError


def hex_digits(width: int) -> int:
    return max(1, -(-width // 4))


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
