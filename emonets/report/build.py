"""The training report: every specialist and fusion method, per split, as Markdown + JSON + PNG + HTML.

Truth (label, split) comes from the `clips` table; a specialist's rows with NaN probabilities
count as not scored. Accuracy, macro-F1 and per-class precision / recall / F1 are given on every
split that has labelled clips; confusion matrices are drawn for val and test. The fusers are
fitted on val, so their val figures are in-sample (a learned fuser can reach 100% there): the
fusion quoted in the summary is therefore fixed in advance (``primary_fusion``, by default the
paper's random search), never picked by its val or test score. Its test accuracy, and every
fusion's, is compared with the best specialist's test accuracy.

A model whose accuracy on a split is at or below chance (CHANCE_RULE) is flagged: on a small or
lopsided split "always say the commonest class" already scores well, and a model that does not
beat it has learned nothing usable there.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from data_catalog.atomic import write_bytes_atomic, write_json_atomic
from emonets.report.confusion_plot import confusion_png
from emonets.evaluation import metrics_dict
from emonets.labels import EMOTIONS, LABEL_INDEX, PROB_COLUMNS

SPLITS = ("train", "val", "test")
PLOT_SPLITS = ("val", "test")
FUSION_PREFERENCE = ("random_search", "log_linear", "learned", "mean")  # the default primary fusion: first one present
CHANCE_RULE = ("Chance for a model on a split is the share of the most common true class among the labelled clips "
               "it was scored on there: what always answering that class scores (never below 1 / the classes "
               "present); a model whose accuracy is at or below it is flagged")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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


def per_class(cm) -> dict[str, dict[str, float | int | None]]:
    """Precision, recall, F1 and support per class name, from a 7x7 confusion (rows true).

    None where a figure is undefined (precision of a class never predicted, recall of a class
    never true), so an absent class does not read as a failure.
    """
    cm = np.asarray(cm)
    out = {}
    for i, name in enumerate(EMOTIONS):
        tp, support, predicted = int(cm[i, i]), int(cm[i].sum()), int(cm[:, i].sum())
        out[name] = {"precision": tp / predicted if predicted else None,
                     "recall": tp / support if support else None,
                     "f1": 2 * tp / (support + predicted) if support + predicted else None,
                     "support": support}
    return out


def chance_level(y: np.ndarray) -> float:
    """The accuracy of always answering the commonest class of ``y`` (class indices); 0.0 for none.

    It is never below 1 / (classes present), the accuracy of guessing uniformly among them.
    """
    y = np.asarray(y, np.int64)
    return float(np.bincount(y).max() / len(y)) if len(y) else 0.0


def _metrics(rows: pd.DataFrame) -> dict[str, dict]:
    out = {}
    for split in SPLITS:
        part = rows[(rows["split"] == split) & rows["label"].isin(LABEL_INDEX)]
        if len(part):
            y = part["label"].map(LABEL_INDEX).to_numpy()
            m = metrics_dict(y, part[list(PROB_COLUMNS)].to_numpy(np.float64).argmax(1))
            out[split] = {**m, "per_class": per_class(m["confusion"]), "chance": chance_level(y),
                          "classes_present": int(len(np.unique(y)))}
    return out


def below_chance(entries: dict[str, dict]) -> list[dict[str, Any]]:
    """Every (model, split) whose accuracy is at or below its chance level (CHANCE_RULE)."""
    out = []
    for name, e in entries.items():
        for split in SPLITS:
            m = e["metrics"].get(split)
            if m is not None and m["accuracy"] <= m["chance"] + 1e-9:
                out.append({"model": name, "kind": e["kind"], "split": split,
                            "accuracy": round(m["accuracy"], 4), "chance": round(m["chance"], 4), "n": m["n"]})
    return out


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name))


def _top_predictions(table: pd.DataFrame | None, key: str) -> dict[str, dict[str, tuple[str, float]]]:
    """model -> clip_id -> (predicted label, its probability), for the rows that hold finite probabilities."""
    out: dict[str, dict[str, tuple[str, float]]] = {}
    if table is None or not len(table):
        return out
    for name, rows in table.groupby(key, sort=True):
        rows = _scored(rows)
        probs = rows[list(PROB_COLUMNS)].to_numpy(np.float64)
        best = probs.argmax(1) if len(probs) else np.zeros(0, np.int64)
        out[str(name)] = {str(c): (EMOTIONS[b], round(float(p[b]), 4))
                          for c, b, p in zip(rows["clip_id"], best, probs)}  # a repeated clip: the last row wins
    return out


def clip_rows(predictions: pd.DataFrame, fused: pd.DataFrame | None, clips: pd.DataFrame,
              selected_fusion: str | None) -> list[dict[str, Any]]:
    """One row per clip: its split and true label, each specialist's predicted label and top
    probability (None where it could not score the clip) and the selected fusion's prediction.

    Clips are those of the `clips` table plus any clip only the prediction tables name, in
    split order (train, val, test, other) then by id.
    """
    specs = _top_predictions(predictions, "specialist")
    fusion = _top_predictions(fused, "method").get(selected_fusion or "", {})
    names = sorted(specs)
    truth = clips.drop_duplicates("clip_id").set_index("clip_id") if len(clips) else None
    ids = set(map(str, clips["clip_id"])) if len(clips) else set()
    for table in (predictions, fused):
        if table is not None and len(table):
            ids.update(map(str, table["clip_id"]))
    rows = []
    for cid in ids:
        label = str(truth["label"].get(cid, "")) if truth is not None else ""
        split = str(truth["split"].get(cid, "")) if truth is not None else ""
        fused_top = fusion.get(cid)
        rows.append({"clip_id": cid, "split": split, "label": label if label in LABEL_INDEX else None,
                     "specialists": {n: ({"label": specs[n][cid][0], "p": specs[n][cid][1]} if cid in specs[n]
                                         else None) for n in names},
                     "fused": ({"method": selected_fusion, "label": fused_top[0], "p": fused_top[1]}
                               if fused_top else None)})
    order = {s: i for i, s in enumerate(SPLITS)}
    return sorted(rows, key=lambda r: (order.get(r["split"], len(SPLITS)), r["clip_id"]))


def describe_data(clips: pd.DataFrame) -> dict[str, Any]:
    """Which datasets the clips come from; a data root written by the composer is named "composed"."""
    from emonets.datasets.compose.dataset import is_composed

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


def _write_timelines(timelines: Mapping[str, Any] | Sequence[Any] | None, out_dir: Path) -> list[dict[str, str]]:
    """Copy the given timeline PNGs (bytes or paths; a mapping's keys are captions) into the report folder."""
    if not timelines:
        return []
    items = list(timelines.items()) if isinstance(timelines, Mapping) else [(None, t) for t in timelines]
    out = []
    for i, (caption, image) in enumerate(items):
        data = bytes(image) if isinstance(image, (bytes, bytearray, memoryview)) else Path(image).read_bytes()
        if not data.startswith(PNG_SIGNATURE):
            raise ValueError(f"timeline {caption or image!r} is not a PNG image")
        caption = str(caption) if caption is not None else (
            Path(image).stem if not isinstance(image, (bytes, bytearray, memoryview)) else f"clip {i + 1}")
        name = f"timeline_{i:02d}_{_safe(caption)[:60]}.png"
        write_bytes_atomic(out_dir / name, data)
        out.append({"caption": caption, "png": name})
    return out


def build_report(predictions: pd.DataFrame, fused: pd.DataFrame, clips: pd.DataFrame, out_dir: Path | str, *,
                 fingerprints: dict[str, Any] | None = None, notes: list[str] | None = None,
                 title: str | None = None, primary_fusion: str | None = None,
                 fusion: dict[str, Any] | None = None, bundles: dict[str, dict | None] | None = None,
                 val_timelines: Mapping[str, Any] | Sequence[Any] | None = None) -> dict:
    """Compute per-specialist and per-method metrics; write report.md, report.json, report.html and
    the confusion PNGs.

    ``fusion`` is ``fusion_trust`` of the fused bundle (which specialist it trusts per class),
    ``bundles`` maps a model name to ``describe_bundle`` of its bundle, ``val_timelines`` holds
    PNG timelines of a few val clips (bytes or paths; a mapping's keys are the captions), copied
    beside the report and embedded in the page. Returns the report dict; ``report["test_accuracy"]``
    (and ``val_accuracy``, ``test_macro_f1``, ``val_macro_f1``) map every specialist and fusion
    method to a number, ``report["below_chance"]`` lists the (model, split) at or below chance.
    """
    from emonets.report.html import write_html

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
        "chance_rule": CHANCE_RULE,
        "below_chance": below_chance(entries),
        "fusion_weights": fusion,
        "fingerprints": fingerprints or {},
        "bundles": {k: v for k, v in (bundles or {}).items() if v},
        "timelines": _write_timelines(val_timelines, out_dir),
        "notes": list(notes or []),
    }
    for split in PLOT_SPLITS:
        for metric in ("accuracy", "macro_f1"):
            report[f"{split}_{metric}"] = {n: e["metrics"][split][metric] for n, e in entries.items()
                                          if split in e["metrics"]}
    report["summary"] = summarise(report, primary_fusion=primary_fusion)
    report["per_clip"] = clip_rows(predictions, fused, clips, report["summary"]["selected_fusion"])
    write_json_atomic(out_dir / "report.json", report)
    write_bytes_atomic(out_dir / "report.md", render_markdown(report).encode())
    write_html(report, out_dir)
    return report


