"""The trained models that ship with the code, checked against their SHA256SUMS before use.

They live in ``emonets/release/`` (installed with the package, nothing downloaded): one bundle
folder per model, a ``MODEL_CARD.md`` saying what each was trained on and how well it does,
and ``SHA256SUMS`` (``sha256sum`` format) over every file. A file that is missing, changed or
cut short is refused with a one-line error naming it, never loaded.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from emonets.bundle import BundleError

RELEASE_DIR = Path(__file__).resolve().parent / "release"
SUMS_FILE = "SHA256SUMS"

_verified: set[Path] = set()


class ReleaseError(BundleError):
    """A shipped model is missing or does not match its checksum."""


def _folder(folder: Path | str | None) -> Path:
    return Path(folder) if folder is not None else RELEASE_DIR


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_sums(folder: Path) -> dict[str, str]:
    """relative path -> expected sha256, from the folder's SHA256SUMS."""
    sums_file = folder / SUMS_FILE
    if not sums_file.is_file():
        raise ReleaseError(f"{sums_file}: missing; the shipped models cannot be verified (reinstall EmoNets)")
    sums = {}
    for n, line in enumerate(sums_file.read_text().splitlines(), 1):
        if line.strip():
            digest, _, name = line.partition("  ")
            if len(digest) != 64 or not name:
                raise ReleaseError(f"{sums_file}: line {n} is not '<sha256>  <file>'")
            sums[name.strip()] = digest
    return sums


def verify(folder: Path | str | None = None, *, only: str | None = None) -> None:
    """Check every listed file (or those under ``only``, a model's folder) against SHA256SUMS."""
    folder = _folder(folder)
    for name, expected in read_sums(folder).items():
        if only is not None and not name.startswith(f"{only}/"):
            continue
        path = folder / name
        if not path.is_file():
            raise ReleaseError(f"{path}: a shipped model file is missing (reinstall EmoNets)")
        found = file_sha256(path)
        if found != expected:
            raise ReleaseError(f"{path}: checksum mismatch (expected {expected[:12]}…, found {found[:12]}…); "
                               "the file was changed or damaged: reinstall EmoNets")


def write_sums(folder: Path | str | None = None) -> Path:
    """(Re)write SHA256SUMS over every file in the release folder but itself (when building it)."""
    folder = _folder(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != SUMS_FILE
                   and "__pycache__" not in p.parts)
    text = "".join(f"{file_sha256(p)}  {p.relative_to(folder).as_posix()}\n" for p in files)
    (folder / SUMS_FILE).write_text(text)
    return folder / SUMS_FILE


def shipped(name: str, folder: Path | str | None = None) -> Path | None:
    """The folder of the shipped model ``name`` when the release has one, else None."""
    path = _folder(folder) / name
    return path if (path / "bundle.json").is_file() else None


def shipped_model(name: str, folder: Path | str | None = None) -> Path:
    """The verified folder of the shipped model ``name`` (checked once per process)."""
    folder = _folder(folder)
    path = shipped(name, folder)
    if path is None:
        raise ReleaseError(f"no shipped model {name!r} in {folder}")
    if path not in _verified:
        verify(folder, only=name)
        _verified.add(path)
    return path


def check_if_shipped(path: Path | str, folder: Path | str | None = None) -> None:
    """Verify ``path`` against SHA256SUMS when it is (inside) a shipped model; else nothing."""
    folder = _folder(folder).resolve()
    try:
        relative = Path(path).resolve().relative_to(folder)
    except ValueError:
        return
    if relative.parts:
        shipped_model(relative.parts[0], folder)
