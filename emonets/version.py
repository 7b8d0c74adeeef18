"""The library's version: data_catalog.version's (pyproject.toml in a checkout, else the installed
distribution's metadata), the same value the store stamps on its manifests."""

from data_catalog.version import code_version

__version__ = code_version()
