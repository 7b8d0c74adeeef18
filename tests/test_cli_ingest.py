"""`emonets ingest`: writes the tables, prints counts and problems, ends with one JSON line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from data_catalog import Store
from cli.main import app

runner = CliRunner()


def test_ingest_cremad_writes_clips_and_json_line(shared, tmp_path):
    store_dir = tmp_path / "store"
    result = runner.invoke(app, ["ingest", str(shared("crema-d")), "--store", str(store_dir)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["clips"] == 6 and summary["problems"] == 0 and summary["by_label"]["angry"] == 1
    clips = Store(store_dir).read("clips")
    assert len(clips) == 6 and set(clips["dataset"]) == {"cremad"}
    # a re-run reuses the fingerprint cache: no file is read again
    again = json.loads(runner.invoke(app, ["ingest", str(shared("crema-d")), "--store", str(store_dir)])
                       .output.strip().splitlines()[-1])
    assert again["hashed_files"] == 0 and len(Store(store_dir).read("clips")) == 6


def test_ingest_reports_problems_per_clip(tmp_path, make_clip):
    root = tmp_path / "afew"
    make_clip("ok.mp4", folder=root / "Train" / "Happy", seconds=0.3)
    (root / "Train" / "Sad").mkdir(parents=True)
    (root / "Train" / "Sad" / "broken.mp4").write_bytes(b"")
    result = runner.invoke(app, ["ingest", str(root), "--store", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert "broken.mp4" in result.output and "empty" in result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["clips"] == 1 and summary["problems"] == 1
    problems = Store(tmp_path / "s").read("problems")
    assert problems["path"].str.endswith("broken.mp4").any()


def test_ingest_bad_root_and_format(tmp_path):
    missing = runner.invoke(app, ["ingest", str(tmp_path / "nope"), "--store", str(tmp_path / "s")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    bad = runner.invoke(app, ["ingest", str(tmp_path), "--format", "wav"])
    assert bad.exit_code != 0 and "unknown format" in bad.output


def test_ingest_through_its_flow_writes_what_the_inline_path_writes(prefect_api, shared, tmp_path):
    """`--runner flow` (what `auto` picks when a Prefect API is configured) runs the `ingest` flow:
    the same clips table and summary as the inline path, and the run is recorded."""
    from prefect.client.orchestration import get_client

    flowed = runner.invoke(app, ["ingest", str(shared("crema-d")), "--store", str(tmp_path / "a"), "--runner", "flow"])
    inline = runner.invoke(app, ["ingest", str(shared("crema-d")), "--store", str(tmp_path / "b"), "--runner", "inline"])
    assert flowed.exit_code == 0 and inline.exit_code == 0, flowed.output + inline.output
    a, b = (json.loads(r.output.strip().splitlines()[-1]) for r in (flowed, inline))
    assert {k: v for k, v in a.items() if k not in ("seconds", "store")} == \
        {k: v for k, v in b.items() if k not in ("seconds", "store")}
    keys = ["clip_id", "sha256", "label", "split"]
    assert Store(tmp_path / "a").read("clips")[keys].equals(Store(tmp_path / "b").read("clips")[keys])

    async def ingest_runs() -> int:
        async with get_client() as client:
            return len([r for r in await client.read_flow_runs() if r.name and
                        (await client.read_flow(r.flow_id)).name == "ingest"])

    import asyncio

    assert asyncio.run(ingest_runs()) >= 1
    bad = runner.invoke(app, ["ingest", str(shared("crema-d")), "--store", str(tmp_path / "c"), "--runner", "pool"])
    assert bad.exit_code == 2 and "runner" in bad.output
