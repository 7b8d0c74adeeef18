"""`emonets report` on a terminal: the last train-all report as Rich tables that read at 80 columns.

report.md is for viewers that render Markdown; printed raw it shows image syntax and its long
hashes wrap mid-line. This view reads report.json instead: numbers in tables, models at or below
chance called out, hashes cut to 12 characters (report.html and report.json hold them whole),
and the paths of the full page and the Markdown at the end. Data-derived text is shown as
plain text (escaped bytes, no Rich markup), like the rest of the CLI's output. It imports
neither pandas nor the report builder, so `emonets report` starts fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from emonets.labels import EMOTIONS
from emonets.media.paths import display_text

HASH_CHARS = 12


def _t(value: Any, style: str = "") -> Text:
    """Data-derived text as a Rich Text (never parsed as markup)."""
    return Text(display_text(str(value)), style=style)


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _short(value: Any) -> str:
    text = str(value)
    return text[:HASH_CHARS] + "…" if len(text) > HASH_CHARS + 1 and " " not in text and "/" not in text else text


def _table(title: str, columns: list[str], *, text_columns: int = 1) -> Table:
    """A borderless table: the first ``text_columns`` columns left-aligned, the figures right."""
    table = Table(title=title, title_justify="left", title_style="bold", show_edge=False, pad_edge=False,
                  padding=(0, 1), header_style="bold")
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i < text_columns else "right", overflow="fold")
    return table


def _models(report: dict) -> Table:
    flagged = {(b["model"], b["split"]) for b in report.get("below_chance", [])}
    total = report.get("clips_per_split", {})
    table = _table("Models (accuracy · macro-F1; ! = at or below chance)",
                   ["model", "kind", "val acc", "val F1", "test acc", "test F1", "test n"], text_columns=2)
    for name, e in report["entries"].items():
        cells: list[Text | str] = [_t(name), "spec" if e["kind"] == "specialist" else _t(e["kind"])]
        for split in ("val", "test"):
            m = e["metrics"].get(split)
            bad = (name, split) in flagged
            cells += [Text(_num(m["accuracy"] if m else None) + ("!" if bad else " "), style="bold red" if bad else ""),
                      _num(m["macro_f1"] if m else None)]
        cells.append(f"{e['scored'].get('test', 0)}/{total.get('test', 0)}")
        table.add_row(*cells)
    return table


def _below_chance(report: dict, console: Console) -> None:
    if "below_chance" not in report:  # a report written before models were checked against chance
        return
    console.print()
    flagged = report["below_chance"]
    if not flagged:
        console.print("No model is at or below chance on any split.")
    else:
        table = _table("At or below chance", ["model", "split", "accuracy", "chance", "clips"], text_columns=2)
        for b in flagged:
            table.add_row(_t(b["model"]), _t(b["split"]), Text(_num(b["accuracy"]), style="bold red"),
                          _num(b["chance"]), str(b["n"]))
        console.print(table)
    if report.get("chance_rule"):
        console.print(_t(report["chance_rule"] + ".", "dim"))


def _summary(report: dict) -> Text | None:
    s = report.get("summary", {})
    if not (s.get("best_specialist") and s.get("selected_fusion_test_accuracy") is not None):
        return None
    return _t(f"Best specialist on test: {s['best_specialist']} {s['best_specialist_test_accuracy']:.3f}; "
              f"fusion {s['selected_fusion']} {s['selected_fusion_test_accuracy']:.3f} "
              f"({s['fusion_gain_points']:+.1f} points). Fusion val figures are in-sample (fitted on val).")


def _coverage(report: dict) -> Table:
    total = report.get("clips_per_split", {})
    splits = [s for s in ("train", "val", "test") if s in total]
    table = _table("Clips scored per specialist", ["specialist", *splits])
    for name, e in report["entries"].items():
        if e["kind"] == "specialist":
            table.add_row(_t(name), *(f"{e['scored'].get(s, 0)}/{total[s]}" for s in splits))
    unscored = report.get("unscored_by_every_specialist", {})
    table.add_row(Text("scored by none", style="italic"), *(str(unscored.get(s, 0)) for s in splits))
    return table


def _trust(report: dict) -> Table | None:
    trust = report.get("fusion_weights")
    if not trust or not trust.get("weights"):
        return None
    specs = trust["specialists"]
    table = _table(f"What the fusion trusts ({trust['method']})", ["class", "trusts", *specs], text_columns=2)
    for row, weights in trust["weights"].items():
        names = trust.get("trusted", {}).get(row, [])
        who = "all equally" if len(names) == len(specs) > 1 else ", ".join(names) or "—"
        table.add_row(_t(row), _t(who), *(f"{weights[s]:.2f}" for s in specs))
    return table


def _per_class_f1(report: dict) -> Table | None:
    """F1 per class on test for every specialist and the selected fusion."""
    selected = report.get("summary", {}).get("selected_fusion")
    names = [n for n, e in report["entries"].items()
             if (e["kind"] == "specialist" or n == selected) and "per_class" in e["metrics"].get("test", {})]
    if not names:
        return None
    table = _table("F1 per class on test", ["class", *names])
    for c in EMOTIONS:
        table.add_row(c, *(_num(report["entries"][n]["metrics"]["test"].get("per_class", {}).get(c, {}).get("f1"))
                           for n in names))
    return table


def _fingerprints(report: dict) -> Table | None:
    fps, bundles = report.get("fingerprints", {}), report.get("bundles", {})
    if not fps and not bundles:
        return None
    table = _table(f"Fingerprints (first {HASH_CHARS} characters)", ["what", "fingerprint", "made"], text_columns=3)
    for key, value in fps.items():
        if key != "fused_bundle":
            table.add_row(_t(key), _t(_short(value)), "")
    for key, b in bundles.items():
        version = b.get("versions", {}).get("emonets")
        table.add_row(_t(f"bundle {key}"), _t(_short(b.get("fingerprint"))),
                      _t(" ".join(str(x) for x in (b.get("created"), f"v{version}" if version else None) if x)))
    return table


def render_report(report_dir: Path, console: Console) -> None:
    """Print the report in ``report_dir`` (its report.json) on ``console``, in lines that fit its width."""
    report_dir = Path(report_dir)
    report = json.loads((report_dir / "report.json").read_text())
    data = report.get("data", {})
    splits = ", ".join(f"{s} {n}" for s, n in sorted(report.get("clips_per_split", {}).items())) or "none"
    console.print(_t(report.get("title", "EmoNets training report"), "bold"),
                  _t(f"({report.get('created', '')})", "dim"))
    console.print(_t(f"Data: {data.get('name', 'unknown')} · clips per split: {splits}"))
    console.print()
    console.print(_models(report))
    summary = _summary(report)
    if summary is not None:
        console.print(summary)
    _below_chance(report, console)
    for part in (_coverage(report), _trust(report), _per_class_f1(report), _fingerprints(report)):
        if part is not None:
            console.print()
            console.print(part)
            if part.title and part.title.startswith("What the fusion trusts"):
                console.print(_t(report["fusion_weights"].get("how", "") + ".", "dim"))
    for note in report.get("notes", []):
        console.print(_t(f"- {note}", "dim"))
    console.print()
    page = report_dir / "report.html"
    console.print(_t(f"Full page (images, per-class figures, per-clip rows): {page}" if page.is_file()
                     else "No report.html: this report predates it (run `emonets train-all` again)."))
    console.print(_t(f"Markdown: {report_dir / 'report.md'}"))
