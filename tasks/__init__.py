"""Prefect tasks: thin wrappers that run one library call and write its tables to the store.

First, the one place Prefect's defaults are set, before Prefect is first imported: this package
is below everything that imports Prefect (flows import it; Dask workers unpickle tasks from it).
Users may override each of them.
"""

import os

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# The temporary local API can take over 20 s to start on a loaded 2-core machine.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
