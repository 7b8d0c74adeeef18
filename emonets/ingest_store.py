"""Ingest one data root into a store's `clips` and `problems` tables (no Prefect).

The `ingest` task and the fast interactive commands (`emonets ingest`, `predict`, `evaluate`)
all call :func:`ingest_into_store`, so a root is written the same way whichever path ran it.
"""

from __future__ import annotations

from pathlib import Path

from data_catalog import Store
from emonets.datasets import ingest
from emonets.media.fingerprint import FingerprintCache, sha256_text
from emonets.media.paths import display_path, display_text


def root_partition(root: Path | str, fmt: str) -> str:
    """Partition key of a data root: its format plus a short hash of its absolute path.

    The name part is display text and the hash covers the path's raw bytes, so a root whose
    name is not UTF-8 gets a valid, distinct key.
    """
    resolved = str(Path(root).expanduser().resolve())
    return f"{display_text(Path(resolved).name) or 'root'}-{sha256_text(resolved + '|' + fmt)[:10]}"


def ingest_into_store(root: str, store_root: str, fmt: str = "auto", calm: str = "drop",
                      allow_outside: bool = False, keep_copies: bool = False) -> dict:
    """Scan ``root``, write its clips and problems partitions, return the summary (small).

    ``allow_outside``: a CSV manifest may name files outside its folder (refused otherwise).
    ``keep_copies``: files with the same bytes all stay clips (prediction), not one of them.
    The summary is valid text throughout (``root`` as display text), safe to print and to JSON.
    """
    store = Store(store_root)
    cache = FingerprintCache(store.path("_cache", "sha256.json"))
    result = ingest(root, fmt=fmt, calm=calm, fingerprints=cache, allow_outside=allow_outside,
                    keep_copies=keep_copies)
    cache.save()
    key = root_partition(root, fmt)
    config = {"format": result.format, "calm": calm, **result.policy}
    shown = display_path(root)
    store.write("clips", result.clips, partition=key, inputs={"root": shown}, config=config)
    store.write("problems", result.problems, partition=f"ingest-{key}", inputs={"root": shown})
    summary = result.summary()
    summary.update(root=shown, partition=key, hashed_files=cache.hashed,
                   problem_rows=result.problems.to_dict("records"))
    return summary
