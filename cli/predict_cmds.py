"""`emonets predict` and `emonets evaluate`: labels for new videos (with pictures), figures
of a model on a labelled root; inline without a Prefect API, else through their flows."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cli.app import (FORMAT_HELP, RUNNER_HELP, STORE_HELP, app, bundle_arg, check_runner, csv_of, existing_data_root, open_store, release_or_bundle)
from cli.console import console, json_safe, print_json_line, print_table, safe
from cli.errors import RUN_FAILED, choice, cli_run


@app.command()
def predict(
    videos: list[Path] = typer.Argument(..., help="video files, folders of videos, or CSV files with a 'path' column"),
    model: Optional[Path] = typer.Option(None, "--model", help="model bundle (default: the store's fused model)"),
    store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP),
    json_out: bool = typer.Option(False, "--json", help="one JSON object per video instead of the table"),
    out: Optional[Path] = typer.Option(None, "--out", help="also write one row per video to this .csv or .parquet"),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="also write the predictions as CSV (as --out X.csv)"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="draw each video's timeline into this PNG"),
    annotate: Optional[Path] = typer.Option(None, "--annotate",
                                            help="write the video with the face box and running label to this "
                                                 ".mp4 (several videos: FILE-1-CLIP.mp4, FILE-2-…)"),
    landmarks: bool = typer.Option(False, "--landmarks", help="with --annotate: draw the 68 face landmarks too"),
    runner: str = typer.Option("auto", help=RUNNER_HELP),
    dask_address: Optional[str] = typer.Option(None, help="tcp://HOST:PORT of a Dask scheduler (with --runner dask)"),
) -> None:
    """Predict the emotion of each video (fused, and each specialist's view).

    Every video gets a record (a row, or a JSON object with --json), saying why when it has no label.
    Features and results are kept per video in the store, so a re-run labels only new videos.

    Exit status: 0 every video labelled; 1 some could not be (missing, unreadable, nothing usable); 2 usage error.
    """
    import json
    import time

    from flows.runtime.locking import predict_store

    started = time.perf_counter()
    with cli_run(flows=False):
        from flows.runtime.runners import INTERACTIVE_RUNNERS, interactive_runner

        choice(runner, INTERACTIVE_RUNNERS, "runner")
        if runner == "dask" and dask_address:
            check_runner(runner, dask_address)
        home = open_store(store)
        bundle = _model_bundle(model, home)
        for target, suffixes, option in ((out, (".csv", ".parquet"), "--out"), (plot, (".png",), "--plot"),
                                         (annotate, (".mp4",), "--annotate")):
            if target is not None and target.suffix.lower() not in suffixes:
                raise ValueError(f"{option} {target}: give a file name ending in {' or '.join(suffixes)}")
        from emonets.media.paths import display_path, portable_path
        from emonets.media.video_list import expand_videos

        # Results come back keyed by the display form of each path (valid text, as `clips.path`);
        # the work gets the portable form (a name that is not UTF-8 can't be a flow parameter).
        shown = {display_path(p): p for p in expand_videos(videos)}
        if not shown:
            raise ValueError("no videos found in " + ", ".join(str(v) for v in videos))
        absent = {d: "no such file" if not p.exists() else "not a file" for d, p in shown.items() if not p.is_file()}
        present = [portable_path(p) for d, p in shown.items() if d not in absent]
        mode = interactive_runner(runner)
    results: list[dict] = []
    pictures: dict = {}
    if present:
        work = predict_store(home)
        drawing = plot is not None or annotate is not None
        with cli_run(lock=work, flows=mode != "inline"):
            if mode != "inline":
                from flows.predict import predict as predict_flow

                results = predict_flow(present, str(bundle), str(home.root), runner=mode, dask_address=dask_address)
            if mode == "inline" or drawing:  # after a flow run: its features and results, reused
                run = _predict_inline(present, bundle, work, progress=len(present) > 3,
                                      extra_stages=("faces",) if annotate is not None else ())
                results = run.results
            if drawing:
                from emonets.prediction_run import draw_pictures

                pictures = draw_pictures(run, work, plot=plot, annotate=annotate, landmarks=landmarks)
    seconds = time.perf_counter() - started
    by_path = {r["path"]: r for r in results}
    by_path.update({p: {"clip_id": Path(p).stem, "path": p, "label": None, "probabilities": None,
                        "specialists": {}, "missing": [], "error": reason} for p, reason in absent.items()})
    results = [by_path.pop(p) for p in shown if p in by_path] + list(by_path.values())  # as given
    with cli_run(flows=False):
        for target in (out, csv_out):
            if target is not None:
                _write_predictions(results, target)
    failed = sum(1 for r in results if not r["label"])
    if json_out:  # nothing but one object per video on stdout
        for r in results:
            print(json.dumps(json_safe(r), sort_keys=True), flush=True)
    else:
        _show_predictions(results, seconds, failed)
        if pictures.get("plot"):
            console.print(f"timelines: [bold]{safe(pictures['plot'])}[/]", soft_wrap=True)
        for path in (pictures.get("annotated") or {}).values():
            console.print(f"annotated: [bold]{safe(path)}[/]", soft_wrap=True)
        print_json_line({"videos": len(results), "seconds": round(seconds, 2), "failed": failed,
                         "labels": {Path(r["path"]).name: r["label"] for r in results}, **pictures})
    if failed:
        raise typer.Exit(RUN_FAILED)


def _model_bundle(model: Optional[Path], home) -> Path:
    """--model, else the store's fused model, else the best shipped one (emonets/release)."""
    if model is not None:
        return bundle_arg(model, "--model")
    from emonets.freshness import fused_path

    bundle = fused_path(home)
    if (bundle / "bundle.json").is_file():
        return bundle
    from emonets.media.paths import display_text
    from emonets.release import shipped

    released = shipped("fused") or shipped("face_cnn")
    if released is None:
        raise ValueError(f"no fused model in the store {home.root} (looked in {bundle}) and none shipped; "
                         "run `emonets train-all` first, or pass --model BUNDLE")
    typer.echo(f"note: no fused model in the store {display_text(str(home.root))}: using the shipped "
               f"{released.name} model ({released}; see its MODEL_CARD.md)", err=True)  # stdout: results only
    return released


def _predict_inline(videos: list[str], bundle: Path, work, *, progress: bool, extra_stages: tuple[str, ...] = ()):
    """The fast path: the library in this process, extraction in guarded children, no Prefect."""
    from emonets.features.local import extract_clips
    from emonets.prediction_run import predict_videos

    if not progress:
        return predict_videos(videos, str(bundle), work, extra_stages=extra_stages)
    from cli.progress import rich_progress

    with rich_progress("extracting") as update:
        return predict_videos(videos, str(bundle), work, extra_stages=extra_stages,
                              extract=lambda store, clips, stages: extract_clips(store, clips, stages, progress=update))


def _top_two(probabilities: Optional[dict]) -> str:
    if not probabilities:
        return ""
    (a, pa), (b, pb) = sorted(probabilities.items(), key=lambda kv: -kv[1])[:2]
    return f"{a} {pa:.2f}, {b} {pb:.2f}"


def _show_predictions(results: list[dict], seconds: float, failed: int) -> None:
    from rich.table import Table

    table = Table(title="predictions", title_justify="left")
    table.add_column("video", overflow="fold")
    table.add_column("label")
    table.add_column("top two (fused)", overflow="fold")
    table.add_column("specialists", overflow="fold")
    table.add_column("note", overflow="fold")
    for r in results:
        note = r.get("error") or (f"no {', '.join(r['missing'])}" if r["missing"] else "")
        views = ", ".join(f"{n}:{v['label']}" for n, v in r["specialists"].items())
        table.add_row(*[safe(v) for v in (Path(r["path"]).name, r["label"] or "—", _top_two(r["probabilities"]),
                                          views, note)])
    console.print(table)
    console.print(f"{len(results)} videos in {seconds:.1f} s ({seconds / max(1, len(results)):.1f} s per video)"
                  + (f"; {failed} could not be labelled" if failed else ""))


def _write_predictions(results: list[dict], path: Path) -> None:
    """One row per video: path, label, the seven probabilities, each specialist's label, notes."""
    import pandas as pd

    from data_catalog.atomic import atomic_path
    from emonets.labels import EMOTIONS

    rows = []
    for r in results:
        p = r["probabilities"] or {}
        row = {"path": r["path"], "label": r["label"] or "", **{f"p_{e}": p.get(e) for e in EMOTIONS}}
        row.update({f"{n}_label": v["label"] for n, v in r["specialists"].items()})
        row.update(missing=";".join(r["missing"]), error=r.get("error", ""))
        rows.append(row)
    frame = pd.DataFrame(rows)
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)


