"""The `predict` flow (new videos -> labels) and the `evaluate` flow (a labelled root -> metrics).

Both ingest what they are given into a store of their own (never the training store, so a
prediction can't leak into training), extract only the stages the model needs (cached there
for re-runs), and run the bundle.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

from prefect import flow

from data_catalog import Store, default_store_root
from data_catalog.atomic import atomic_path
from emonets.evaluation import metrics_dict
from emonets.labels import LABEL_INDEX
from emonets.paths import portable_path, to_fs
from emonets.predict import load_model, predict_clips, stages_needed
from emonets.training_data import SPECIALIST_TABLE
from flows.extract_features import extract_features
from flows.locking import evaluate_store, exclusive_store, predict_store
from flows.runners import make_task_runner
from tasks.fuse import fused_path
from tasks.ingest import ingest_root


def _run(model_path: str, root: str, fmt: str, store: Store, runner: str, *,
         predicting: bool = False) -> tuple[list[dict], dict]:
    """``predicting``: the user's own list of videos: rows may point anywhere, and copies stay."""
    model = load_model(model_path)
    with exclusive_store(store):
        ingested = ingest_root(root, str(store.root), fmt, allow_outside=predicting, keep_copies=predicting)
        clips = store.read("clips", partitions=[ingested["partition"]])
        extract_features.with_options(task_runner=make_task_runner(runner))(
            store_root=str(store.root), stages=stages_needed(model), clip_ids=clips["clip_id"].tolist())
        tables = {t: store.read(t, partitions=[k for k in clips["clip_id"] if store.manifest(t, k)])
                  for t in {SPECIALIST_TABLE[n][0] for n in SPECIALIST_TABLE}}
        return predict_clips(model, clips, tables), ingested


@flow(name="predict")
def predict(videos: list[str], model: str | None = None, store_root: str | None = None, runner: str = "threads") -> list[dict]:
    """Label each video with the fused model (default: the store's) and every specialist's view."""
    home = Store(store_root or default_store_root())
    model = model or str(fused_path(home))
    # Portable forms (valid text for any file name, see emonets.paths): the request CSV lists
    # the user's videos wherever they are, so its rows may point outside its folder.
    paths = [portable_path(Path(to_fs(v)).expanduser().resolve()) for v in videos]
    key = hashlib.sha256("|".join(sorted(paths)).encode()).hexdigest()[:12]
    work = predict_store(home)
    manifest = work.path("requests", f"{key}.csv")
    with atomic_path(manifest) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "split"])
        writer.writerows([p, "", "test"] for p in paths)
    results, ingested = _run(model, str(manifest), "csv", work, runner, predicting=True)
    # Ingest rows about a clip that was kept (e.g. "no audio stream") are notes, not failures.
    labelled = {r["path"] for r in results}
    bad = {p["path"]: p["reason"] for p in ingested["problem_rows"] if p["path"] not in labelled}
    results += [{"clip_id": Path(p).stem, "path": p, "label": None, "probabilities": None, "specialists": {},
                 "missing": [], "error": reason} for p, reason in bad.items()]
    return results


@flow(name="evaluate")
def evaluate(model: str, data_root: str, format: str = "auto", store_root: str | None = None,
             split: str | None = None, runner: str = "threads") -> dict:
    """Accuracy, macro-F1 and the confusion matrix of a bundle on every labelled clip of a root."""
    home = Store(store_root or default_store_root())
    root = str(Path(data_root).expanduser().resolve())
    work = evaluate_store(home, root)
    results, ingested = _run(model, root, format, work, runner)
    clips = work.read("clips", partitions=[ingested["partition"]]).set_index("clip_id")
    scored = [r for r in results if r["label"] and r["true_label"] in LABEL_INDEX
              and (split is None or clips.loc[r["clip_id"], "split"] == split)]
    y = [LABEL_INDEX[r["true_label"]] for r in scored]
    pred = [LABEL_INDEX[r["label"]] for r in scored]
    metrics = metrics_dict(y, pred) if scored else {"accuracy": 0.0, "macro_f1": 0.0, "n": 0, "confusion": []}
    labelled = sum(1 for r in results if r["true_label"] in LABEL_INDEX)
    return {**metrics, "unscored": labelled - len(scored) if split is None else None, "model": model,
            "data_root": root, "split": split or "all", "ingest_problems": ingested["problems"]}
