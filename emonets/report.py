"""The training report: every specialist and fusion method, per split, as Markdown + JSON + PNG.

Truth (label, split) comes from the `clips` table; a specialist's rows with NaN probabilities
count as not scored. Accuracy and macro-F1 are given on every split that has labelled clips;
confusion matrices are drawn for val and test. The fusers are fitted on val, so their val
figures are in-sample (a learned fuser can reach 100% there): the fusion quoted in the summary is
therefore fixed in advance (``primary_fusion``, by default the paper's random search), never
picked by its val or test score. Its test accuracy, and every fusion's, is compared with the
best specialist's test accuracy.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data_catalog.atomic import write_bytes_atomic, write_json_atomic
from emonets.evaluation import confusion_png, metrics_dict
from emonets.labels import LABEL_INDEX, PROB_COLUMNS

SPLITS = ("train", "val", "test")
PLOT_SPLITS = ("val", "test")
FUSION_PREFERENCE = ("random_search", "log_linear", "learned", "mean")  # the default primary fusion: first one present


def _with_truth(rows: pd.DataFrame, clips: pd.DataFrame) -> pd.DataFrame:
    """Rows with label/split taken from `clips` where it knows the clip, else from the rows."""
    rows = rows.copy()
    for col in ("label", "split"):
        if col not in rows:
            rows[col] = ""
    if len(clips):
        truth = clips.drop_duplicates("clip_id").set_index("clip_id")
        for col in ("label", "split"):
            known = truth[col].reindex(rows["clip_id"]).to_numpy()
            rows[col] = np.where(pd.notna(known), known, rows[col].fillna("").to_numpy())
    rows["label"] = rows["label"].fillna("").astype(str)
    rows["split"] = rows["split"].fillna("").astype(str)
    return rows


def _scored(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows that hold finite probabilities (a NaN row means: could not score this clip)."""
    if not len(rows):
        return rows
    return rows[np.isfinite(rows[list(PROB_COLUMNS)].to_numpy(np.float64)).all(1)]


def _metrics(rows: pd.DataFrame) -> dict[str, dict]:
    out = {}
    for split in SPLITS:
        part = rows[(rows["split"] == split) & rows["label"].isin(LABEL_INDEX)]
        if len(part):
            y = part["label"].map(LABEL_INDEX).to_numpy()
            out[split] = metrics_dict(y, part[list(PROB_COLUMNS)].to_numpy(np.float64).argmax(1))
    return out


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name))


def describe_data(clips: pd.DataFrame) -> dict[str, Any]:
    """Which datasets the clips come from; a data root written by the composer is named "composed"."""
    from emonets.compose import is_composed

    datasets = ({str(k): int(v) for k, v in clips["dataset"].value_counts().items()}
                if "dataset" in clips and len(clips) else {})
    roots = set()
    if "path" in clips:
        for p in clips["path"].dropna().astype(str):
            parents = Path(p).parents
            if len(parents) > 2:
                roots.add(parents[2])  # <root>/<Split>/<Emotion>/<clip>
    composed = sorted(str(r) for r in roots if is_composed(r))
    name = ("composed (FER-2013 faces + RAVDESS speech; not AFEW)" if composed
            else ", ".join(sorted(datasets)) or "unknown")
    return {"name": name, "datasets": datasets, "composed_roots": composed}


