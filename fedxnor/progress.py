"""Progress bars for long work: rich on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

T = TypeVar("T")


def track(items: Iterable[T], description: str, total: int | None = None, enabled: bool = True) -> Iterator[T]:
    """Iterate with a progress bar on stderr (quiet when disabled)."""
    if not enabled:
        yield from items
        return
    if not sys.stderr.isatty():
        n = total if total is not None else (len(items) if hasattr(items, "__len__") else None)  # type: ignore[arg-type]
        last = 0.0
        for i, item in enumerate(items):
            now = time.monotonic()
            if now - last > 10 or i == 0:
                print(f"{description}: {i}/{n if n is not None else '?'}", file=sys.stderr, flush=True)
                last = now
            yield item
        print(f"{description}: done", file=sys.stderr, flush=True)
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), transient=True, console=None) as progress:
        yield from progress.track(items, total=total, description=description)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def print_summary(summary: dict, as_json: bool, text: str, *, indent: int | None = None) -> None:
    """What a command prints on stdout when it is done: its summary as JSON (--json), else one human line."""
    import json

    print(json.dumps(summary, indent=indent) if as_json else text)
