"""Timelines of a few validation clips for the report page: what the fused model saw over time.

Which clips is fixed before anything is drawn: the first ``n`` val clips by clip id (of those
with a video), so the page shows the same clips run after run, good or bad.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from data_catalog import Store
from emonets.pictures.plot import timeline_png
from emonets.predict import load_model
from emonets.prediction_run import feature_tables
from emonets.pictures.timeline import clip_timelines


def val_timeline_pngs(store: Store, bundle: Path | str, clips: pd.DataFrame, *, n: int = 3) -> dict[str, bytes]:
    """caption -> PNG bytes of each chosen val clip's timeline (empty when there are none)."""
    val = clips[(clips["split"] == "val") & clips["has_video"].astype(bool)]
    val = val.drop_duplicates("clip_id").sort_values("clip_id").head(n)
    if val.empty:
        return {}
    timelines = clip_timelines(load_model(bundle), val, feature_tables(store, val))
    out = {}
    with tempfile.TemporaryDirectory(prefix="emonets-timelines-") as tmp:
        for clip_id, tl in timelines.items():
            png = timeline_png([tl], Path(tmp) / "t.png")
            out[f"{clip_id} (true: {tl.true_label or '?'}, fused: {tl.label or 'none'})"] = png.read_bytes()
    return out
