"""Versioned model bundles: a folder of safe-to-load parts plus a JSON description.

Layout::

    bundle.json          kind, config, metrics, input fingerprints, library + package versions
    torch/<name>.pt      state dicts, loaded with ``weights_only=True``
    sklearn/<name>.skops scikit-learn estimators via skops (types checked before loading)
    arrays.npz           plain arrays (``allow_pickle=False``)

Nothing in a bundle is unpickled as an arbitrary object, so a bundle from elsewhere cannot run code.
A folder is a bundle when it holds ``bundle.json``; that file also lists the parts written with it,
so a bundle with a part missing, truncated or refused fails with a BundleError naming the file.
"""

from __future__ import annotations

import json
import os
import pickle
import platform
import re
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emonets import __version__

# Only these module prefixes may appear inside a .skops file we load.
_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.")

BUNDLE_FILE = "bundle.json"


class BundleError(ValueError):
    """A bundle that cannot be used: a part missing, corrupt, or refused as unsafe (names the file)."""


def is_bundle(path: Path | str) -> bool:
    """A model bundle is a folder holding ``bundle.json``."""
    return (Path(path) / BUNDLE_FILE).is_file()


def check_replaceable(path: Path | str) -> None:
    """Refuse a target that holds something other than a bundle (nothing of the user's is replaced).

    Absent, an empty folder, or an existing bundle: fine. A file, or a folder with other
    contents: ValueError, and the target is left untouched.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_dir() or path.is_symlink():
        raise ValueError(f"{path} exists and is not a folder; give a new path, an empty folder or a model bundle")
    if not is_bundle(path) and any(path.iterdir()):
        raise ValueError(f"{path} is a folder with other contents (not a model bundle: no {BUNDLE_FILE}); "
                         "give a new path, an empty folder or an existing bundle to replace")


def copy_bundle(src: Path | str, dst: Path | str) -> Path:
    """Copy a bundle to ``dst`` (absent, empty, or a bundle it replaces), atomically.

    The copy is written into a temp folder beside ``dst`` and renamed into place; ``dst``
    holding anything but a bundle is refused (check_replaceable) before anything is written.
    """
    src, dst = Path(src), Path(dst)
    if not is_bundle(src):
        raise FileNotFoundError(f"{src}: not a model bundle (no {BUNDLE_FILE})")
    check_replaceable(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{dst.name}-", dir=dst.parent))
    try:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        check_replaceable(dst)  # still absent, empty or a bundle (nothing appeared meanwhile)
        replace_dir(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dst


@dataclass
class Bundle:
    kind: str
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    torch_states: dict[str, dict] = field(default_factory=dict)
    estimators: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def package_versions() -> dict[str, str]:
    """Versions of the packages a model depends on, recorded next to it."""
    import sklearn
    import torch

    return {
        "emonets": __version__,
        "torch": torch.__version__,
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def save_bundle(path: Path | str, bundle: Bundle) -> Path:
    """Write the bundle folder atomically: built in a temp folder beside it, then renamed in."""
    import torch

    dump = skops_io().dump
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{path.name}-", dir=path.parent))
    try:
        if bundle.torch_states:
            (tmp / "torch").mkdir()
            for name, state in bundle.torch_states.items():
                torch.save(state, tmp / "torch" / f"{name}.pt")
        if bundle.estimators:
            (tmp / "sklearn").mkdir()
            for name, est in bundle.estimators.items():
                dump(est, tmp / "sklearn" / f"{name}.skops")
        if bundle.arrays:
            np.savez(tmp / "arrays.npz", **bundle.arrays)
        parts = sorted(str(f.relative_to(tmp)) for f in tmp.rglob("*") if f.is_file())
        description = {
            "kind": bundle.kind,
            "files": parts,
            "config": bundle.config,
            "metrics": bundle.metrics,
            "inputs": bundle.inputs,
            "meta": {**bundle.meta, "created": time.time(), "versions": package_versions()},
        }
        (tmp / BUNDLE_FILE).write_text(json.dumps(description, indent=2, sort_keys=True, default=_jsonable))
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load_bundle(path: Path | str, *, kind: str | None = None) -> Bundle:
    """Load a bundle safely; ``kind`` (when given) must match what the bundle says it is.

    Raises FileNotFoundError for a folder without ``bundle.json``, BundleError (a ValueError
    naming the file) for a part that is missing, corrupt, or refused by ``weights_only``.
    """
    path = Path(path)
    from emonets.release import check_if_shipped  # (emonets.release imports this module)

    check_if_shipped(path)
    desc = read_description(path)
    if kind is not None and desc.get("kind") != kind:
        raise ValueError(f"{path}: bundle holds a {desc.get('kind')!r} model, expected {kind!r}")
    missing = [f for f in desc.get("files", []) if not (path / f).is_file()]
    if missing:
        raise BundleError(f"{path}: incomplete bundle, missing {', '.join(missing)}")
    torch_states = {f.stem: _load_torch(f) for f in sorted((path / "torch").glob("*.pt"))}
    estimators = {f.stem: _load_skops(f) for f in sorted((path / "sklearn").glob("*.skops"))}
    arrays = {}
    if (path / "arrays.npz").is_file():
        try:
            with np.load(path / "arrays.npz", allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
            raise BundleError(f"{path / 'arrays.npz'}: corrupt or truncated array file ({_first_line(err)})") from err
    return Bundle(
        kind=desc["kind"],
        config=desc.get("config", {}),
        metrics=desc.get("metrics", {}),
        inputs=desc.get("inputs", {}),
        torch_states=torch_states,
        estimators=estimators,
        arrays=arrays,
        meta=desc.get("meta", {}),
    )


def read_description(path: Path | str) -> dict[str, Any]:
    """A bundle's ``bundle.json``; FileNotFoundError if there is none, BundleError if unreadable."""
    desc_file = Path(path) / BUNDLE_FILE
    if not desc_file.is_file():
        raise FileNotFoundError(f"{path}: not a model bundle (no {BUNDLE_FILE})")
    try:
        desc = json.loads(desc_file.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise BundleError(f"{desc_file}: unreadable bundle description ({_first_line(err)})") from err
    if not isinstance(desc, dict) or "kind" not in desc:
        raise BundleError(f"{desc_file}: not a bundle description (no 'kind')")
    return desc


def _load_torch(f: Path) -> dict:
    import torch

    try:
        return torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if refused:
            raise BundleError(f"{f}: refused to load: it holds {refused.group(1)}, not plain weights "
                              "(only tensors and plain containers are loaded, so it cannot run code)") from err
        raise BundleError(f"{f}: corrupt or truncated weights file ({_torch_detail(err)})") from err
    except (RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile) as err:
        raise BundleError(f"{f}: corrupt or truncated weights file ({_torch_detail(err)})") from err


def _torch_detail(err: BaseException) -> str:
    """The telling part of torch.load's long messages (which advise weights_only=False: never here)."""
    hit = re.search(r"(Unsupported [^\n.]*|PytorchStreamReader failed [^\n.:]*)", str(err))
    return hit.group(1).strip() if hit else _first_line(err)


def skops_io():
    """``skops.io``, imported without its list of every scikit-learn estimator.

    At import skops builds its default trusted-type list from ``sklearn.utils.all_estimators()``,
    which imports all of scikit-learn: about a second of every model load, most of `predict`'s
    start-up. Nothing here uses that list: :func:`_load_skops` decides what to trust by
    ``_TRUSTED_PREFIXES`` and passes the types explicitly. So the list is built empty.
    """
    import sys

    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    import sklearn.utils

    every_estimator = sklearn.utils.all_estimators
    sklearn.utils.all_estimators = lambda *args, **kwargs: []
    try:
        import skops.io
    finally:
        sklearn.utils.all_estimators = every_estimator
    return skops.io


def _load_skops(f: Path):
    io = skops_io()
    get_untrusted_types, load = io.get_untrusted_types, io.load

    try:
        types = get_untrusted_types(file=f)
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise BundleError(f"{f}: corrupt or truncated estimator file ({_first_line(err)})") from err
    bad = [t for t in types if not t.startswith(_TRUSTED_PREFIXES)]
    if bad:
        raise BundleError(f"{f}: refuses to load untrusted types {bad}")
    try:
        return load(f, trusted=types)
    except (ValueError, OSError, EOFError, KeyError, TypeError, zipfile.BadZipFile) as err:
        raise BundleError(f"{f}: corrupt estimator file ({_first_line(err)})") from err


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def replace_dir(new: Path, target: Path) -> None:
    """Swap a finished folder into place; the old one is removed only after the swap."""
    if target.exists():
        old = target.with_name(f".old-{target.name}-{os.getpid()}")
        os.replace(target, old)
        os.replace(new, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, target)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)
