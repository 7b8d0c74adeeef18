"""The `predict` flow (new videos -> labels) and the `evaluate` flow (a labelled root -> metrics).

The work is emonets.prediction_run's, as for the `emonets` command's fast path; here the
extraction runs as the `extract-features` flow on a task runner (process pool, threads or
Dask), so a batch of videos spreads over the workers and every run is recorded in Prefect.
"""

from __future__ import annotations

import os
from pathlib import Path

from prefect import flow

from data_catalog import Store, default_store_root
from emonets.media.paths import portable_path, to_fs
from emonets.prediction_run import evaluate_root, predict_videos
from flows.extract_features import extract_features
from flows.runtime.locking import evaluate_store, exclusive_store, predict_store
from flows.runtime.runners import make_task_runner
from emonets.freshness import fused_path


def flow_extractor(runner: str, dask_address: str | None = None, progress=None):
    """An extractor (emonets.prediction_run.Extractor) that runs the extract-features flow."""
    from flows.runtime.progress import reporting_progress

    def extract(store: Store, clips, stages: list[str]) -> dict:
        with reporting_progress(progress):
            return extract_features.with_options(task_runner=make_task_runner(runner, dask_address=dask_address))(
                store_root=str(store.root), stages=stages, clip_ids=clips["clip_id"].tolist())

    return extract


@flow(name="predict")
def predict(videos: list[str], model: str | None = None, store_root: str | None = None, runner: str = "threads",
            dask_address: str | None = None) -> list[dict]:
    """Label each video with the fused model (default: the store's) and every specialist's view."""
    home = Store(store_root or default_store_root())
    model = model or str(fused_path(home))
    # Portable forms (valid text for any file name, see emonets.media.paths): the request CSV lists
    # the user's videos wherever they are, so its rows may point outside its folder.
    paths = [portable_path(Path(os.path.abspath(Path(to_fs(v)).expanduser()))) for v in videos]  # as named
    work = predict_store(home)
    with exclusive_store(work):
        return predict_videos(paths, model, work, extract=flow_extractor(runner, dask_address)).results


@flow(name="evaluate")
def evaluate(model: str, data_root: str, format: str = "auto", store_root: str | None = None,
             split: str | None = None, runner: str = "threads") -> dict:
    """Accuracy, macro-F1 and the confusion matrix of a bundle on every labelled clip of a root."""
    home = Store(store_root or default_store_root())
    root = str(Path(data_root).expanduser().resolve())
    work = evaluate_store(home, root)
    with exclusive_store(work):
        return evaluate_root(model, root, format, work, split, extract=flow_extractor(runner))
