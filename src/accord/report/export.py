"""Write the report's tables as CSV and its figures as SVG and PNG, beside the HTML.

``tables/<name>.csv`` holds the same display text as the HTML table (suppressed cells read
"<11" or "*"), UTF-8 with a header row; ``tidy/<name>.csv`` holds the same table as numbers
(`accord.report.tidy`: ASCII, one value per cell, withheld values empty and flagged);
``figures/<name>.svg`` and ``figures/<name>.png`` hold
the figure as embedded and as a 1600 x 1000 pixel image. Files of an earlier run that the
report no longer makes are removed, so the folders hold exactly this report's outputs.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from accord.core.io import atomic_path, write_csv
from accord.report.parts import Plot, Section, Table
from accord.report.tidy import tidy_frame


def report_tables(sections: Iterable[Section]) -> list[Table]:
    """Every table of the report in order; raises ValueError for a name used twice."""
    return _unique([t for s in sections for t in s.tables], "table")


def report_figures(sections: Iterable[Section]) -> list[Plot]:
    """Every figure of the report in order; raises ValueError for a name used twice."""
    return _unique([f for s in sections for f in s.figures], "figure")


def write_tables(tables: Iterable[Table], folder: Path) -> list[Path]:
    """Each table as ``<folder>/<name>.csv``; returns the paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for t in tables:
        path = folder / f"{t.name}.csv"
        write_csv(path, t.frame())
        written.append(path)
    _remove_others(folder, written, (".csv",))
    return written


def write_tidy_tables(tables: Iterable[Table], folder: Path, min_cell: int) -> list[Path]:
    """Each table as numbers in ``<folder>/<name>.csv`` (`accord.report.tidy`); returns the
    paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for t in tables:
        path = folder / f"{t.name}.csv"
        write_csv(path, tidy_frame(t, min_cell))
        written.append(path)
    _remove_others(folder, written, (".csv",))
    return written


def write_figures(figures: Iterable[Plot], folder: Path) -> list[Path]:
    """Each figure as ``<folder>/<name>.svg`` and ``.png``, and the data it draws as ``.csv``
    when the figure carries them; returns the paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for f in figures:
        for suffix, data in ((".svg", f.svg), (".png", f.png)):
            path = folder / f"{f.name}{suffix}"
            with atomic_path(path) as tmp:
                tmp.write_bytes(data)
            written.append(path)
        if f.data is not None:
            path = folder / f"{f.name}.csv"
            write_csv(path, f.data)
            written.append(path)
    _remove_others(folder, written, (".svg", ".png", ".csv"))
    return written


def _unique(items: list, what: str) -> list:
    seen: set[str] = set()
    for item in items:
        if item.name in seen:
            raise ValueError(f"report: two {what}s are named {item.name!r}")
        seen.add(item.name)
    return items


def _remove_others(folder: Path, keep: list[Path], suffixes: tuple[str, ...]) -> None:
    kept = {p.name for p in keep}
    for path in folder.iterdir():
        if path.is_file() and path.suffix in suffixes and path.name not in kept:
            path.unlink()
