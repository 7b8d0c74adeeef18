"""`emonets ingest` and `emonets extract`: data roots into the store, and their features."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from cli.app import FORMAT_HELP, STORE_HELP, app, check_runner, csv_of, ingested_store, open_store
from cli.console import console, print_json_line, print_problems, print_table, safe
from cli.errors import RUN_FAILED, choice, cli_run
from emonets import registry
from emonets.errors import raise_if_disk_full


@app.command()
def ingest(
    root: Path = typer.Argument(..., help="data root folder (or a CSV file)"),
    format: str = typer.Option("auto", "--format", "-f", help=FORMAT_HELP),
    store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP),
    calm: str = typer.Option("drop", help="RAVDESS 'calm': drop | neutral"),
    allow_outside: bool = typer.Option(False, "--allow-outside",
                                       help="follow CSV manifest paths that leave the manifest's folder"),
    runner: str = typer.Option("auto", help="inline (this process, no Prefect) | flow (a recorded Prefect "
                                            "run); auto: inline unless a Prefect API is configured"),
) -> None:
    """Discover the labelled clips under ROOT and write the `clips` table."""
    from emonets.datasets import FORMATS
    from flows.runtime.runners import interactive_runner

    with cli_run(flows=False, csv_file=csv_of(root)):
        choice(format, FORMATS, "format")
        mode = choice(runner, ("auto", "inline", "flow"), "runner")
        if mode == "auto":  # a configured Prefect API records the run
            mode = "inline" if interactive_runner("auto") == "inline" else "flow"
        home = open_store(store)
        with cli_run(lock=home, flows=mode != "inline", csv_file=csv_of(root)):
            if mode == "inline":
                from emonets.ingest_store import ingest_into_store

                summary = ingest_into_store(str(root), str(home.root), format, calm, allow_outside)
            else:
                from flows.ingest import ingest as ingest_flow

                from emonets.media.paths import portable_path

                summary = ingest_flow(portable_path(Path(os.path.abspath(root))), str(home.root), format, calm,
                                      allow_outside)
    _show_ingest(summary)
    summary.pop("problem_rows")
    print_json_line(summary)


def _show_ingest(summary: dict) -> None:
    console.print(f"[bold]{safe(summary['root'])}[/] — format [cyan]{summary['format']}[/], "
                  f"{summary['clips']} clips, {summary['hashed_files']} files hashed (others from cache)")
    labels = sorted(summary["by_label"])
    splits = sorted(summary["by_split"])
    counts = summary.get("by_split_label", {})
    rows = [[lab, *[counts.get(s, {}).get(lab, 0) for s in splits], summary["by_label"][lab]] for lab in labels]
    print_table("clips per class and split", ["class", *splits, "total"], rows)
    for name, n in summary["skipped"].items():
        console.print(f"skipped by policy: {n} '{name}' clips ({summary['policy']})")
    empty = [split for split in ("train", "val", "test") if not summary["by_split"].get(split)]
    if summary["clips"] and empty:
        rule = "; ".join(f"{k}: {v}" for k, v in summary.get("policy", {}).items() if k == "splits")
        console.print(f"[yellow]note:[/] no clips in {' and '.join(empty)}" + (f" ({safe(rule)})" if rule else "")
                      + ": " + _empty_split_effect(empty), soft_wrap=True)
    print_problems(summary["problem_rows"])


def _empty_split_effect(empty: list[str]) -> str:
    """What an empty split means for training, in the words a user needs."""
    effects = []
    if "train" in empty:
        effects.append("nothing to train on")
    if "val" in empty:
        effects.append("no early stopping or tuning on held-out clips, and the fusion would fit on train")
    if "test" in empty:
        effects.append("no test figures")
    return "; ".join(effects)


@app.command()
def extract(
    store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP),
    stages: Optional[str] = typer.Option(None, help="comma-separated stages (default: every registered one)"),
    runner: str = typer.Option("local", help="local (process pool) | threads | dask"),
    dask_address: Optional[str] = typer.Option(None, help="tcp://HOST:PORT of a Dask scheduler (with --runner dask)"),
) -> None:
    """Extract features for every ingested clip (only what changed is recomputed).

    Exit status: 0 every unit done; 1 some units failed (their worker crashed twice: listed, and
    in the store's `problems` table; the next run retries them); 2 usage error.
    """
    with cli_run(flows=False):
        wanted = [choice(s.strip(), registry.stages(), "stage") for s in (stages or ",".join(registry.stages())).split(",")
                  if s.strip()]
        check_runner(runner, dask_address)
        home = ingested_store(store)
    with cli_run(lock=home):
        from flows.extract_features import run_extract_features
        from cli.progress import rich_progress

        with rich_progress("extracting") as progress:
            summary = run_extract_features(str(home.root), stages=wanted, runner=runner,
                                           dask_address=dask_address, progress=progress)
        raise_if_disk_full(summary["errors"])
    rows = [[stage, c["computed"], c["cached"]] for stage, c in sorted(summary["by_stage"].items())]
    print_table("extraction", ["stage", "computed", "cached"], rows)
    console.print(f"clips {summary['clips']}, units {summary['units']}, computed {summary['computed']}, "
                  f"cached {summary['cached']}, failed {summary['failed']}, face found rate "
                  f"{summary['face_found_rate']}, problems {summary['problems']}, {summary['seconds']} s")
    for err in summary["errors"]:
        console.print(f"[red]task failed:[/] {safe(err)}")
    from flows.extract_features import stage_problems

    print_problems(stage_problems(home, wanted))
    print_json_line(summary)
    if summary["failed"]:
        raise typer.Exit(RUN_FAILED)
