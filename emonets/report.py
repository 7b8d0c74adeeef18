"""The training report: every specialist and fusion method, per split, as Markdown + JSON + PNG."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data_catalog.atomic import write_bytes_atomic, write_json_atomic
from emonets.evaluation import confusion_png, metrics_dict
from emonets.labels import LABEL_INDEX, PROB_COLUMNS

SPLITS = ("train", "val", "test")


def _metrics(rows: pd.DataFrame) -> dict[str, dict]:
    out = {}
    for split in SPLITS:
        part = rows[(rows["split"] == split) & rows["label"].isin(LABEL_INDEX)]
        if len(part):
            y = part["label"].map(LABEL_INDEX).to_numpy()
            out[split] = metrics_dict(y, part[list(PROB_COLUMNS)].to_numpy().argmax(1))
    return out


def build_report(predictions: pd.DataFrame, fused: pd.DataFrame, clips: pd.DataFrame, out_dir: Path | str, *,
                 fingerprints: dict[str, Any] | None = None, notes: list[str] | None = None) -> dict:
    """Compute per-specialist and per-method metrics, write report.md/json and confusion PNGs."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    eligible = {split: int(n) for split, n in clips["split"].value_counts().items()}
    entries: dict[str, dict] = {}
    for kind, table, key in (("specialist", predictions, "specialist"), ("fusion", fused, "method")):
        for name, rows in table.groupby(key, sort=True):
            metrics = _metrics(rows)
            pngs = {}
            for split, m in metrics.items():
                if split in ("val", "test"):
                    png = out_dir / f"confusion_{name}_{split}.png"
                    confusion_png(m["confusion"], png, title=f"{name} — {split} (n={m['n']}, acc {m['accuracy']:.3f})")
                    pngs[split] = png.name
            entries[name] = {"kind": kind, "scored": {s: int(n) for s, n in rows["split"].value_counts().items()},
                             "metrics": metrics, "confusion_png": pngs}
    test_acc = {n: e["metrics"]["test"]["accuracy"] for n, e in entries.items() if "test" in e["metrics"]}
    val_acc = {n: e["metrics"]["val"]["accuracy"] for n, e in entries.items() if "val" in e["metrics"]}
    report = {
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "clips_per_split": eligible,
        "entries": entries,
        "test_accuracy": test_acc,
        "val_accuracy": val_acc,
        "fingerprints": fingerprints or {},
        "notes": notes or [],
    }
    write_json_atomic(out_dir / "report.json", report)
    write_bytes_atomic(out_dir / "report.md", render_markdown(report).encode())
    return report


def render_markdown(report: dict) -> str:
    """The report as a Markdown page (a table per split, links to the confusion PNGs)."""
    lines = [f"# EmoNets training report ({report['created']})", ""]
    lines.append("Clips per split: " + ", ".join(f"{s} {n}" for s, n in sorted(report["clips_per_split"].items())))
    lines.append("")
    lines.append("| model | kind | scored (val/test) | val acc | val macro-F1 | test acc | test macro-F1 |")
    lines.append("| --- | --- | --- | --- | --- | --- | --- |")
    for name, e in report["entries"].items():
        m = e["metrics"]

        def cell(split: str, key: str) -> str:
            return f"{m[split][key]:.3f}" if split in m else "—"

        scored = f"{e['scored'].get('val', 0)}/{e['scored'].get('test', 0)}"
        lines.append(f"| {name} | {e['kind']} | {scored} | {cell('val', 'accuracy')} | {cell('val', 'macro_f1')} "
                     f"| {cell('test', 'accuracy')} | {cell('test', 'macro_f1')} |")
    lines.append("")
    specs = {n: a for n, a in report["test_accuracy"].items() if report["entries"][n]["kind"] == "specialist"}
    fusions = {n: a for n, a in report["test_accuracy"].items() if report["entries"][n]["kind"] == "fusion"}
    if specs and fusions:
        best_s = max(specs, key=specs.get)
        best_f = max(fusions, key=fusions.get)
        lines.append(f"Best specialist on test: **{best_s}** {specs[best_s]:.3f}; best fusion: **{best_f}** "
                     f"{fusions[best_f]:.3f} ({(fusions[best_f] - specs[best_s]) * 100:+.1f} points).")
        lines.append("")
    for note in report.get("notes", []):
        lines.append(f"- {note}")
    lines.append("")
    lines.append("## Confusion matrices")
    for name, e in report["entries"].items():
        for split, png in e["confusion_png"].items():
            lines.append(f"- {name} ({split}): ![{name} {split}]({png})")
    if report.get("fingerprints"):
        lines += ["", "## Fingerprints", "", "```", *(f"{k}: {v}" for k, v in report["fingerprints"].items()), "```"]
    return "\n".join(lines) + "\n"
