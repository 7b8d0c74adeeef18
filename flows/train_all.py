"""The `train-all` flow: ingest -> extract features -> train each specialist -> fuse -> report.

Every step is incremental: ingestion reuses cached fingerprints, extraction recomputes only the
clips whose bytes (or stage config) changed, a specialist retrains only when the fingerprint of
its inputs or its config changed, and fusion re-fits only when a prediction changed.
"""

from __future__ import annotations

import errno
import time
from pathlib import Path

from prefect import flow, get_run_logger

from data_catalog import Store, default_store_root
from emonets import registry
from emonets.train import max_epochs_note
from emonets.errors import raise_if_disk_full
from flows.extract_features import extract_features
from flows.runtime.locking import exclusive_store
from flows.runtime.runners import make_task_runner
from tasks.fuse import fuse_in_flow
from tasks.ingest import ingest_root
from tasks.report import report_task
from emonets.retraining import retrain_policy
from tasks.train import train_in_flow


@flow(name="train-all", log_prints=True)
def train_all(
    data_roots: list[str] | None = None,
    store_root: str | None = None,
    formats: list[str] | None = None,
    specialists: list[str] | None = None,
    runner: str = "local",
    dask_address: str | None = None,
    max_epochs: int | None = None,
    configs: dict[str, dict] | None = None,
    fusion_draws: int = 400_000,
    retrain: str = "auto",
    withdrawn: list[str] | None = None,
) -> dict:
    """Train every specialist and the fusion on ``data_roots`` (the demo dataset when empty).

    ``formats`` gives each root's layout (default auto); ``configs`` holds per-specialist config
    overrides (e.g. ``{"face_cnn": {"cnn_bundle": "..."}}``) and per-stage extraction overrides
    under ``"extract"``. ``retrain``: "auto" continues a specialist from its previous bundle when
    only a few training clips changed (emonets.retraining), "full" trains every changed or
    warm-started one from scratch (the scheduled run's setting); ``withdrawn``: clip ids a user
    withdrew, whose removal always means a full retrain.
    """
    specialists = [registry.specialist(name).name for name in (specialists or registry.specialists())]
    policy = retrain_policy(retrain, withdrawn)
    logger = get_run_logger()
    store = Store(store_root or default_store_root())
    configs = dict(configs or {})
    started = time.perf_counter()
    with exclusive_store(store):
        roots = list(data_roots or [demo_root(store)])
        if not data_roots:
            configs = demo_configs(configs)
        fmts = list(formats or ["auto"] * len(roots))
        if len(fmts) != len(roots):
            raise ValueError("give one format per data root")
        phases = {}  # wall seconds of each step, for the summary (benchmarks/bench_scale.py reads them)
        tick = time.perf_counter()
        ingested = [ingest_root(str(Path(r).expanduser().resolve()), str(store.root), f) for r, f in zip(roots, fmts)]
        phases["ingest"], tick = round(time.perf_counter() - tick, 1), time.perf_counter()
        partitions = [i["partition"] for i in ingested]
        stages = sorted(registry.stages_for(specialists))
        clip_ids = store.read("clips", partitions=partitions)["clip_id"].tolist()
        extraction = extract_features.with_options(task_runner=make_task_runner(runner, dask_address=dask_address))(
            store_root=str(store.root), stages=stages, configs=configs.get("extract"), clip_ids=clip_ids)
        phases["extract"], tick = round(time.perf_counter() - tick, 1), time.perf_counter()
        raise_if_disk_full(extraction["errors"])  # a full disk stops the run here, saying so
        logger.info("extraction: %s computed, %s reused", extraction["computed"], extraction["cached"])
        trained = {}
        for name in specialists:
            note = max_epochs_note(name, max_epochs, configs.get(name))
            notes = {"notes": [note]} if note else {}
            if note:
                logger.info(note)
            state = train_in_flow(store, name, configs.get(name), max_epochs, partitions, policy)
            result = state.result(raise_on_failure=False)
            if state.is_completed():
                trained[name] = {**result, **notes}
                logger.info("%s: %s", name, result["status"])
            elif isinstance(result, OSError) and result.errno == errno.ENOSPC:
                raise result
            else:
                trained[name] = {"specialist": name, "status": "failed", "error": str(result), **notes}
                logger.warning("%s could not be trained: %s", name, result)
            phases[f"train.{name}"], tick = round(time.perf_counter() - tick, 1), time.perf_counter()
        usable = [n for n, r in trained.items() if r["status"] != "failed"]
        fuse_state = fuse_in_flow(store, usable, partitions, fusion_draws)
        fusion = fuse_state.result()
        phases["fuse"], tick = round(time.perf_counter() - tick, 1), time.perf_counter()
        report = report_task(str(store.root), partitions, usable)
        phases["report"] = round(time.perf_counter() - tick, 1)
    summary = {
        "store": str(store.root),
        "data_roots": roots,
        "clips": int(sum(i["clips"] for i in ingested)),
        "ingest_problems": int(sum(i["problems"] for i in ingested)),
        "extraction": {k: extraction[k] for k in ("computed", "cached", "failed", "problems", "face_found_rate",
                                                   "errors")},
        "specialists": {n: {k: v for k, v in r.items()
                            if k in ("status", "scored", "unscored", "seconds", "peak_rss_mb", "retraining", "error",
                                      "notes")}
                        for n, r in trained.items()},
        "fusion": {k: fusion[k] for k in ("status", "best_method", "bundle")},
        "report": report["report_dir"],
        "test_accuracy": report["test_accuracy"],
        "below_chance": report["below_chance"],
        "report_html": report["report_html"],
        "seconds": round(time.perf_counter() - started, 1),
        "phase_seconds": phases,
    }
    print(f"report: {report['report_dir']}/report.md")
    return summary


def demo_configs(configs: dict[str, dict]) -> dict[str, dict]:
    """On the demo dataset the face specialist starts from the shipped FER-2013 ConvNet, and only
    its SVM stage learns from the demo videos: a ConvNet trained from scratch on a few synthetic
    clips learns nothing (and takes most of the demo's time). A user's own setting wins."""
    from emonets.release import shipped

    face, own = shipped("face_cnn"), dict(configs.get("face_cnn") or {})
    if face is None or "cnn_bundle" in own:
        return configs
    return {**configs, "face_cnn": {**own, "cnn_bundle": str(face)}}


def demo_root(store: Store) -> str:
    """The synthetic demo dataset, generated once into the store (nothing from ../shared)."""
    from emonets.datasets.demo.dataset import make_demo_dataset

    root = store.path("demo-data")
    make_demo_dataset(root)  # reuses an existing tree made with the same settings
    return str(root)
