"""The `emonets` command's application object and what every command shares: the store,
bundle and data-root arguments checked before anything is imported, the option help texts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

# Prefect's per-task INFO lines would drown the tables; set before Prefect is first imported
# (PREFECT_LOGGING_LEVEL=INFO brings them back).
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from cli.errors import choice  # noqa: E402


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


RUNNER_HELP = ("inline (this process, no Prefect) | local (process pool) | threads | dask; "
               "auto: inline unless a Prefect API is configured (PREFECT_API_URL), then a recorded flow run")


def store_root(store: Optional[Path]) -> str:
    from data_catalog import default_store_root

    return str(Path(store).expanduser().resolve() if store else default_store_root())


def open_store(store: Optional[Path]):
    from data_catalog import Store

    root = Path(store_root(store))
    if root.exists() and not root.is_dir():
        raise ValueError(f"--store {root} is a file, not a store folder")
    return Store(root)


def ingested_store(store: Optional[Path]):
    """The store, which must hold ingested clips (the commands that read them say what to run first)."""
    home = open_store(store)
    if not home.partitions("clips"):
        raise ValueError(f"nothing ingested in the store {home.root}; "
                         f"run `emonets ingest DATA_ROOT --store {home.root}` first")
    return home


def json_option(text: Optional[str], option: str) -> dict:
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


def bundle_arg(path: Path, what: str) -> Path:
    from emonets.bundle import is_bundle

    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist")
    if not is_bundle(path):
        raise ValueError(f"{what} {path} is not a model bundle (a folder with bundle.json)")
    return path


def release_or_bundle(path: Path) -> Path:
    """BUNDLE as given, or for the word ``release`` (no such folder here) the best shipped model:
    the fused one when the release has it, else the face ConvNet."""
    if str(path) == "release" and not path.exists():
        from emonets.release import shipped_model, shipped

        return shipped_model("fused" if shipped("fused") else "face_cnn")
    return bundle_arg(path, "BUNDLE")


def existing_data_root(root: Path) -> Path:
    if not Path(root).expanduser().exists():
        raise FileNotFoundError(f"data root {root} does not exist")
    return root


def csv_of(root: Path) -> Optional[Path]:
    """The CSV a data root is read from, if it is one (named when it cannot be read)."""
    root = Path(root).expanduser()
    if root.is_file():
        return root
    return next((root / n for n in ("manifest.csv", "fer2013.csv") if (root / n).is_file()), None)


def check_runner(runner: str, dask_address: Optional[str]) -> None:
    from flows.runtime.runners import RUNNERS, check_dask_address

    choice(runner, RUNNERS, "runner")
    if runner == "dask" and dask_address:
        check_dask_address(dask_address)
