"""Console output shared by the CLI commands: Rich tables, and one JSON object as the last line.

Every value printed here goes through :func:`safe`: file names and other data-derived text are
shown escaped (emonets.media.paths.display_text: a non-UTF-8 byte as ``\\xff``, a newline as
``\\n``), so they can neither crash a UTF-8 stdout nor break a table's lines, and Rich markup
in them (a file called ``[red]x.mp4``) is printed as it is, not interpreted.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Iterable

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from emonets.media.paths import display_text

console = Console(stderr=False, highlight=False)


def print_table(title: str, columns: list[str], rows: Iterable[Iterable[Any]]) -> None:
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, justify="right" if col not in (columns[0],) else "left")
    for row in rows:
        table.add_row(*[safe(_fmt(v)) for v in row])
    console.print(table)


def print_problems(problems: list[dict], *, limit: int = 30) -> None:
    if not problems:
        return
    console.print(f"[bold yellow]{len(problems)} problem(s):[/]")
    for p in problems[:limit]:
        console.print(f"  [yellow]{safe(p.get('stage', ''))}[/] {safe(p['path'])}: {safe(p['reason'])}",
                      soft_wrap=True)
    if len(problems) > limit:
        console.print(f"  … and {len(problems) - limit} more (see the store's `problems` table)")


def print_json_line(obj: dict) -> None:
    """The machine-readable result: one JSON object, alone on the last line of stdout."""
    sys.stdout.flush()
    console.file.flush()
    print(json.dumps(json_safe(obj), default=str, sort_keys=True), flush=True)


def safe(text: Any) -> str:
    """Data-derived text for a Rich markup string: escaped bytes and controls, markup escaped."""
    return escape(display_text(str(text)))


def json_safe(obj: Any) -> Any:
    """``obj`` with every str made valid Unicode (a surrogate-escaped file name as ``\\xff``),
    so the JSON line holds no lone surrogates that strict parsers reject."""
    if isinstance(obj, str):
        return display_text(obj) if any(0xD800 <= ord(c) <= 0xDFFF for c in obj) else obj
    if isinstance(obj, dict):
        return {json_safe(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)
