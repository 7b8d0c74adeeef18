"""File names as the file system has them, as text that is safe to store, and as text to show.

A POSIX file name is bytes: anything but ``/`` and NUL, not necessarily UTF-8 (a file copied
off an old camera or a Latin-1 archive can hold ``0xFF``). Python hands such a name over as a
``str`` with surrogate escapes (``os.fsdecode``), which opens the file fine but is not valid
Unicode: Parquet, JSON APIs (Prefect's orjson) and a UTF-8 stdout all refuse it. So a path has
three forms here, and each place uses the one it needs:

* **fs** (:func:`to_fs`): the ``str`` to open (surrogate-escaped where the name is not UTF-8);
  ``os.fsencode(to_fs(p))`` gives the exact bytes back.
* **portable** (:func:`portable_path`): valid UTF-8 text that round-trips losslessly and that
  every opener in the library accepts: the plain path when its bytes are UTF-8, else a
  ``file://`` URI whose undecodable bytes are percent-encoded (RFC 8089). This is what travels
  in a WorkUnit (a Prefect task parameter, pickled to workers, stored in `problems` rows).
  Plain absolute paths start with ``/``, so a ``file://`` prefix is never ambiguous.
* **display** (:func:`display_path`, :func:`display_text`): one line of valid text for tables,
  logs, CSV, JSON and ids: undecodable bytes as ``\\xff``, control characters (a newline in a
  name) as ``\\n``/``\\x1b``, line separators and bidi overrides as ``\\u2028``. Readable, not
  reversible: the `clips` table keeps the raw bytes beside it (``path_bytes``).
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from urllib.parse import quote_from_bytes, unquote_to_bytes

URI_PREFIX = "file://"
# Characters that would reorder or break a displayed line (bidi overrides, line separators).
_INVISIBLE = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x2028, 0x2029)}
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

PathLike = str | bytes | os.PathLike


def fs_bytes(path: PathLike) -> bytes:
    """The path's exact bytes (a ``file://`` URI is decoded first)."""
    if isinstance(path, bytes):
        return path
    text = os.fspath(path)
    if isinstance(text, bytes):
        return text
    if text.startswith(URI_PREFIX):
        return unquote_to_bytes(text[len(URI_PREFIX):])
    try:
        return os.fsencode(text)
    except UnicodeEncodeError:  # a lone surrogate that no file name produced: keep it visible
        return text.encode("utf-8", "surrogatepass")


def to_fs(path: PathLike) -> str:
    """The ``str`` to hand to ``open``/PyAV/PIL for any form of a path (bytes, URI, str, Path)."""
    if isinstance(path, str) and not path.startswith(URI_PREFIX):
        return path
    if isinstance(path, Path):
        return str(path)
    return os.fsdecode(fs_bytes(path))


def portable_path(path: PathLike) -> str:
    """Valid UTF-8 text that :func:`to_fs` turns back into exactly this path (see module doc)."""
    raw = fs_bytes(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        absolute = raw if raw.startswith(b"/") else os.path.abspath(raw)
        return URI_PREFIX + quote_from_bytes(absolute, safe="/")
    if text.startswith(URI_PREFIX):  # a relative path literally named so: make it unambiguous
        return URI_PREFIX + quote_from_bytes(os.path.abspath(raw), safe="/")
    return text


def display_text(text: str) -> str:
    """``text`` as one line of valid Unicode: surrogate escapes as ``\\xNN``, controls escaped."""
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # a byte os.fsdecode could not decode
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04x}")
        elif ch in _SHORT:
            out.append(_SHORT[ch])
        elif unicodedata.category(ch) == "Cc":
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        elif ch in _INVISIBLE:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def display_path(path: PathLike) -> str:
    """How a path is shown and stored as text (``clips.path``, problems, tables, JSON)."""
    return display_text(os.fsdecode(fs_bytes(path)))

