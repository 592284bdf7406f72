"""A layer's folding: P processing rows by L input lanes (docs/accelerator.md).

Which (P, L) a layer accepts is its kind's business (`kind.folding_error(fold)`);
this module only holds the pair and reads it from text such as "8x32".
"""

from __future__ import annotations

from dataclasses import dataclass

from fedxnor.errors import FedxnorError


@dataclass(frozen=True)
class Folding:
    """(P, L): PE rows and SIMD lanes of one layer."""

    pe: int
    simd: int

    def __str__(self) -> str:
        return f"{self.pe}x{self.simd}"

    @classmethod
    def parse(cls, text: str) -> Folding:
        """'PxL' (e.g. '8x32') -> Folding."""
        p, sep, l_ = str(text).partition("x")
        if not sep or not p.isdigit() or not l_.isdigit():
            raise FedxnorError(f"folding {text!r}: write it as PxL, e.g. 8x32")
        return cls(int(p), int(l_))
