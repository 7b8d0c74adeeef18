"""`emonets train` and `emonets train-all`: one specialist, or the whole pipeline, and the
flags for models at or below chance."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cli.app import (FORMAT_HELP, STORE_HELP, app, bundle_arg, check_runner, csv_of, existing_data_root, ingested_store, json_option, open_store)
from cli.console import console, print_json_line, print_table, safe
from cli.errors import choice, cli_run
from emonets import registry


@app.command()
def train(
    specialist: str = typer.Argument(..., help="a registered specialist: face_cnn, audio, bag_of_mouths, motion, "
                                             "or a plugin's ($EMONETS_PLUGINS)"),
    store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP),
    max_epochs: Optional[int] = typer.Option(None, help="cap on training epochs"),
    out: Optional[Path] = typer.Option(None, "--out", help="also copy the model bundle here: a new path, an empty "
                                       "folder, or an existing bundle (replaced); anything else is refused"),
    config: Optional[str] = typer.Option(None, help='JSON of config overrides, e.g. \'{"cnn_bundle": "..."}\''),
    runner: str = typer.Option("local", help="task runner of the feature extraction: local | threads | dask"),
    full: bool = typer.Option(False, "--full", help="train from scratch, never continuing a previous model "
                              "(also replaces a warm-started one whose data did not change)"),
    withdraw: Optional[list[str]] = typer.Option(None, "--withdraw", help="a clip id withdrawn from the data "
                                                 "(repeatable): its removal means training from scratch"),
    recipe: Optional[str] = typer.Option(None, "--recipe", help="face_cnn: train its ConvNet with this named "
                                         "recipe (fer-ensemble-v1: lineages side by side, their final nets "
                                         "averaged); a stopped run continues from its last checkpoint, and "
                                         "finished steps are kept (also with --full)"),
) -> None:
    """Extract the features SPECIALIST needs (only what changed), train it; print its metrics."""
    with cli_run(flows=False):
        from emonets.bundle import check_replaceable
        from emonets.train import check_specialist
        name = check_specialist(specialist)
        overrides = json_option(config, "--config")
        if recipe is not None:
            from emonets.recipe_training import check_recipe

            check_recipe(name, recipe, overrides, max_epochs)
        ready = registry.specialist(name).pretrained_key  # a ready network to start from (face_cnn: cnn_bundle)
        if ready and overrides.get(ready):
            bundle_arg(Path(overrides[ready]), ready)
        check_runner(runner, None)
        if out is not None:
            check_replaceable(out)
        home = ingested_store(store)
    with cli_run(lock=home):
        from emonets.bundle import copy_bundle
        from cli.progress import training_progress
        from flows.train_specialist import train_specialist

        with training_progress():
            summary = train_specialist(name, str(home.root), overrides or None, max_epochs, runner=runner,
                                       retrain="full" if full else "auto", withdrawn=withdraw or None,
                                       recipe=recipe)
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
    if summary.get("recipe"):
        made = summary["recipe"]
        val = (made.get("val_faces") or {}).get("accuracy")
        console.print(f"recipe {safe(made['recipe'])}: {made['members']} nets averaged ({made['tta']} views), "
                      f"val faces {'—' if val is None else f'{val:.4f}'}; ConvNet bundle {safe(made['bundle'])}",
                      soft_wrap=True)
    _flag_below_chance(_below_chance_of(name, summary.get("metrics", {})))
    print_json_line(summary)


@app.command("train-all")
def train_all_cmd(
    roots: Optional[list[Path]] = typer.Argument(None, help="data roots (default: the generated demo dataset)"),
    store: Optional[Path] = typer.Option(None, "--store", help=STORE_HELP),
    format: Optional[list[str]] = typer.Option(None, "--format", "-f", help=f"one per root: {FORMAT_HELP}"),
    specialists: Optional[str] = typer.Option(None, help="comma-separated (default: every registered one)"),
    runner: str = typer.Option("local", help="local | threads | dask"),
    dask_address: Optional[str] = typer.Option(None, help="tcp://HOST:PORT of a Dask scheduler"),
    max_epochs: Optional[int] = typer.Option(None, help="cap on every specialist's training epochs"),
    config: Optional[str] = typer.Option(None, help='JSON per specialist, e.g. \'{"face_cnn": {"cnn_bundle": "..."}}\''),
    fusion_draws: int = typer.Option(400_000, help="random-search draws"),
    full: bool = typer.Option(False, "--full", help="train from scratch, never continuing a previous model "
                              "(also replaces a warm-started one whose data did not change)"),
    withdraw: Optional[list[str]] = typer.Option(None, "--withdraw", help="a clip id withdrawn from the data "
                                                 "(repeatable): its removal means training from scratch"),
) -> None:
    """Ingest -> extract -> train every specialist -> fuse -> report, through the Prefect flow."""
    with cli_run(flows=False):
        from emonets.datasets import FORMATS
        from emonets.train import check_specialist

        names = [check_specialist(s.strip()) for s in (specialists or ",".join(registry.specialists())).split(",")
                 if s.strip()]
        formats = [choice(f, FORMATS, "format") for f in format or []]
        for root in roots or []:
            existing_data_root(root)
        if formats and len(formats) != len(roots or []):
            raise ValueError(f"give one --format per data root ({len(formats)} formats, {len(roots or [])} roots)")
        configs = json_option(config, "--config")
        for key, value in configs.items():
            if not isinstance(value, dict):
                raise ValueError(f"--config: the value of {key!r} must be a JSON object of settings")
        check_runner(runner, dask_address)
        home = open_store(store)
    with cli_run(lock=home, csv_file=csv_of(roots[0]) if roots and len(roots) == 1 else None):
        from cli.progress import training_progress
        from flows.train_all import train_all

        with training_progress():
            summary = train_all(data_roots=[str(r) for r in roots] if roots else None, store_root=str(home.root),
                                formats=formats or None, specialists=names, runner=runner,
                                dask_address=dask_address, max_epochs=max_epochs, configs=configs or None,
                                fusion_draws=fusion_draws, retrain="full" if full else "auto",
                                withdrawn=withdraw or None)
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