def build_report(predictions: pd.DataFrame, fused: pd.DataFrame, clips: pd.DataFrame, out_dir: Path | str, *,
                 fingerprints: dict[str, Any] | None = None, notes: list[str] | None = None,
                 title: str | None = None, primary_fusion: str | None = None) -> dict:
    """Compute per-specialist and per-method metrics; write report.md, report.json and confusion PNGs.

    Returns the report dict; ``report["test_accuracy"]`` (and ``val_accuracy``,
    ``test_macro_f1``, ``val_macro_f1``) map every specialist and fusion method to a number.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clips = clips if clips is not None else pd.DataFrame(columns=["clip_id", "label", "split"])
    per_split = {s: int(n) for s, n in clips["split"].value_counts().items()} if len(clips) else {}
    entries: dict[str, dict] = {}
    scored_ids: set[str] = set()
    for kind, table, key in (("specialist", predictions, "specialist"), ("fusion", fused, "method")):
        if table is None or not len(table):
            continue
        for name, rows in table.groupby(key, sort=True):
            rows = _scored(_with_truth(rows, clips))
            if kind == "specialist":
                scored_ids.update(rows["clip_id"].astype(str))
            metrics = _metrics(rows)
            pngs = {}
            for split in PLOT_SPLITS:
                if split in metrics:
                    m = metrics[split]
                    png = out_dir / f"confusion_{_safe(name)}_{split}.png"
                    confusion_png(m["confusion"], png, f"{name} — {split} (n={m['n']}, acc {m['accuracy']:.3f})")
                    pngs[split] = png.name
            scored = {s: int(n) for s, n in rows["split"].value_counts().items()}
            entries[str(name)] = {"kind": kind, "scored": scored,
                                  "coverage": {s: round(scored.get(s, 0) / n, 4) for s, n in per_split.items() if n},
                                  "metrics": metrics, "confusion_png": pngs}
    unscored = clips[~clips["clip_id"].astype(str).isin(scored_ids)] if len(clips) else clips
    report = {
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "title": title or "EmoNets training report",
        "data": describe_data(clips),
        "clips_per_split": per_split,
        "unscored_by_every_specialist": ({s: int(n) for s, n in unscored["split"].value_counts().items()}
                                         if len(unscored) else {}),
        "entries": entries,
        "fingerprints": fingerprints or {},
        "notes": list(notes or []),
    }
    for split in PLOT_SPLITS:
        for metric in ("accuracy", "macro_f1"):
            report[f"{split}_{metric}"] = {n: e["metrics"][split][metric] for n, e in entries.items()
                                          if split in e["metrics"]}
    report["summary"] = summarise(report, primary_fusion=primary_fusion)
    write_json_atomic(out_dir / "report.json", report)
    write_bytes_atomic(out_dir / "report.md", render_markdown(report).encode())
    return report


def summarise(report: dict, *, primary_fusion: str | None = None) -> dict[str, Any]:
    """Best specialist on test, the selected fusion's test accuracy and every fusion's gain (points).

    The selected fusion is ``primary_fusion`` or, by default, the first of FUSION_PREFERENCE
    present; never the one scoring best on val (in-sample for fusers) or on test (the report split).
    """
    kind = {n: e["kind"] for n, e in report["entries"].items()}
    test = report.get("test_accuracy", {})
    specs = {n: a for n, a in test.items() if kind[n] == "specialist"}
    fusions = [n for n in report["entries"] if kind[n] == "fusion"]
    out: dict[str, Any] = {"best_specialist": None, "best_specialist_test_accuracy": None,
                           "selected_fusion": None, "selected_fusion_test_accuracy": None, "selected_by": None,
                           "fusion_gain_points": None, "gain_points_by_fusion": {}}
    if specs:
        best = max(sorted(specs), key=specs.get)
        out.update(best_specialist=best, best_specialist_test_accuracy=specs[best])
        out["gain_points_by_fusion"] = {n: round(100 * (test[n] - specs[best]), 2) for n in fusions if n in test}
    if primary_fusion is not None and primary_fusion not in fusions:
        raise ValueError(f"primary fusion {primary_fusion!r} is not among the fused methods {fusions}")
    ranked = [n for n in FUSION_PREFERENCE if n in fusions] + sorted(set(fusions) - set(FUSION_PREFERENCE))
    chosen = primary_fusion or (ranked[0] if ranked else None)
    if chosen is not None:
        out["selected_fusion"] = chosen
        out["selected_by"] = ("given (primary_fusion)" if primary_fusion else
                              "fixed in advance: the first of " + ", ".join(FUSION_PREFERENCE) + " present")
        if chosen in test:
            out["selected_fusion_test_accuracy"] = test[chosen]
            out["fusion_gain_points"] = out["gain_points_by_fusion"].get(chosen)
    return out


def render_markdown(report: dict) -> str:
    """The report as a Markdown page: one table of every model, the summary, the confusion PNGs."""
    data = report.get("data", {})
    lines = [f"# {report.get('title', 'EmoNets training report')} ({report['created']})", ""]
    if data:
        lines += [f"Data: **{data.get('name', 'unknown')}**", ""]
    lines.append("Clips per split: " + (", ".join(f"{s} {n}" for s, n in sorted(report["clips_per_split"].items()))
                                        or "none"))
    if any(report.get("unscored_by_every_specialist", {}).values()):
        lines.append("Scored by no specialist (fused as uniform): " + ", ".join(
            f"{s} {n}" for s, n in sorted(report["unscored_by_every_specialist"].items())))
    lines += ["", "| model | kind | scored val | scored test | val acc | val macro-F1 | test acc | test macro-F1 |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    total = report["clips_per_split"]
    for name, e in report["entries"].items():
        m = e["metrics"]

        def cell(split: str, key: str) -> str:
            return f"{m[split][key]:.3f}" if split in m else "—"

        def scored(split: str) -> str:
            return f"{e['scored'].get(split, 0)}/{total.get(split, 0)}"

        lines.append(f"| {name} | {e['kind']} | {scored('val')} | {scored('test')} | {cell('val', 'accuracy')} "
                     f"| {cell('val', 'macro_f1')} | {cell('test', 'accuracy')} | {cell('test', 'macro_f1')} |")
    lines.append("")
    s = report.get("summary", {})
    if s.get("best_specialist") and s.get("selected_fusion_test_accuracy") is not None:
        others = ", ".join(f"{n} {g:+.1f}" for n, g in s["gain_points_by_fusion"].items() if n != s["selected_fusion"])
        lines.append(f"Best specialist on test: **{s['best_specialist']}** {s['best_specialist_test_accuracy']:.3f}; "
                     f"fusion **{s['selected_fusion']}** {s['selected_fusion_test_accuracy']:.3f} on test "
                     f"({s['fusion_gain_points']:+.1f} points" + (f"; {others}" if others else "") + ").")
        lines.append("")
    if any(e["kind"] == "fusion" for e in report["entries"].values()):
        lines += ["Fusion val figures are in-sample: the fusers were fitted on val. Compare on test.", ""]
    for note in report.get("notes", []):
        lines.append(f"- {note}")
    if report.get("notes"):
        lines.append("")
    lines.append("## Confusion matrices")
    lines.append("")
    for name, e in report["entries"].items():
        for split, png in e["confusion_png"].items():
            lines.append(f"- {name} ({split}): ![{name} {split}]({png})")
    if report.get("fingerprints"):
        lines += ["", "## Fingerprints", "", "```", *(f"{k}: {v}" for k, v in report["fingerprints"].items()), "```"]
    return "\n".join(lines) + "\n"
