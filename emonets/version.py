"""The library's version: the installed distribution's (pyproject.toml), the one source of it.

The store reads the same metadata to stamp its manifests (data_catalog never imports this
package), so a partition's recorded version and the running code's cannot disagree.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("emonets")
except PackageNotFoundError:  # a source tree never installed: still one value for both sides
    __version__ = "0+unknown"
