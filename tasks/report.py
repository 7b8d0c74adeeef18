"""The report task: metrics of every specialist and fusion method, as files in the store
(report.md, report.json, report.html, PNGs) and as Prefect artifacts visible in the Prefect UI
(a metrics table, the Markdown, and a link to the self-contained HTML page)."""

from __future__ import annotations

import json
import shutil
import time

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from data_catalog import Store
from emonets import registry
from emonets.bundle import BundleError, replace_dir
from emonets.features.extraction import work_units
from emonets.report.build import build_report, flagged_splits, render_markdown
from emonets.report.models import describe_bundle, fusion_trust
from emonets.report.timelines import val_timeline_pngs
from emonets.freshness import bundle_path, fused_path, partitions_fingerprint


def data_fingerprints(store: Store, clips, clip_partitions: list[str], specialists: list[str]) -> dict[str, str]:
    """Content fingerprints of what the report's models were made from: the clips partitions
    (together and each), each specialist's feature partitions for these clips, its predictions."""
    out = {"clips": partitions_fingerprint(store, "clips", clip_partitions)}
    for key in sorted(clip_partitions):
        manifest = store.manifest("clips", key)
        if manifest is not None:
            out[f"clips/{key}"] = manifest.fingerprint
    unit_keys = [u.key for u in work_units(clips)] if len(clips) else []
    known = set(registry.specialists())
    for table in sorted({registry.specialist(s).table for s in specialists if s in known}):
        present = set(store.partitions(table))
        out[f"features/{table}"] = partitions_fingerprint(store, table, [k for k in unit_keys if k in present])
    for s in specialists:
        manifest = store.manifest("predictions", s)
        if manifest is not None:
            out[f"predictions/{s}"] = manifest.fingerprint
    out["fused_bundle"] = str(fused_path(store))
    return out


def model_bundles(store: Store, specialists: list[str]) -> dict[str, dict | None]:
    """describe_bundle of the fused bundle and of each specialist's copy inside it (what `predict`
    loads), or of the specialist's own bundle in the store when the fused one has no copy."""
    fused = fused_path(store)
    return {"fused": describe_bundle(fused),
            **{s: describe_bundle(fused / "specialists" / s) or describe_bundle(bundle_path(store, s))
               for s in specialists}}


@task(name="report", cache_policy=NO_CACHE, persist_result=False)
def report_task(store_root: str, clip_partitions: list[str], specialists: list[str],
                val_timelines: dict[str, bytes] | list[str] | None = None) -> dict:
    """Write the report of this run's clips; ``val_timelines`` are PNG paths of a few val clips'
    timelines, embedded in the page (default: the first three val clips', drawn with the fused model). Returns the report folder, accuracies and the models at or
    below chance (``below_chance``: model, kind, split, accuracy, chance, n)."""
    store = Store(store_root)
    clips = store.read("clips", partitions=clip_partitions)
    ids = set(clips["clip_id"])
    predictions = store.read("predictions", partitions=[s for s in specialists if s in store.partitions("predictions")])
    fused = store.read("fused_predictions")
    out = store.path("reports", time.strftime("%Y%m%d-%H%M%S"))
    bundle = fused_path(store) / "bundle.json"
    method = json.loads(bundle.read_text())["config"]["method"] if bundle.is_file() else None
    notes = ["Fusion weights are fitted on the val split and reported on test, which they never saw."]
    try:
        trust = fusion_trust(fused_path(store))
    except (BundleError, ValueError, KeyError, OSError) as err:
        trust = None
        notes.append(f"The fused bundle's weights could not be read: {err}")
    if val_timelines is None and bundle.is_file():
        try:
            val_timelines = val_timeline_pngs(store, fused_path(store), clips)
        except Exception as err:  # a picture must not cost the report
            notes.append(f"The val clips' timelines could not be drawn: {type(err).__name__}: {err}")
    report = build_report(predictions[predictions["clip_id"].isin(ids)], fused[fused["clip_id"].isin(ids)], clips,
                          out, fingerprints=data_fingerprints(store, clips, clip_partitions, specialists),
                          primary_fusion=method, notes=notes, fusion=trust,
                          bundles=model_bundles(store, specialists), val_timelines=val_timelines)
    latest = store.path("reports", "latest")
    tmp = latest.with_name(".latest-tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(out, tmp)
    replace_dir(tmp, latest)
    _artifacts(report, out / "report.html")
    return {"report_dir": str(out), "report_html": str(out / "report.html"),
            "test_accuracy": report["test_accuracy"], "val_accuracy": report["val_accuracy"],
            "below_chance": report["below_chance"]}


def _artifacts(report: dict, page) -> None:
    """The Prefect UI's view: a metrics table, the Markdown (its images do not load there, so it
    names the page that embeds them) and a link artifact to the page."""
    rows = [{"model": n, "kind": e["kind"],
             **{f"{s}_accuracy": round(e["metrics"][s]["accuracy"], 4) for s in ("val", "test") if s in e["metrics"]},
             **{f"{s}_macro_f1": round(e["metrics"][s]["macro_f1"], 4) for s in ("val", "test") if s in e["metrics"]},
             "at_or_below_chance": ", ".join(flagged_splits(report, n))}
            for n, e in report["entries"].items()]
    create_table_artifact(key="emonets-metrics", table=rows, description="EmoNets: accuracy and macro-F1 per model")
    markdown = (f"**Full report page (self-contained HTML, images embedded):** `{page}`\n\n"
                f"[open report.html]({page.as_uri()})\n\n" + render_markdown(report))
    create_markdown_artifact(key="emonets-report", markdown=markdown, description="EmoNets training report")
    create_link_artifact(key="emonets-report-page", link=page.as_uri(), link_text=f"report.html ({page})",
                         description="EmoNets training report: the self-contained HTML page")
