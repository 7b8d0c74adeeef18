"""The training report as one self-contained HTML page (report.html beside report.md).

Everything the page shows is inside the file: the CSS is inline and every image is a base64
``data:`` URI, so the page opens the same from a laptop, an e-mail or a CI artifact, offline,
and fetches nothing from any host. All data-derived text is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from data_catalog.atomic import write_bytes_atomic
from emonets.labels import EMOTIONS
from emonets.media.paths import display_text
from emonets.report.build import PLOT_SPLITS, SPLITS, flagged_splits, trust_text

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1100px;
color:#1f2328;padding:0 1rem;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:right}
th:first-child,td:first-child,td.text,th.text{text-align:left}
thead th{background:#f6f8fa}
td.flag{background:#ffebe9;color:#82071e;font-weight:600}
td.best{background:#dafbe1;font-weight:600}
td.wrong{color:#82071e}td.right{color:#116329}
.warn{background:#fff8c5;border:1px solid #d4a72c;padding:.6rem 1rem;border-radius:6px}
.muted{color:#59636e;font-size:.9rem}
.images{display:flex;flex-wrap:wrap;gap:1rem}
figure{margin:0}figcaption{font-size:.85rem;color:#59636e;text-align:center}
img{max-width:100%;height:auto;border:1px solid #d0d7de}
code,.hash{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.85rem;word-break:break-all}
details summary{cursor:pointer;font-weight:600}
"""


def _e(value: Any) -> str:
    """Data-derived text, escaped for HTML (a non-UTF-8 byte of a file name shown as ``\\xff``)."""
    return html.escape(display_text(str(value)))


