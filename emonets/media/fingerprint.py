"""Content fingerprints (sha256) of input files, cached while size and mtime are unchanged."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from emonets.media.paths import portable_path, to_fs

_CHUNK = 1 << 20


def sha256_file(path: Path | str) -> str:
    """sha256 of a file's bytes, read in 1 MiB chunks (memory stays flat)."""
    digest = hashlib.sha256()
    with open(to_fs(path), "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    """sha256 of text as UTF-8; a surrogate-escaped file name hashes as its raw bytes (no error)."""
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


class FingerprintCache:
    """sha256 per file path, reused while the file's size and mtime_ns are unchanged.

    Rehashing every clip on each run would cost a full read of the dataset; the cache turns an
    unchanged re-run into a stat() per file. ``hashed`` counts the files actually read.
    """

    def __init__(self, cache_file: Path | str | None = None):
        self.cache_file = Path(cache_file) if cache_file else None
        self.hashed = 0
        self._entries: dict[str, list] = {}
        if self.cache_file and self.cache_file.is_file():
            try:
                self._entries = json.loads(self.cache_file.read_text())
            except (OSError, ValueError):
                self._entries = {}  # a damaged cache only costs a rehash

    def sha256(self, path: Path | str) -> str:
        path = Path(to_fs(path)).resolve()
        st = path.stat()
        key = portable_path(path)  # valid text for the JSON file, one key per name, whatever its bytes
        entry = self._entries.get(key)
        if entry and entry[0] == st.st_size and entry[1] == st.st_mtime_ns:
            return entry[2]
        digest = sha256_file(path)
        self.hashed += 1
        self._entries[key] = [st.st_size, st.st_mtime_ns, digest]
        return digest

    def save(self) -> None:
        """Persist the cache atomically (temp file + rename)."""
        if not self.cache_file:
            return
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_file.with_name(f".tmp-{self.cache_file.name}-{os.getpid()}")
        tmp.write_text(json.dumps(self._entries))
        os.replace(tmp, self.cache_file)
