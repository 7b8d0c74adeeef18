"""The `emonets` command: ingest, extract, train, evaluate, fuse, predict, compose, report.

Each command checks its arguments (names, paths, bundles, JSON) and takes the store's lock before
it imports Prefect, so a mistake or a busy store is reported within a second; failures known to
happen (cli.errors) are one line ``error: …`` with exit status 2 (usage) or 1 (the run failed).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

from cli import data_cmds  # noqa: F401  (registers ingest, extract: the order of --help)
from cli import train_cmds  # noqa: F401  (train, train-all)
from cli import predict_cmds  # noqa: F401  (predict, evaluate)
from cli.app import STORE_HELP, app, store_root
from cli.compose_cmd import compose
from cli.console import console, print_json_line, safe


@app.command()
def report(store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP),
           open_page: bool = typer.Option(False, "--open", help="print the path of the report's HTML page")) -> None:
    """Print the last train-all report; the last line is its JSON (test accuracy of every model)."""
    import json

    from data_catalog import Store
    from cli.report_view import render_report

    latest = Store(store_root(store)).path("reports", "latest")
    if not (latest / "report.json").is_file():
        console.print(f"[bold red]error:[/] no report in {safe(latest.parent)}; run `emonets train-all` first")
        raise typer.Exit(2)
    if open_page:
        console.print(safe(str(latest / "report.html")), soft_wrap=True)
    else:
        render_report(latest, console)
    data = json.loads((latest / "report.json").read_text())
    print_json_line({"test_accuracy": data["test_accuracy"], "val_accuracy": data["val_accuracy"],
                     "below_chance": data.get("below_chance", []), "report": str(latest / "report.md"),
                     "report_html": str(latest / "report.html")})


app.command()(compose)


def main() -> None:  # pragma: no cover - console entry point
    """The `emonets` command. When a command that loaded PyTorch but not Prefect is done (every
    file written and closed, the lock released, children stopped), the process exits at once:
    PyTorch's interpreter teardown alone costs ~0.8 s of every `predict`."""
    try:
        app()
    except SystemExit as done:
        code = done.code
        if isinstance(code, (int, type(None))) and "torch" in sys.modules and "prefect" not in sys.modules:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code or 0)
        raise


if __name__ == "__main__":  # pragma: no cover
    app()