def _num(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _img(path: Path, alt: str) -> str:
    """An <img> whose source is the PNG's bytes as a data URI (or a note when the file is gone)."""
    if not path.is_file():
        return f'<p class="muted">({_e(path.name)} is missing)</p>'
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _table(head: list[str], rows: list[list[str]], *, raw_head: bool = False) -> str:
    """A table from cells that are already HTML (``<td ...>`` or plain text to be wrapped)."""
    th = "".join(f"<th>{h if raw_head else _e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _models(report: dict) -> str:
    head = ["model", "kind"] + [f"{s} {k}" for s in PLOT_SPLITS for k in ("acc", "macro-F1", "chance")] + [
        "at/below chance"]
    rows = []
    for name, e in report["entries"].items():
        flags = flagged_splits(report, name)
        row = [f'<td class="text">{_e(name)}</td>', f'<td class="text">{_e(e["kind"])}</td>']
        for split in PLOT_SPLITS:
            m = e["metrics"].get(split)
            cls = ' class="flag"' if split in flags else ""
            row += [f"<td{cls}>{_num(m['accuracy'])}</td>" if m else "<td>—</td>",
                    _num(m["macro_f1"]) if m else "—", _num(m["chance"]) if m else "—"]
        row.append(f'<td class="flag">{_e(", ".join(flags))}</td>' if flags else "<td>—</td>")
        rows.append(row)
    return _table(head, rows)


def _coverage(report: dict) -> str:
    total = report["clips_per_split"]
    splits = [s for s in SPLITS if s in total] + sorted(set(total) - set(SPLITS))
    rows = [[f'<td class="text">{_e(name)}</td>',
             *(f"{e['scored'].get(s, 0)}/{total[s]} ({100 * e['scored'].get(s, 0) / total[s]:.0f}%)" for s in splits)]
            for name, e in report["entries"].items() if e["kind"] == "specialist"]
    unscored = report.get("unscored_by_every_specialist", {})
    rows.append(['<td class="text"><em>scored by none</em></td>', *(str(unscored.get(s, 0)) for s in splits)])
    return _table(["specialist", *splits], rows)


def _below_chance(report: dict) -> str:
    rule = f'<p class="muted">{_e(report.get("chance_rule", ""))}.</p>'
    flagged = report.get("below_chance", [])
    if not flagged:
        return "<p>No model is at or below chance on any split.</p>" + rule
    rows = [[f'<td class="text">{_e(b["model"])}</td>', f'<td class="text">{_e(b["kind"])}</td>',
             f'<td class="text">{_e(b["split"])}</td>', f'<td class="flag">{_num(b["accuracy"])}</td>',
             _num(b["chance"]), str(b["n"])] for b in flagged]
    return ('<div class="warn"><strong>At or below chance:</strong> these models do no better than always '
            "answering the commonest class." + _table(["model", "kind", "split", "accuracy", "chance", "clips"], rows)
            + "</div>" + rule)


def _summary(report: dict) -> str:
    s = report.get("summary", {})
    if not (s.get("best_specialist") and s.get("selected_fusion_test_accuracy") is not None):
        return ""
    return (f"<p>Best specialist on test: <strong>{_e(s['best_specialist'])}</strong> "
            f"{_num(s['best_specialist_test_accuracy'])}; fusion <strong>{_e(s['selected_fusion'])}</strong> "
            f"{_num(s['selected_fusion_test_accuracy'])} on test ({s['fusion_gain_points']:+.1f} points). "
            '<span class="muted">The fusion quoted is fixed in advance, never picked by its val or test score.'
            "</span></p>")


def _trust(report: dict) -> str:
    trust = report.get("fusion_weights")
    if not trust:
        return "<p class=\"muted\">No fused bundle was found, so no fusion weights are shown.</p>"
    specs = trust["specialists"]
    rows = []
    for row_name, weights in trust["weights"].items():
        top = set(trust.get("trusted", {}).get(row_name, []))
        rows.append([f'<td class="text">{_e(row_name)}</td>',
                     f'<td class="text">{_e(trust_text(trust, row_name))}</td>',
                     *(f'<td{" class=best" if s in top and len(top) < len(specs) else ""}>{weights[s]:.2f}</td>'
                       for s in specs)])
    return (f"<p>The fused bundle uses <strong>{_e(trust['method'])}</strong>. {_e(trust['how'])}."
            f"{'' if trust.get('per_class') else ' It has no per-class weights.'}</p>"
            + _table(["class", "trusts most", *specs], rows))


def _per_class(entry: dict) -> str:
    splits = [s for s in PLOT_SPLITS if s in entry["metrics"]]
    if not splits:
        return "<p class=\"muted\">No labelled clips scored.</p>"
    head = ["class"] + [f"{s} {k}" for s in splits for k in ("precision", "recall", "F1", "n")]
    rows = []
    for c in EMOTIONS:
        row = [f'<td class="text">{_e(c)}</td>']
        for s in splits:
            pc = entry["metrics"][s].get("per_class", {}).get(c, {})
            row += [_num(pc.get("precision")), _num(pc.get("recall")), _num(pc.get("f1")), str(pc.get("support", 0))]
        rows.append(row)
    return _table(head, rows)


def _model_sections(report: dict, out_dir: Path) -> str:
    parts = []
    for name, e in report["entries"].items():
        figures = "".join(f"<figure>{_img(out_dir / png, f'{name} {split} confusion')}"
                          f"<figcaption>{_e(name)} — {_e(split)}</figcaption></figure>"
                          for split, png in e["confusion_png"].items())
        parts.append(f'<h3 id="model-{_e(name)}">{_e(name)} <span class="muted">({_e(e["kind"])})</span></h3>'
                     f'<div class="images">{figures}</div>' + _per_class(e))
    return "".join(parts)


def _timelines(report: dict, out_dir: Path) -> str:
    items = report.get("timelines", [])
    if not items:
        return ""
    figures = "".join(f"<figure>{_img(out_dir / t['png'], t['caption'])}<figcaption>{_e(t['caption'])}</figcaption>"
                      "</figure>" for t in items)
    return f'<h2 id="timelines">Timelines of val clips</h2><div class="images">{figures}</div>'


def _clips(report: dict) -> str:
    rows_in = report.get("per_clip", [])
    if not rows_in:
        return ""
    specs = sorted({n for r in rows_in for n in r["specialists"]})

    def cell(pred: dict | None, truth: str | None) -> str:
        if not pred:
            return '<td class="muted">—</td>'
        cls = "" if truth is None else (' class="right"' if pred["label"] == truth else ' class="wrong"')
        return f"<td{cls}>{_e(pred['label'])} {pred['p']:.2f}</td>"

    rows = [[f'<td class="text"><code>{_e(r["clip_id"])}</code></td>', f'<td class="text">{_e(r["split"])}</td>',
             f'<td class="text">{_e(r["label"] or "—")}</td>',
             *(cell(r["specialists"].get(s), r["label"]) for s in specs),
             cell(r["fused"], r["label"])] for r in rows_in]
    method = next((r["fused"]["method"] for r in rows_in if r["fused"]), None)
    return (f'<h2 id="clips">Per-clip predictions</h2><details><summary>{len(rows_in)} clips: predicted label and '
            "its probability per specialist and for the fusion</summary>"
            + _table(["clip", "split", "true", *specs, f"fused ({method or '—'})"], rows) + "</details>")


def _fingerprints(report: dict) -> str:
    fps = report.get("fingerprints", {})
    bundles = report.get("bundles", {})
    out = ['<h2 id="fingerprints">Fingerprints</h2>']
    if fps:
        out.append("<h3>Data</h3>" + _table(["what", "fingerprint"], [
            [f'<td class="text">{_e(k)}</td>', f'<td class="text hash">{_e(v)}</td>'] for k, v in fps.items()]))
    if bundles:
        rows = [[f'<td class="text">{_e(k)}</td>', f'<td class="text">{_e(b.get("method") or b.get("kind"))}</td>',
                 f'<td class="text hash">{_e(b["fingerprint"])}</td>',
                 f'<td class="text hash">{_e(b.get("trained_on"))}</td>',
                 f'<td class="text">{_e(b.get("created"))}</td>',
                 f'<td class="text">{_e(", ".join(f"{p} {v}" for p, v in b.get("versions", {}).items()))}</td>',
                 f'<td class="text">{_e(b.get("retraining") or "")}</td>']
                for k, b in bundles.items() if b]
        out.append("<h3>Model bundles</h3>" + _table(["model", "kind", "bundle sha256", "trained on (data fingerprint)",
                                                      "created", "versions", "how it was trained"], rows))
    return "".join(out) if len(out) > 1 else ""


def render_html(report: dict, out_dir: Path | str) -> str:
    """The page for ``report`` (build_report's dict); images are read from ``out_dir`` and inlined."""
    out_dir = Path(out_dir)
    data = report.get("data", {})
    split_text = ", ".join(f"{s} {n}" for s, n in sorted(report["clips_per_split"].items())) or "none"
    notes = "".join(f"<li>{_e(n)}</li>" for n in report.get("notes", []))
    in_sample = any(e["kind"] == "fusion" for e in report["entries"].values())
    body = [
        f"<h1>{_e(report.get('title', 'EmoNets training report'))}</h1>",
        f'<p class="muted">{_e(report["created"])} · data: <strong>{_e(data.get("name", "unknown"))}</strong> · '
        f"clips per split: {_e(split_text)}</p>",
        '<h2 id="chance">Chance</h2>', _below_chance(report),
        '<h2 id="models">Models</h2>', _summary(report), _models(report),
        "<p class=\"muted\">Fusion val figures are in-sample: the fusers were fitted on val. Compare on test.</p>"
        if in_sample else "",
        f"<ul>{notes}</ul>" if notes else "",
        '<h2 id="scored">Clips scored per specialist</h2>', _coverage(report),
        '<h2 id="fusion">What the fusion trusts</h2>', _trust(report),
        '<h2 id="per-model">Confusion matrices and per-class figures</h2>',
        '<p class="muted">Rows are the true class, columns the predicted one; colours are row-normalised.</p>',
        _model_sections(report, out_dir), _timelines(report, out_dir), _clips(report), _fingerprints(report),
    ]
    title = _e(report.get("title", "EmoNets training report"))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
            f"<body>{''.join(body)}</body></html>\n")


def write_html(report: dict, out_dir: Path | str) -> Path:
    """Write ``render_html`` as ``out_dir/report.html`` (atomically); return its path."""
    path = Path(out_dir) / "report.html"
    write_bytes_atomic(path, render_html(report, out_dir).encode("utf-8"))
    return path