def summarise(report: dict, *, primary_fusion: str | None = None) -> dict[str, Any]:
    """Best specialist on test, the selected fusion's test accuracy, every fusion's gain (points)
    and the models at or below chance.

    The selected fusion is ``primary_fusion`` or, by default, the first of FUSION_PREFERENCE
    present; never the one scoring best on val (in-sample for fusers) or on test (the report split).
    """
    kind = {n: e["kind"] for n, e in report["entries"].items()}
    test = report.get("test_accuracy", {})
    specs = {n: a for n, a in test.items() if kind[n] == "specialist"}
    fusions = [n for n in report["entries"] if kind[n] == "fusion"]
    out: dict[str, Any] = {"best_specialist": None, "best_specialist_test_accuracy": None,
                           "selected_fusion": None, "selected_fusion_test_accuracy": None, "selected_by": None,
                           "fusion_gain_points": None, "gain_points_by_fusion": {},
                           "below_chance": list(report.get("below_chance", []))}
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


def flagged_splits(report: dict, name: str) -> list[str]:
    """The splits on which model ``name`` is at or below chance."""
    return [b["split"] for b in report.get("below_chance", []) if b["model"] == name]


def render_markdown(report: dict) -> str:
    """The report as a Markdown page: one table of every model, the chance flags, the summary,
    what the fusion trusts, the confusion PNGs and the fingerprints."""
    data = report.get("data", {})
    lines = [f"# {report.get('title', 'EmoNets training report')} ({report['created']})", ""]
    if data:
        lines += [f"Data: **{data.get('name', 'unknown')}**", ""]
    lines.append("Clips per split: " + (", ".join(f"{s} {n}" for s, n in sorted(report["clips_per_split"].items()))
                                        or "none"))
    if any(report.get("unscored_by_every_specialist", {}).values()):
        lines.append("Scored by no specialist (fused as uniform): " + ", ".join(
            f"{s} {n}" for s, n in sorted(report["unscored_by_every_specialist"].items())))
    lines += ["", "| model | kind | scored val | scored test | val acc | val macro-F1 | test acc | test macro-F1 "
              "| at/below chance |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    total = report["clips_per_split"]
    for name, e in report["entries"].items():
        m = e["metrics"]

        def cell(split: str, key: str) -> str:
            return f"{m[split][key]:.3f}" if split in m else "—"

        def scored(split: str) -> str:
            return f"{e['scored'].get(split, 0)}/{total.get(split, 0)}"

        flags = ", ".join(flagged_splits(report, name)) or "—"
        lines.append(f"| {name} | {e['kind']} | {scored('val')} | {scored('test')} | {cell('val', 'accuracy')} "
                     f"| {cell('val', 'macro_f1')} | {cell('test', 'accuracy')} | {cell('test', 'macro_f1')} "
                     f"| {flags} |")
    lines.append("")
    if report.get("chance_rule"):
        lines += [f"{report['chance_rule']}.", ""]
    if report.get("below_chance"):
        lines.append("**At or below chance:** " + "; ".join(
            f"{b['model']} on {b['split']} ({b['accuracy']:.3f} ≤ chance {b['chance']:.3f}, n={b['n']})"
            for b in report["below_chance"]) + ".")
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
    lines += ["The full page, with every image embedded and per-class figures: report.html", ""]
    lines += _markdown_trust(report.get("fusion_weights"))
    lines.append("## Confusion matrices")
    lines.append("")
    for name, e in report["entries"].items():
        for split, png in e["confusion_png"].items():
            lines.append(f"- {name} ({split}): ![{name} {split}]({png})")
    if report.get("timelines"):
        lines += ["", "## Timelines of val clips", ""]
        lines += [f"- {t['caption']}: ![{t['caption']}]({t['png']})" for t in report["timelines"]]
    if report.get("fingerprints") or report.get("bundles"):
        lines += ["", "## Fingerprints", "", "```", *(f"{k}: {v}" for k, v in report.get("fingerprints", {}).items()),
                  *(f"bundle {k}: {b['fingerprint']} (trained on {b.get('trained_on')}, "
                    f"emonets {b.get('versions', {}).get('emonets', '?')}, {b.get('created')})"
                    + (f"; {b['retraining']}" if b.get("retraining") else "")
                    for k, b in report.get("bundles", {}).items() if b), "```"]
    return "\n".join(lines) + "\n"


def _markdown_trust(trust: dict | None) -> list[str]:
    if not trust:
        return []
    specs = trust["specialists"]
    lines = [f"## What the fusion trusts ({trust['method']})", "", trust["how"] + ".", "",
             "| class | trusts | " + " | ".join(specs) + " |",
             "| --- | --- | " + " | ".join("---" for _ in specs) + " |"]
    for row, weights in trust["weights"].items():
        lines.append(f"| {row} | {trust_text(trust, row)} | " + " | ".join(f"{weights[s]:.2f}" for s in specs) + " |")
    return lines + [""]


def trust_text(trust: dict, row: str) -> str:
    """Who the fuser trusts most for one class: a name, several tied names, or "all equally"."""
    names = trust.get("trusted", {}).get(row, [])
    if len(names) > 1 and len(names) == len(trust["specialists"]):
        return "all equally"
    return ", ".join(names) or "—"
