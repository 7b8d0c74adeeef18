"""Per-clip prediction results kept beside the features, so a re-run labels only new videos.

A result is keyed by the clip's content (sha256) and by the model: a hash of every bundle.json
in the bundle (each records when it was written and from what), so a retrained or different
model never reads another's results. Entries are small JSON files written atomically.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from data_catalog import Store
from data_catalog.atomic import atomic_path
from emonets import __version__

# What a result says about the clip's content; path, clip id and true label come from the clip row.
CACHED_FIELDS = ("label", "probabilities", "specialists", "missing")


def model_key(bundle: Path | str) -> str:
    """A short hash of every bundle.json under ``bundle`` (names and bytes) and of the library
    version (which fixes how the features a model reads are extracted)."""
    digest = hashlib.sha256(__version__.encode() + b"\0")
    root = Path(bundle)
    for desc in sorted(root.rglob("bundle.json")):
        digest.update(str(desc.relative_to(root)).encode() + b"\0" + desc.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


class PredictionCache:
    """Results of one model in one store: ``get(sha256)`` / ``put(sha256, result)``."""

    def __init__(self, store: Store, bundle: Path | str):
        self.folder = store.path("_results", model_key(bundle))

    def _file(self, sha256: str) -> Path:
        return self.folder / f"{sha256}.json"

    def get(self, sha256: str) -> dict | None:
        try:
            data = json.loads(self._file(sha256).read_text())
        except (OSError, ValueError):  # absent, or unreadable: predict again
            return None
        return data if isinstance(data, dict) and all(k in data for k in CACHED_FIELDS) else None

    def put(self, sha256: str, result: dict) -> None:
        if not result.get("label"):  # nothing usable yet (e.g. no face found): try again next time
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self._file(sha256)) as tmp:
            Path(tmp).write_text(json.dumps({k: result[k] for k in CACHED_FIELDS}, sort_keys=True))
