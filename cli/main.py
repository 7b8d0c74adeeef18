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

from emonets import registry

# Prefect's per-task INFO lines would drown the tables; set before Prefect is first imported
# (PREFECT_LOGGING_LEVEL=INFO brings them back).
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from cli.compose_cmd import compose
from cli.console import console, json_safe, print_json_line, print_problems, print_table, safe
from cli.errors import RUN_FAILED, choice, cli_run
from emonets.errors import raise_if_disk_full

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="EmoNets: multimodal emotion recognition in video. Exit status: 0 done; 1 the run "
                       "failed (disk full, I/O error; predict: a video could not be labelled); 2 a usage "
                       "error (bad name, option or path, not a bundle, refused model file, store in use, "
                       "missing prerequisite). Errors are one line, `error: ...`.")

FORMAT_HELP = "auto | afew | ravdess | cremad | fer2013 | csv | videos"


def _plain_help_types() -> None:
    """Typer prints Python types in --help (``<list[Path]>``, ``<str>``, ``<bool>`` on flags);
    show the plain words a user reads instead (PATH..., TEXT, N; nothing on a flag)."""
    from typer import core

    base = next((c for c in core.TyperArgument.__mro__ if "display_type" in vars(c)), None)
    if base is None:  # another Typer: leave its help as it is
        return
    original = base.display_type
    words = {"list[Path]": "PATH...", "list[str]": "TEXT...", "path": "PATH", "file": "FILE", "directory": "DIR",
             "str": "TEXT", "int": "N", "float": "NUMBER", "bool": ""}

    def display_type(self, ctx):
        label = original(self, ctx)
        return words.get(label.strip("<>"), label.strip("<>").upper())

    base.display_type = display_type
    if hasattr(core.TyperArgument, "_usage_display_name"):  # usage line: VIDEO... not {videos}...
        def usage_name(self) -> str:
            name = self.display_name_raw.upper()
            name = name if self.required else f"[{name}]"
            return name + ("..." if self.nargs != 1 else "")

        core.TyperArgument._usage_display_name = usage_name


_plain_help_types()


