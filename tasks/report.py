"""The report task: metrics of every specialist and fusion method, as files in the store and as
Prefect artifacts (a table and the Markdown) visible in the Prefect UI."""

from __future__ import annotations

import json
import shutil
import time

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from data_catalog import Store
from emonets.bundle import replace_dir
from emonets.report import build_report, render_markdown
from tasks.fuse import fused_path
from tasks.train import partitions_fingerprint


@task(name="report")
def report_task(store_root: str, clip_partitions: list[str], specialists: list[str]) -> dict:
    store = Store(store_root)
    clips = store.read("clips", partitions=clip_partitions)
    ids = set(clips["clip_id"])
    predictions = store.read("predictions", partitions=[s for s in specialists if s in store.partitions("predictions")])
    fused = store.read("fused_predictions")
    fingerprints = {"clips": partitions_fingerprint(store, "clips", clip_partitions),
                    **{f"predictions/{s}": store.manifest("predictions", s).fingerprint
                       for s in specialists if store.manifest("predictions", s)},
                    "fused_bundle": str(fused_path(store))}
    out = store.path("reports", time.strftime("%Y%m%d-%H%M%S"))
    bundle = fused_path(store) / "bundle.json"
    method = json.loads(bundle.read_text())["config"]["method"] if bundle.is_file() else None
    report = build_report(predictions[predictions["clip_id"].isin(ids)], fused[fused["clip_id"].isin(ids)], clips,
                          out, fingerprints=fingerprints, primary_fusion=method,
                          notes=["Fusion weights are fitted on the val split and reported on test, which they never saw."])
    latest = store.path("reports", "latest")
    tmp = latest.with_name(".latest-tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(out, tmp)
    replace_dir(tmp, latest)
    rows = [{"model": n, "kind": e["kind"],
             **{f"{s}_accuracy": round(e["metrics"][s]["accuracy"], 4) for s in ("val", "test") if s in e["metrics"]},
             **{f"{s}_macro_f1": round(e["metrics"][s]["macro_f1"], 4) for s in ("val", "test") if s in e["metrics"]}}
            for n, e in report["entries"].items()]
    create_table_artifact(key="emonets-metrics", table=rows, description="EmoNets: accuracy and macro-F1 per model")
    create_markdown_artifact(key="emonets-report", markdown=render_markdown(report), description="EmoNets training report")
    return {"report_dir": str(out), "test_accuracy": report["test_accuracy"], "val_accuracy": report["val_accuracy"]}
