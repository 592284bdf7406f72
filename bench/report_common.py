"""Table and provenance helpers of the BENCHMARKS.md renderers (bench/report.py, bench/report_conv.py)."""

from __future__ import annotations


def table(headers: list[str], rows: list[list[object]]) -> str:
    def fmt(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}"
        return "—" if v is None else str(v)

    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(out)


def prov(data: dict) -> str:
    p = data.get("provenance", {})
    return f"\n\n_{p.get('date', '')}, commit {p.get('commit', '')}, {p.get('machine', '')}_\n"
