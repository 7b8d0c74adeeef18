"""Read a CSV file (a manifest or fer2013.csv) so that any failure names the file and why.

Without this, a manifest saved as Latin-1, a file without read permission or a stray NUL byte
surfaced as a traceback from the csv module's internals, without the file's name. Here each
becomes a ValueError (FileNotFoundError when it is missing) whose message starts with the
file's path, which the CLI prints as one line. Files are read as UTF-8; a byte-order mark
(Excel's "CSV UTF-8") is accepted.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator, Sequence

from emonets.media.paths import display_path, display_text, to_fs


class CsvReadError(ValueError):
    """A CSV file could not be read or decoded (the message names it)."""


def _open(csv_path: Path | str):
    shown = display_path(csv_path)
    try:
        return open(to_fs(csv_path), newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise FileNotFoundError(f"{shown}: CSV file does not exist") from None
    except IsADirectoryError:
        raise CsvReadError(f"{shown}: is a folder, not a CSV file") from None
    except OSError as err:
        raise CsvReadError(f"{shown}: cannot read the CSV file ({err.strerror or err})") from None


def _failure(shown: str, line: int, err: Exception) -> CsvReadError:
    if isinstance(err, UnicodeDecodeError):
        bad = err.object[err.start : err.start + 1].hex()
        return CsvReadError(f"{shown}: not UTF-8 text (byte 0x{bad} near line {line + 1}); save it as UTF-8")
    if isinstance(err, csv.Error):
        return CsvReadError(f"{shown}: line {line + 1}: not a valid CSV file ({display_text(str(err))})")
    why = getattr(err, "strerror", None) or str(err)
    return CsvReadError(f"{shown}: cannot read the CSV file ({display_text(why)})")


def csv_header(csv_path: Path | str) -> list[str]:
    """The first row of a CSV file (empty for an empty file)."""
    shown = display_path(csv_path)
    with _open(csv_path) as fh:
        reader = csv.reader(fh)
        try:
            return next(reader, [])
        except (UnicodeDecodeError, csv.Error, OSError) as err:
            raise _failure(shown, reader.line_num, err) from None


def iter_csv_rows(csv_path: Path | str, *, required: Sequence[str] = ()) -> Iterator[dict[str, str]]:
    """The rows of a CSV file with a header, as dicts (missing fields as "").

    Raises CsvReadError (a ValueError) naming the file when it cannot be opened or decoded, when a
    line is not valid CSV, or when a ``required`` column is missing.
    """
    shown = display_path(csv_path)
    with _open(csv_path) as fh:
        reader = csv.DictReader(fh, restval="")
        try:
            names = reader.fieldnames or []
            missing = [c for c in required if c not in names]
            if missing:
                raise CsvReadError(f"{shown}: needs the column(s) {', '.join(map(repr, missing))} "
                                   f"(found {', '.join(map(repr, names)) or 'no header'})")
            for row in reader:
                yield row
        except (UnicodeDecodeError, csv.Error, OSError) as err:
            raise _failure(shown, reader.line_num, err) from None
