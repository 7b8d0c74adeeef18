"""`emonets compose`: write the composed audio-video benchmark (FER-2013 faces + RAVDESS speech).

A plain Typer command function; cli/main.py registers it (``app.command()(compose)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cli.console import console, print_json_line, print_problems, print_table


def compose(
    faces: Path = typer.Option(..., "--faces", help="FER-2013 root: <train|val>/<class>/*.jpg"),
    speech: Path = typer.Option(..., "--speech", help="RAVDESS speech root: Actor_NN/03-01-EE-...flac"),
    out: Path = typer.Option(..., "--out", help="output folder (new, empty, or an earlier composed set)"),
    per_class: Optional[int] = typer.Option(None, "--per-class", min=1, help="at most N clips per class per split"),
    seed: int = typer.Option(0, "--seed", help="the same seed writes the same clips"),
    split: str = typer.Option("all", "--split", help="all (splits follow the sources) | train | val | test"),
    max_seconds: Optional[float] = typer.Option(None, "--max-seconds", min=0.1,
                                                help="cut each clip to this many seconds (quick runs)"),
    workers: int = typer.Option(1, "--workers", min=1, help="encoding processes"),
    reuse_speech: int = typer.Option(1, "--reuse-speech", min=1,
                                     help="let each utterance voice up to N clips (with other faces): larger sets "
                                          "for scale measurements, whose clips share audio"),
) -> None:
    """Write composed clips: a real FER-2013 face, animated, with a real RAVDESS utterance of the
    same emotion, as an AFEW-style tree OUT/<Train|Val|Test>/<Emotion>/*.mp4."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from emonets.datasets.compose.dataset import SPLIT_MODES, compose_dataset

    if split not in SPLIT_MODES:
        raise typer.BadParameter(f"choose one of {', '.join(SPLIT_MODES)}", param_hint="--split")
    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task("composing clips", total=None)
        try:
            summary = compose_dataset(faces, speech, out, per_class=per_class, seed=seed, split=split,
                                      max_seconds=max_seconds, workers=workers, reuse_speech=reuse_speech,
                                      progress=lambda done, total: bar.update(task, completed=done, total=total))
        except (FileNotFoundError, FileExistsError, NotADirectoryError, ValueError) as err:
            console.print(f"[bold red]error:[/] {err}")
            raise typer.Exit(2) from None
    splits = [s for s in ("train", "val", "test") if s in summary["counts"]]
    rows = [[c, *[summary["counts"][s].get(c, 0) for s in splits]] for c in summary["classes"]]
    print_table(f"composed clips in {summary['out_dir']}", ["class", *splits], rows)
    for name, why in summary["dropped_classes"].items():
        console.print(f"dropped: {name} ({why})")
    console.print(f"{summary['encoded']} encoded, {summary['reused']} reused, {summary['removed']} stale removed; "
                  f"{summary['seconds']} s ({summary['seconds_per_clip']} s per encoded clip)")
    print_problems([{**p, "stage": "compose"} for p in summary["problems"]])
    print_json_line({k: summary[k] for k in ("out_dir", "clips", "encoded", "reused", "removed", "counts",
                                             "dropped_classes", "seconds", "seconds_per_clip", "media_seconds")}
                    | {"problems": len(summary["problems"])})
