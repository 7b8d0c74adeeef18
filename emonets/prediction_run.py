"""Predict new videos, or evaluate a labelled root, end to end: ingest, extract, run the bundle.

One body for both ways of running it: the `emonets` command calls it directly (extraction in
this process's guarded children, :mod:`emonets.features.local`: no Prefect server for a few
clips), and the `predict` / `evaluate` flows call it with an extractor that runs the
`extract-features` flow on a task runner (batches, Dask, recorded runs).

Both write into a store of their own (never the training store, so a prediction can't leak into
training); features are cached there per clip, so a re-run only extracts new files. The model
loads in a thread while the clips are extracted.
"""

from __future__ import annotations

import csv
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from data_catalog import Store
from data_catalog.atomic import atomic_path
from emonets import registry
from emonets.evaluation import metrics_dict
from emonets.features.local import extract_clips
from emonets.ingest_store import ingest_into_store
from emonets.labels import LABEL_INDEX
from emonets.media.paths import display_path, to_fs
from emonets.prediction_cache import PredictionCache
from emonets.predict import bundle_specialists, bundle_stages, load_model, predict_clips

# (store, clips, stages) -> the extraction summary (emonets.features.local.extract_clips' shape)
Extractor = Callable[[Store, pd.DataFrame, list[str]], dict]


def request_manifest(work: Store, videos: list[str]) -> Path:
    """A CSV listing the videos to label (portable paths, see emonets.media.paths), named by its content."""
    key = hashlib.sha256("|".join(sorted(videos)).encode()).hexdigest()[:12]
    manifest = work.path("requests", f"{key}.csv")
    with atomic_path(manifest) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "split"])
        writer.writerows([p, "", "test"] for p in videos)
    return manifest


@dataclass
class BundleRun:
    """What a prediction run leaves for the caller: a result per clip, the ingest summary (with
    the extraction's), the loaded model (None when every result was cached) and the clips (for
    the pictures, emonets.pictures.timeline)."""

    results: list[dict]
    ingested: dict
    model: Any
    clips: pd.DataFrame


def feature_tables(work: Store, clips: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Every feature table's partitions of these clips (those extracted)."""
    tables = {registry.specialist(n).table for n in registry.specialists()} | {"faces"}
    return {t: work.read(t, partitions=[k for k in clips["clip_id"] if work.manifest(t, k)]) for t in tables}


def run_bundle(model_path: str, root: str, fmt: str, work: Store, *, predicting: bool = False,
               extract: Extractor | None = None, extra_stages: tuple[str, ...] = ()) -> BundleRun:
    """Ingest ``root`` into ``work``, extract what the bundle needs (and ``extra_stages``), predict.

    ``predicting``: the user's own list of videos: rows may point anywhere, and copies stay.
    A clip whose result for this model is cached (same content) is neither extracted nor run
    again. The caller holds the lock.
    """
    extract = extract or (lambda store, clips, stages: extract_clips(store, clips, stages))
    cache = PredictionCache(work, model_path)
    stages = sorted(set(bundle_stages(model_path)) | set(extra_stages))
    ingested = ingest_into_store(root, str(work.root), fmt, allow_outside=predicting, keep_copies=predicting)
    clips = work.read("clips", partitions=[ingested["partition"]])
    known = {sha: hit for sha in set(clips["sha256"]) if (hit := cache.get(sha)) is not None}
    new = clips[~clips["sha256"].isin(known)]
    todo = clips if extra_stages else new  # pictures need every clip's features, not only new ones
    model, extraction = None, {}
    if len(todo):  # else every result is known: the model is not even loaded
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="emonets-model") as loader:
            loading = loader.submit(load_model, model_path)
            extraction = extract(work, todo, stages)
            model = loading.result()
    fresh = {r["clip_id"]: r for r in predict_clips(model, new, feature_tables(work, new))} if len(new) else {}
    for clip in new.itertuples(index=False):
        cache.put(clip.sha256, fresh[clip.clip_id])
    results = [fresh.get(clip.clip_id) or {"clip_id": clip.clip_id, "path": clip.path,
                                           "true_label": clip.label or None, **known[clip.sha256]}
               for clip in clips.itertuples(index=False)]
    ingested.update(extraction=extraction, reused_results=int(len(clips) - len(new)))
    return BundleRun(results, ingested, model, clips)


