"""The `emonets` command: ingest, extract, train, evaluate, fuse, predict, compose, report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from flows.console import console, print_json_line, print_problems, print_table

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="EmoNets: multimodal emotion recognition in video.")

FORMAT_HELP = "auto | afew | ravdess | cremad | fer2013 | csv | videos"


@app.callback()
def _root() -> None:
    """EmoNets: multimodal emotion recognition in video."""


STORE_HELP = "store root (default: $EMONETS_STORE or ./emonets-store)"


def store_root(store: Optional[Path]) -> str:
    from data_catalog import default_store_root

    return str(Path(store).expanduser().resolve() if store else default_store_root())


@app.command()
def ingest(
    root: Path = typer.Argument(..., help="data root folder (or a CSV file)"),
    format: str = typer.Option("auto", "--format", "-f", help=FORMAT_HELP),
    store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP),
    calm: str = typer.Option("drop", help="RAVDESS 'calm': drop | neutral"),
) -> None:
    """Discover the labelled clips under ROOT and write the `clips` table."""
    from data_catalog import Store, StoreLockedError
    from emonets.datasets import FORMATS, UnknownFormatError
    from tasks.ingest import ingest_root

    if format not in FORMATS:
        raise typer.BadParameter(f"unknown format {format!r}; choose {FORMAT_HELP}", param_hint="--format")
    try:
        with Store(store_root(store)).lock():
            summary = ingest_root.fn(str(root), store_root(store), format, calm)
    except (UnknownFormatError, FileNotFoundError, StoreLockedError, ValueError) as err:
        console.print(f"[bold red]error:[/] {err}")
        raise typer.Exit(2) from None
    _show_ingest(summary)
    summary.pop("problem_rows")
    print_json_line(summary)


def _show_ingest(summary: dict) -> None:
    console.print(f"[bold]{summary['root']}[/] — format [cyan]{summary['format']}[/], "
                  f"{summary['clips']} clips, {summary['hashed_files']} files hashed (others from cache)")
    labels = sorted(summary["by_label"])
    splits = sorted(summary["by_split"])
    counts = summary.get("by_split_label", {})
    rows = [[lab, *[counts.get(s, {}).get(lab, 0) for s in splits], summary["by_label"][lab]] for lab in labels]
    print_table("clips per class and split", ["class", *splits, "total"], rows)
    for name, n in summary["skipped"].items():
        console.print(f"skipped by policy: {n} '{name}' clips ({summary['policy']})")
    print_problems(summary["problem_rows"])


@app.command()
def extract(
    store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP),
    stages: str = typer.Option("faces,mouths,mfcc,motion", help="comma-separated stages"),
    runner: str = typer.Option("local", help="local (process pool) | threads | dask"),
    dask_address: Optional[str] = typer.Option(None, help="tcp://HOST:PORT of a Dask scheduler (with --runner dask)"),
) -> None:
    """Extract features for every ingested clip (only what changed is recomputed)."""
    from data_catalog import StoreLockedError
    from flows.extract_features import run_extract_features
    from flows.progress import rich_progress
    from flows.runners import RunnerUnavailableError

    quiet_prefect()
    wanted = [s.strip() for s in stages.split(",") if s.strip()]
    try:
        with rich_progress("extracting") as progress:
            summary = run_extract_features(store_root(store), stages=wanted, runner=runner,
                                           dask_address=dask_address, progress=progress)
    except (StoreLockedError, RunnerUnavailableError, ValueError) as err:
        console.print(f"[bold red]error:[/] {err}")
        raise typer.Exit(2) from None
    rows = [[stage, c["computed"], c["cached"]] for stage, c in sorted(summary["by_stage"].items())]
    print_table("extraction", ["stage", "computed", "cached"], rows)
    console.print(f"clips {summary['clips']}, units {summary['units']}, computed {summary['computed']}, "
                  f"cached {summary['cached']}, failed {summary['failed']}, face found rate "
                  f"{summary['face_found_rate']}, problems {summary['problems']}, {summary['seconds']} s")
    for err in summary["errors"]:
        console.print(f"[red]task failed:[/] {err}")
    print_json_line(summary)


@app.command()
def train(
    specialist: str = typer.Argument(..., help="face_cnn | audio | bag_of_mouths | motion"),
    store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP),
    max_epochs: Optional[int] = typer.Option(None, help="cap on training epochs"),
    out: Optional[Path] = typer.Option(None, "--out", help="also copy the model bundle here"),
    config: Optional[str] = typer.Option(None, help='JSON of config overrides, e.g. \'{"cnn_bundle": "..."}\''),
) -> None:
    """Train one specialist on the ingested and extracted tables; print its metrics."""
    import json
    import shutil

    from data_catalog import StoreLockedError
    from flows.train_specialist import train_specialist

    quiet_prefect()
    try:
        summary = train_specialist(specialist, store_root(store), json.loads(config) if config else None, max_epochs)
    except (StoreLockedError, ValueError) as err:
        console.print(f"[bold red]error:[/] {err}")
        raise typer.Exit(2) from None
    if out is not None:
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(summary["bundle"], out)
        summary["bundle"] = str(out)
    rows = [[split, m["n"], m["accuracy"], m["macro_f1"]] for split, m in sorted(summary.get("metrics", {}).items())]
    print_table(f"{specialist} ({summary['status']})", ["split", "n", "accuracy", "macro-F1"], rows)
    console.print(f"bundle: {summary['bundle']}; scored {summary.get('scored')} clips, "
                  f"could not score {summary.get('unscored', 0)}")
    print_json_line(summary)


def quiet_prefect() -> None:
    """Keep Prefect's per-task log lines off the console unless the user asked for them."""
    import os

    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
