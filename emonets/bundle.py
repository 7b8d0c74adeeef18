"""Versioned model bundles: a folder of safe-to-load parts plus a JSON description.

Layout::

    bundle.json          kind, config, metrics, input fingerprints, library + package versions
    torch/<name>.pt      state dicts, loaded with ``weights_only=True``
    sklearn/<name>.skops scikit-learn estimators via skops (types checked before loading)
    arrays.npz           plain arrays (``allow_pickle=False``)

Nothing in a bundle is unpickled as an arbitrary object, so a bundle from elsewhere cannot run code.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emonets import __version__

# Only these module prefixes may appear inside a .skops file we load.
_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.")


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
    from skops.io import dump

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
        description = {
            "kind": bundle.kind,
            "config": bundle.config,
            "metrics": bundle.metrics,
            "inputs": bundle.inputs,
            "meta": {**bundle.meta, "created": time.time(), "versions": package_versions()},
        }
        (tmp / "bundle.json").write_text(json.dumps(description, indent=2, sort_keys=True, default=_jsonable))
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load_bundle(path: Path | str, *, kind: str | None = None) -> Bundle:
    """Load a bundle safely; ``kind`` (when given) must match what the bundle says it is."""
    import torch
    from skops.io import get_untrusted_types, load

    path = Path(path)
    desc_file = path / "bundle.json"
    if not desc_file.is_file():
        raise FileNotFoundError(f"{path}: not a model bundle (no bundle.json)")
    desc = json.loads(desc_file.read_text())
    if kind is not None and desc["kind"] != kind:
        raise ValueError(f"{path}: bundle holds a {desc['kind']!r} model, expected {kind!r}")
    torch_states = {
        f.stem: torch.load(f, map_location="cpu", weights_only=True) for f in sorted((path / "torch").glob("*.pt"))
    }
    estimators = {}
    for f in sorted((path / "sklearn").glob("*.skops")):
        types = get_untrusted_types(file=f)
        bad = [t for t in types if not t.startswith(_TRUSTED_PREFIXES)]
        if bad:
            raise ValueError(f"{f}: refuses to load untrusted types {bad}")
        estimators[f.stem] = load(f, trusted=types)
    arrays = {}
    if (path / "arrays.npz").is_file():
        with np.load(path / "arrays.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
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