def predict_videos(videos: list[str], model_path: str, work: Store, *, extract: Extractor | None = None,
                   extra_stages: tuple[str, ...] = ()) -> BundleRun:
    """Label each video (portable paths); a video that could not be read gets a record saying why."""
    manifest = request_manifest(work, videos)
    run = run_bundle(model_path, str(manifest), "csv", work, predicting=True, extract=extract,
                     extra_stages=extra_stages)
    _explain_unlabelled(run.results, work)
    _as_named(run.results, videos)
    # Ingest rows about a clip that was kept (e.g. "no audio stream") are notes, not failures.
    labelled = {r["path"] for r in run.results}
    bad = {p["path"]: p["reason"] for p in run.ingested["problem_rows"] if p["path"] not in labelled}
    run.results += [{"clip_id": Path(p).stem, "path": p, "label": None, "probabilities": None, "specialists": {},
                     "missing": [], "error": reason} for p, reason in bad.items()]
    return run


def _as_named(results: list[dict], videos: list[str]) -> None:
    """Report each video under the name the user gave (ingest stores a link's target, the file
    it checked and opens): a result whose path is a requested video's target, and whose clip id
    is that name's, gets the name back."""
    by_target: dict[str, list[str]] = {}
    for video in videos:
        named = Path(to_fs(video))
        by_target.setdefault(display_path(os.path.realpath(named)), []).append(display_path(named))
    asked = {name for names in by_target.values() for name in names}
    for r in results:
        if r["path"] in asked:
            continue
        names = [n for n in by_target.get(r["path"], []) if r["clip_id"].startswith(Path(n).stem)]
        if names:
            r["path"] = names[0]


def _explain_unlabelled(results: list[dict], work: Store) -> None:
    """A clip with no label says why: its stages' problems (no face found, worker crashed, ...)."""
    unlabelled = {r["clip_id"]: r for r in results if not r.get("label")}
    if not unlabelled:
        return
    problems = work.read("problems")
    problems = problems[problems["clip_id"].isin(unlabelled) & (problems["stage"] != "ingest")]
    for clip_id, rows in problems.groupby("clip_id"):
        unlabelled[clip_id].setdefault("error", "; ".join(f"{s}: {r}" for s, r in zip(rows["stage"], rows["reason"])))


def draw_pictures(run: BundleRun, work: Store, *, plot: Path | None = None, annotate: Path | None = None,
                  landmarks: bool = False) -> dict[str, Any]:
    """--plot (one PNG, a timeline per clip) and --annotate (each video with its face and label)."""
    from emonets.pictures.timeline import clip_timelines

    clips = run.clips.drop_duplicates("clip_id")
    timelines = clip_timelines(run.model, clips, feature_tables(work, clips),
                               predictions=[r for r in run.results if r["clip_id"] in set(clips["clip_id"])])
    written: dict[str, Any] = {}
    if plot is not None and timelines:
        from emonets.pictures.plot import timeline_png

        written["plot"] = str(timeline_png(timelines, plot))
    if annotate is not None and timelines:
        from emonets.pictures.annotate import annotate_videos

        done = annotate_videos(timelines, annotate, landmarks=landmarks)
        written["annotated"] = {cid: str(a.path) for cid, a in done.items()}
    return written


def specialist_metrics(results: list[dict], names: list[str]) -> dict[str, dict]:
    """Each specialist's accuracy / macro-F1 / n on the labelled clips it could score."""
    out = {}
    for name in names:
        scored = [r for r in results if r["true_label"] in LABEL_INDEX and name in r["specialists"]]
        y = [LABEL_INDEX[r["true_label"]] for r in scored]
        pred = [LABEL_INDEX[r["specialists"][name]["label"]] for r in scored]
        m = metrics_dict(y, pred) if scored else {"accuracy": 0.0, "macro_f1": 0.0, "n": 0}
        out[name] = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "n": m["n"]}
    return out


def evaluate_root(model_path: str, root: str, fmt: str, work: Store, split: str | None = None, *,
                  extract: Extractor | None = None) -> dict:
    """Accuracy, macro-F1 and the confusion matrix of a bundle on every labelled clip of a root,
    and each specialist's own figures on the clips it could score."""
    run = run_bundle(model_path, root, fmt, work, extract=extract)
    results, ingested = run.results, run.ingested
    clips = run.clips.set_index("clip_id")
    in_split = [r for r in results if split is None or clips.loc[r["clip_id"], "split"] == split]
    scored = [r for r in in_split if r["label"] and r["true_label"] in LABEL_INDEX]
    y = [LABEL_INDEX[r["true_label"]] for r in scored]
    pred = [LABEL_INDEX[r["label"]] for r in scored]
    metrics = metrics_dict(y, pred) if scored else {"accuracy": 0.0, "macro_f1": 0.0, "n": 0, "confusion": []}
    labelled = sum(1 for r in in_split if r["true_label"] in LABEL_INDEX)
    names = bundle_specialists(model_path)
    return {**metrics, "unscored": labelled - len(scored), "model": model_path, "data_root": root,
            "split": split or "all", "ingest_problems": ingested["problems"],
            "specialists": specialist_metrics(in_split, names)}
