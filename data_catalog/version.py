"""The code version stamped on every manifest, and the library's own ``__version__``: one source.

A source checkout (and an editable install) reads ``pyproject.toml`` beside the packages, so the
stamp follows the code even on a machine that only puts the checkout on ``PYTHONPATH`` (a Dask
worker, say); an installed wheel reads its distribution's metadata. ``emonets.version`` imports
this module (the store never imports the library), so the two can never disagree.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

DISTRIBUTION = "emonets"  # the distribution these packages ship in
_PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


@lru_cache(maxsize=None)
def code_version() -> str:
    if _PYPROJECT.is_file():
        import tomllib

        project = tomllib.loads(_PYPROJECT.read_text()).get("project", {})
        if project.get("name") == DISTRIBUTION and project.get("version"):
            return str(project["version"])
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "0+unknown"