def _print_version(value: bool) -> None:
    if value:
        from emonets import __version__

        print(f"emonets {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """EmoNets: multimodal emotion recognition in video."""


STORE_HELP = "store root (default: $EMONETS_STORE or ./emonets-store)"


def store_root(store: Optional[Path]) -> str:
    from data_catalog import default_store_root

    return str(Path(store).expanduser().resolve() if store else default_store_root())


# -- checks made before any flow (and Prefect) starts: a mistake is reported in a second ---------
# They raise ValueError / FileNotFoundError inside `cli_run(flows=False)`, which prints one line.

def _store(store: Optional[Path]):
    from data_catalog import Store

    root = Path(store_root(store))
    if root.exists() and not root.is_dir():
        raise ValueError(f"--store {root} is a file, not a store folder")
    return Store(root)


def _ingested_store(store: Optional[Path]):
    """The store, which must hold ingested clips (the commands that read them say what to run first)."""
    home = _store(store)
    if not home.partitions("clips"):
        raise ValueError(f"nothing ingested in the store {home.root}; "
                         f"run `emonets ingest DATA_ROOT --store {home.root}` first")
    return home


def _json_object(text: Optional[str], option: str) -> dict:
    import json

    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{option} is not valid JSON ({err.msg} at character {err.pos}): {text}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{option} must be a JSON object, e.g. '{{\"max_epochs\": 5}}', not {text}")
    return value


def _bundle_arg(path: Path, what: str) -> Path:
    from emonets.bundle import is_bundle

    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist")
    if not is_bundle(path):
        raise ValueError(f"{what} {path} is not a model bundle (a folder with bundle.json)")
    return path


def _release_or_bundle(path: Path) -> Path:
    """BUNDLE as given, or for the word ``release`` (no such folder here) the best shipped model:
    the fused one when the release has it, else the face ConvNet."""
    if str(path) == "release" and not path.exists():
        from emonets.release import shipped_model, shipped

        return shipped_model("fused" if shipped("fused") else "face_cnn")
    return _bundle_arg(path, "BUNDLE")


def _data_root(root: Path) -> Path:
    if not Path(root).expanduser().exists():
        raise FileNotFoundError(f"data root {root} does not exist")
    return root


def _csv_of(root: Path) -> Optional[Path]:
    """The CSV a data root is read from, if it is one (named when it cannot be read)."""
    root = Path(root).expanduser()
    if root.is_file():
        return root
    return next((root / n for n in ("manifest.csv", "fer2013.csv") if (root / n).is_file()), None)


def _check_runner(runner: str, dask_address: Optional[str]) -> None:
    from flows.runtime.runners import RUNNERS, check_dask_address

    choice(runner, RUNNERS, "runner")
    if runner == "dask" and dask_address:
        check_dask_address(dask_address)


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

    with cli_run(flows=False, csv_file=_csv_of(root)):
        choice(format, FORMATS, "format")
        mode = choice(runner, ("auto", "inline", "flow"), "runner")
        if mode == "auto":  # a configured Prefect API records the run
            mode = "inline" if interactive_runner("auto") == "inline" else "flow"
        home = _store(store)
        with cli_run(lock=home, flows=mode != "inline", csv_file=_csv_of(root)):
            if mode == "inline":
                from emonets.ingest_store import ingest_into_store

                summary = ingest_into_store(str(root), str(home.root), format, calm, allow_outside)
            else:
                from flows.ingest import ingest as ingest_flow

                summary = ingest_flow(str(root), str(home.root), format, calm, allow_outside)
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
    stages: str = typer.Option(",".join(registry.stages()), help="comma-separated stages"),
    runner: str = typer.Option("local", help="local (process pool) | threads | dask"),
    dask_address: Optional[str] = typer.Option(None, help="tcp://HOST:PORT of a Dask scheduler (with --runner dask)"),
) -> None:
    """Extract features for every ingested clip (only what changed is recomputed).

    Exit status: 0 every unit done; 1 some units failed (their worker crashed twice: listed, and
    in the store's `problems` table; the next run retries them); 2 usage error.
    """
    with cli_run(flows=False):
        wanted = [choice(s.strip(), registry.stages(), "stage") for s in stages.split(",") if s.strip()]
        _check_runner(runner, dask_address)
        home = _ingested_store(store)
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


@app.command()
def train(
    specialist: str = typer.Argument(..., help="face_cnn | audio | bag_of_mouths | motion"),
    store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP),
    max_epochs: Optional[int] = typer.Option(None, help="cap on training epochs"),
    out: Optional[Path] = typer.Option(None, "--out", help="also copy the model bundle here: a new path, an empty "
                                       "folder, or an existing bundle (replaced); anything else is refused"),
    config: Optional[str] = typer.Option(None, help='JSON of config overrides, e.g. \'{"cnn_bundle": "..."}\''),
    runner: str = typer.Option("local", help="task runner of the feature extraction: local | threads | dask"),
) -> None:
    """Extract the features SPECIALIST needs (only what changed), train it; print its metrics."""
    with cli_run(flows=False):
        from emonets.bundle import check_replaceable
        from emonets.train import check_specialist

        name = check_specialist(specialist)
        overrides = _json_object(config, "--config")
        if overrides.get("cnn_bundle"):
            _bundle_arg(Path(overrides["cnn_bundle"]), "cnn_bundle")
        _check_runner(runner, None)
        if out is not None:
            check_replaceable(out)
        home = _ingested_store(store)
    with cli_run(lock=home):
        from emonets.bundle import copy_bundle
        from cli.progress import training_progress
        from flows.train_specialist import train_specialist

        with training_progress():
            summary = train_specialist(name, str(home.root), overrides or None, max_epochs, runner=runner)
        if out is not None:
            summary["bundle"] = str(copy_bundle(summary["bundle"], out))
    rows = [[split, m["n"], m["accuracy"], m["macro_f1"]] for split, m in sorted(summary.get("metrics", {}).items())]
    print_table(f"{name} ({summary['status']})", ["split", "n", "accuracy", "macro-F1"], rows)
    ex = summary["extraction"]
    console.print(f"extraction: {ex['computed']} computed, {ex['cached']} reused, {ex['failed']} failed")
    console.print(f"bundle: {safe(summary['bundle'])}; scored {summary.get('scored')} clips, "
                  f"could not score {summary.get('unscored', 0)}", soft_wrap=True)
    for note in summary.get("notes", []):
        console.print(f"[yellow]note:[/] {safe(note)}")
    _flag_below_chance(_below_chance_of(name, summary.get("metrics", {})))
    print_json_line(summary)


@app.command("train-all")
def train_all_cmd(
    roots: Optional[list[Path]] = typer.Argument(None, help="data roots (default: the generated demo dataset)"),
    store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP),
    format: Optional[list[str]] = typer.Option(None, "--format", "-f", help=f"one per root: {FORMAT_HELP}"),
    specialists: str = typer.Option(",".join(registry.specialists()), help="comma-separated"),
    runner: str = typer.Option("local", help="local | threads | dask"),
    dask_address: Optional[str] = typer.Option(None, help="tcp://HOST:PORT of a Dask scheduler"),
    max_epochs: Optional[int] = typer.Option(None, help="cap on every specialist's training epochs"),
    config: Optional[str] = typer.Option(None, help='JSON per specialist, e.g. \'{"face_cnn": {"cnn_bundle": "..."}}\''),
    fusion_draws: int = typer.Option(400_000, help="random-search draws"),
) -> None:
    """Ingest -> extract -> train every specialist -> fuse -> report, through the Prefect flow."""
    with cli_run(flows=False):
        from emonets.datasets import FORMATS
        from emonets.train import check_specialist

        names = [check_specialist(s.strip()) for s in specialists.split(",") if s.strip()]
        formats = [choice(f, FORMATS, "format") for f in format or []]
        for root in roots or []:
            _data_root(root)
        if formats and len(formats) != len(roots or []):
            raise ValueError(f"give one --format per data root ({len(formats)} formats, {len(roots or [])} roots)")
        configs = _json_object(config, "--config")
        for key, value in configs.items():
            if not isinstance(value, dict):
                raise ValueError(f"--config: the value of {key!r} must be a JSON object of settings")
        _check_runner(runner, dask_address)
        home = _store(store)
    with cli_run(lock=home, csv_file=_csv_of(roots[0]) if roots and len(roots) == 1 else None):
        from cli.progress import training_progress
        from flows.train_all import train_all

        with training_progress():
            summary = train_all(data_roots=[str(r) for r in roots] if roots else None, store_root=str(home.root),
                                formats=formats or None, specialists=names, runner=runner,
                                dask_address=dask_address, max_epochs=max_epochs, configs=configs or None,
                                fusion_draws=fusion_draws)
    rows = [[name, info["status"], info.get("scored", ""), summary["test_accuracy"].get(name, "—")]
            for name, info in summary["specialists"].items()]
    from emonets.fusion.fusers import FUSERS

    rows += [[m, "fusion", "", summary["test_accuracy"].get(m, "—")] for m in FUSERS]
    print_table("train-all", ["model", "status", "scored", "test accuracy"], rows)
    for name, info in summary["specialists"].items():
        for note in info.get("notes", []):
            console.print(f"[yellow]note:[/] {safe(name)}: {safe(note)}")
    ex = summary["extraction"]
    failed = f", {ex['failed']} failed" if ex.get("failed") else ""
    console.print(f"extraction: {ex['computed']} computed, {ex['cached']} reused{failed}; fusion "
                  f"{summary['fusion']['status']} (best on val: {summary['fusion']['best_method']}); "
                  f"{summary['seconds']} s")
    for err in ex.get("errors", []):
        console.print(f"[red]task failed:[/] {safe(err)}")
    console.print(f"report: [bold]{safe(summary['report'])}/report.md[/] (page: report.html)", soft_wrap=True)
    _flag_below_chance(summary.get("below_chance", []))
    print_json_line(summary)


def _below_chance_of(name: str, metrics: dict) -> list[dict]:
    """``train``'s splits where the model is no better than the commonest class (report.CHANCE_RULE)."""
    flagged = []
    for split, m in sorted(metrics.items()):
        counts = [sum(row) for row in m.get("confusion") or []]
        chance = max(counts) / m["n"] if counts and m.get("n") else 0.0
        if m.get("n") and m["accuracy"] <= chance + 1e-9:
            flagged.append({"model": name, "split": split, "accuracy": m["accuracy"], "chance": chance, "n": m["n"]})
    return flagged


def _flag_below_chance(flagged: list[dict]) -> None:
    """A model no better than always answering the commonest class is said so, in red."""
    for b in flagged:
        console.print(f"[bold red]at or below chance:[/] {safe(b['model'])} on {b['split']} "
                      f"({b['accuracy']:.3f} ≤ chance {b['chance']:.3f}, n={b['n']})")


RUNNER_HELP = ("inline (this process, no Prefect) | local (process pool) | threads | dask; "
               "auto: inline unless a Prefect API is configured (PREFECT_API_URL), then a recorded flow run")


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
            _check_runner(runner, dask_address)
        home = _store(store)
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
        return _bundle_arg(model, "--model")
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
        bundle = _release_or_bundle(bundle)
        _data_root(data_root)
        home = _store(store)
        mode = interactive_runner(runner)
    work = evaluate_store(home, data_root)
    with cli_run(lock=work, csv_file=_csv_of(data_root), flows=mode != "inline"):
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
