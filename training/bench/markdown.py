"""Markdown for the benchmark reports: durations, percentages and table rows."""

from __future__ import annotations

from pathlib import Path

from privface_core.resources import artifacts_dir


def fmt_s(s: float | None) -> str:
    """A duration as minutes, seconds or milliseconds, whichever reads best; a dash for None."""
    if s is None:
        return "—"
    if s >= 60:
        return f"{s / 60:.1f} min"
    return f"{s:.2f} s" if s >= 0.1 else f"{s * 1e3:.1f} ms"


def pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}%"


def table_row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def table_header(columns: str) -> list[str]:
    """A table's header row and its separator, from its column names joined by " | "."""
    cells = columns.split(" | ")
    return [table_row(*cells), "|" + "---|" * len(cells)]


def rel(path: Path) -> str:
    """A path as the report names it: relative to the folder holding `artifacts/` when inside it."""
    try:
        return str(path.resolve().relative_to(artifacts_dir().parent))
    except ValueError:
        return str(path)
