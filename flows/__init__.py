"""Prefect flows: train-all, extract-features, train-specialist, ingest, predict, evaluate (their plumbing in
``flows.runtime``; the `emonets` command above them in ``cli``)."""

import tasks  # noqa: F401  (Prefect's defaults, set before Prefect is first imported)