@app.command()
def evaluate(
    bundle: Path = typer.Argument(..., help="a specialist's or the fused model bundle, or the word "
                                            "'release': the best model shipped with EmoNets"),
    data_root: Path = typer.Argument(..., help="a labelled data root"),
    format: str = typer.Option("auto", "--format", "-f", help=FORMAT_HELP),
    store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP),
    split: Optional[str] = typer.Option(None, help="only clips of this split (default: all labelled clips)"),
    runner: str = typer.Option("auto", help=RUNNER_HELP),
) -> None:
    """Ingest and extract DATA_ROOT as needed, then print accuracy, macro-F1 and the confusion matrix
    (the model's, and each specialist's on the clips it could score)."""
    from emonets.labels import EMOTIONS
    from flows.runtime.locking import evaluate_store

    with cli_run(flows=False):
        from emonets.datasets import FORMATS
        from flows.runtime.runners import INTERACTIVE_RUNNERS, interactive_runner

        choice(format, FORMATS, "format")
        choice(runner, INTERACTIVE_RUNNERS, "runner")
        bundle = release_or_bundle(bundle)
        existing_data_root(data_root)
        home = open_store(store)
        mode = interactive_runner(runner)
    work = evaluate_store(home, data_root)
    with cli_run(lock=work, csv_file=csv_of(data_root), flows=mode != "inline"):
        if mode == "inline":
            from emonets.prediction_run import evaluate_root

            result = evaluate_root(str(bundle), str(Path(data_root).expanduser().resolve()), format, work, split)
        else:
            from flows.predict import evaluate as evaluate_flow

            result = evaluate_flow(str(bundle), str(data_root), format, str(home.root), split, runner=mode)
    console.print(f"{safe(bundle)} on {safe(data_root)} ({result['split']}): accuracy {result['accuracy']:.4f}, "
                  f"macro-F1 {result['macro_f1']:.4f}, n {result['n']}", soft_wrap=True)
    specs = result.get("specialists") or {}
    if len(specs) > 1:
        print_table("each specialist on the clips it could score", ["specialist", "n", "accuracy", "macro-F1"],
                    [[n, m["n"], m["accuracy"], m["macro_f1"]] for n, m in specs.items()])
    if result["confusion"]:
        print_table("confusion (rows true, columns predicted)", ["true", *EMOTIONS],
                    [[e, *row] for e, row in zip(EMOTIONS, result["confusion"])])
    print_json_line(result)
