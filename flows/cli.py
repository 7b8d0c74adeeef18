"""The `emonets` command: ingest, extract, train, evaluate, fuse, predict, compose, report."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

# Prefect's per-task INFO lines would drown the tables; set before Prefect is first imported
# (PREFECT_LOGGING_LEVEL=INFO brings them back).
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from flows.compose_cmd import compose
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


@app.command("train-all")
def train_all_cmd(
    roots: Optional[list[Path]] = typer.Argument(None, help="data roots (default: the generated demo dataset)"),
    store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP),
    format: Optional[list[str]] = typer.Option(None, "--format", "-f", help=f"one per root: {FORMAT_HELP}"),
    specialists: str = typer.Option("face_cnn,audio,bag_of_mouths,motion", help="comma-separated"),
    runner: str = typer.Option("local", help="local | threads | dask"),
    dask_address: Optional[str] = typer.Option(None, help="tcp://HOST:PORT of a Dask scheduler"),
    max_epochs: Optional[int] = typer.Option(None, help="cap on every specialist's training epochs"),
    config: Optional[str] = typer.Option(None, help='JSON per specialist, e.g. \'{"face_cnn": {"cnn_bundle": "..."}}\''),
    fusion_draws: int = typer.Option(400_000, help="random-search draws"),
) -> None:
    """Ingest -> extract -> train every specialist -> fuse -> report, through the Prefect flow."""
    import json

    from data_catalog import StoreLockedError
    from emonets.datasets import UnknownFormatError
    from flows.runners import RunnerUnavailableError
    from flows.train_all import train_all

    try:
        summary = train_all(data_roots=[str(r) for r in roots] if roots else None, store_root=store_root(store),
                            formats=list(format) if format else None,
                            specialists=[s.strip() for s in specialists.split(",") if s.strip()],
                            runner=runner, dask_address=dask_address, max_epochs=max_epochs,
                            configs=json.loads(config) if config else None, fusion_draws=fusion_draws)
    except (StoreLockedError, UnknownFormatError, RunnerUnavailableError, FileNotFoundError, ValueError) as err:
        console.print(f"[bold red]error:[/] {err}")
        raise typer.Exit(2) from None
    rows = [[name, info["status"], info.get("scored", ""), summary["test_accuracy"].get(name, "—")]
            for name, info in summary["specialists"].items()]
    from emonets.fusion import FUSERS

    rows += [[m, "fusion", "", summary["test_accuracy"].get(m, "—")] for m in FUSERS]
    print_table("train-all", ["model", "status", "scored", "test accuracy"], rows)
    ex = summary["extraction"]
    console.print(f"extraction: {ex['computed']} computed, {ex['cached']} reused; fusion {summary['fusion']['status']} "
                  f"(best on val: {summary['fusion']['best_method']}); {summary['seconds']} s")
    console.print(f"report: [bold]{summary['report']}/report.md[/]")
    print_json_line(summary)


@app.command()
def predict(
    videos: list[Path] = typer.Argument(..., help="video files"),
    model: Optional[Path] = typer.Option(None, "--model", help="model bundle (default: the store's fused model)"),
    store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP),
    json_out: bool = typer.Option(False, "--json", help="one JSON object per video instead of the table"),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="also write the predictions as CSV"),
) -> None:
    """Predict the emotion of each video (fused, and each specialist's view)."""
    import json
    import time

    from flows.predict import predict as predict_flow

    started = time.perf_counter()
    try:
        results = predict_flow([str(v) for v in videos], str(model) if model else None, store_root(store))
    except (FileNotFoundError, ValueError) as err:
        console.print(f"[bold red]error:[/] {err}")
        raise typer.Exit(2) from None
    seconds = time.perf_counter() - started
    if csv_out:
        _write_predictions_csv(results, csv_out)
    if json_out:
        for r in results:
            print(json.dumps(r, sort_keys=True))
        return
    rows = []
    for r in results:
        note = r.get("error") or (f"no {', '.join(r['missing'])}" if r["missing"] else "")
        views = ", ".join(f"{n}:{v['label']}" for n, v in r["specialists"].items())
        conf = max(r["probabilities"].values()) if r["probabilities"] else ""
        rows.append([Path(r["path"]).name, r["label"] or "—", conf, views, note])
    print_table("predictions", ["video", "label", "p", "specialists", "note"], rows)
    console.print(f"{len(results)} videos in {seconds:.1f} s ({seconds / max(1, len(results)):.1f} s per video)")
    print_json_line({"videos": len(results), "seconds": round(seconds, 2),
                     "labels": {Path(r["path"]).name: r["label"] for r in results}})


def _write_predictions_csv(results: list[dict], path: Path) -> None:
    import csv

    from data_catalog.atomic import atomic_path
    from emonets.labels import EMOTIONS

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", *[f"p_{e}" for e in EMOTIONS], "missing", "error"])
        for r in results:
            p = r["probabilities"] or {}
            w.writerow([r["path"], r["label"] or "", *[p.get(e, "") for e in EMOTIONS],
                        ";".join(r["missing"]), r.get("error", "")])


@app.command()
def evaluate(
    bundle: Path = typer.Argument(..., help="a specialist's or the fused model bundle"),
    data_root: Path = typer.Argument(..., help="a labelled data root"),
    format: str = typer.Option("auto", "--format", "-f", help=FORMAT_HELP),
    store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP),
    split: Optional[str] = typer.Option(None, help="only clips of this split (default: all labelled clips)"),
) -> None:
    """Ingest and extract DATA_ROOT as needed, then print accuracy, macro-F1 and the confusion matrix."""
    from emonets.datasets import UnknownFormatError
    from emonets.labels import EMOTIONS
    from flows.predict import evaluate as evaluate_flow

    try:
        result = evaluate_flow(str(bundle), str(data_root), format, store_root(store), split)
    except (UnknownFormatError, FileNotFoundError, ValueError) as err:
        console.print(f"[bold red]error:[/] {err}")
        raise typer.Exit(2) from None
    console.print(f"{bundle} on {data_root} ({result['split']}): accuracy {result['accuracy']:.4f}, "
                  f"macro-F1 {result['macro_f1']:.4f}, n {result['n']}")
    if result["confusion"]:
        print_table("confusion (rows true, columns predicted)", ["true", *[e[:5] for e in EMOTIONS]],
                    [[e, *row] for e, row in zip(EMOTIONS, result["confusion"])])
    print_json_line(result)


@app.command()
def report(store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP)) -> None:
    """Print the last train-all report; the last line is its JSON (test accuracy of every model)."""
    import json

    from data_catalog import Store

    latest = Store(store_root(store)).path("reports", "latest")
    if not (latest / "report.json").is_file():
        console.print(f"[bold red]error:[/] no report in {latest.parent}; run `emonets train-all` first")
        raise typer.Exit(2)
    console.print((latest / "report.md").read_text())
    data = json.loads((latest / "report.json").read_text())
    print_json_line({"test_accuracy": data["test_accuracy"], "val_accuracy": data["val_accuracy"],
                     "report": str(latest / "report.md")})


app.command()(compose)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
