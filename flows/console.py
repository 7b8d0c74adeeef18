"""Console output shared by the CLI commands: Rich tables, and one JSON object as the last line."""

from __future__ import annotations

import json
import sys
from typing import Any, Iterable

from rich.console import Console
from rich.table import Table

console = Console(stderr=False, highlight=False)


def print_table(title: str, columns: list[str], rows: Iterable[Iterable[Any]]) -> None:
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, justify="right" if col not in (columns[0],) else "left")
    for row in rows:
        table.add_row(*[_fmt(v) for v in row])
    console.print(table)


def print_problems(problems: list[dict], *, limit: int = 30) -> None:
    if not problems:
        return
    console.print(f"[bold yellow]{len(problems)} problem(s):[/]")
    for p in problems[:limit]:
        console.print(f"  [yellow]{p.get('stage', '')}[/] {p['path']}: {p['reason']}", soft_wrap=True)
    if len(problems) > limit:
        console.print(f"  … and {len(problems) - limit} more (see the store's `problems` table)")


def print_json_line(obj: dict) -> None:
    """The machine-readable result: one JSON object, alone on the last line of stdout."""
    sys.stdout.flush()
    console.file.flush()
    print(json.dumps(obj, default=str, sort_keys=True), flush=True)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)
