"""Prefect tasks: thin wrappers that run one library call and write its tables to the store."""

import os

# Quiet, private defaults for Prefect before it is first imported (users may override them).
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
