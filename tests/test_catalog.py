"""The data catalog and store: schemas, atomic partitions, manifests, locking."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_catalog import SchemaMismatchError, Store, StoreLockedError, load_catalog
from data_catalog.atomic import atomic_path


def _problems(n: int = 2) -> pd.DataFrame:
    return pd.DataFrame({"clip_id": [f"c{i}" for i in range(n)], "path": ["/x"] * n,
                         "stage": ["ingest"] * n, "reason": ["because"] * n})


def test_catalog_declares_every_pipeline_table():
    cat = load_catalog()
    for name in ("clips", "problems", "faces", "mouths", "mfcc", "motion_blocks", "predictions",
                 "fused_predictions"):
        spec = cat[name]
        assert spec.schema.names, name
        assert spec.producer and spec.partitioning
    with pytest.raises(KeyError, match="not in the catalog"):
        cat["nope"]


def test_write_read_round_trip_with_manifest(store):
    manifest = store.write("problems", _problems(3), partition="ingest-a", inputs={"sha": "1"}, config={"k": 2})
    assert manifest.rows == 3 and manifest.inputs == {"sha": "1"} and manifest.config == {"k": 2}
    back = store.read("problems")
    assert list(back["clip_id"]) == ["c0", "c1", "c2"]
    assert store.partitions("problems") == ["ingest-a"]
    on_disk = json.loads((store.partition_dir("problems", "ingest-a") / "manifest.json").read_text())
    assert on_disk["fingerprint"] == manifest.fingerprint and on_disk["library_version"]


def test_same_content_same_fingerprint(store):
    a = store.write("problems", _problems(2), partition="a")
    b = store.write("problems", _problems(2), partition="b")
    c = store.write("problems", _problems(3), partition="c")
    assert a.fingerprint == b.fingerprint != c.fingerprint


def test_partition_keys_with_odd_characters_round_trip(store):
    key = "clip/with spaces:and#hash"
    store.write("problems", _problems(1), partition=key)
    assert store.partitions("problems") == [key]
    assert len(store.read("problems", partitions=[key])) == 1


def test_write_rejects_wrong_columns_and_types(store):
    with pytest.raises(SchemaMismatchError, match="missing"):
        store.write("problems", _problems().drop(columns=["reason"]))
    bad = _problems()
    bad["extra"] = 1
    with pytest.raises(SchemaMismatchError, match="unexpected"):
        store.write("problems", bad)
    clips = pd.DataFrame({c: ["x"] for c in load_catalog()["clips"].schema.names})
    with pytest.raises(SchemaMismatchError):
        store.write("clips", clips)  # "x" is no float for duration


def test_read_refuses_a_file_whose_schema_differs(store):
    store.write("problems", _problems(), partition="p")
    path = store.partition_dir("problems", "p") / "part.parquet"
    pq.write_table(pa.table({"clip_id": ["a"], "reason": [1]}), path)
    with pytest.raises(SchemaMismatchError, match="does not match the catalog"):
        store.read("problems")


def test_partition_without_manifest_is_invisible(store):
    store.write("problems", _problems(), partition="done")
    half = store.partition_dir("problems", "half")
    half.mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(_problems(5), preserve_index=False), half / "part.parquet")
    assert store.partitions("problems") == ["done"]
    assert len(store.read("problems")) == 2


def test_failed_atomic_write_leaves_target_untouched(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_rewrite_failure_leaves_partition_incomplete_not_stale(store, monkeypatch):
    store.write("problems", _problems(2), partition="p")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", boom)
    with pytest.raises(OSError):
        store.write("problems", _problems(4), partition="p")
    assert store.partitions("problems") == []  # no manifest: recomputed next run, never half-read


def test_empty_table_reads_with_catalog_columns(store):
    df = store.read("faces")
    assert list(df.columns) == load_catalog()["faces"].schema.names and len(df) == 0


def test_second_lock_is_refused_with_a_clear_message(store):
    with store.lock():
        with pytest.raises(StoreLockedError, match="in use"):
            with Store(store.root).lock():
                pass
    with store.lock():  # released after the block
        pass


def test_store_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("EMONETS_STORE", str(tmp_path / "s"))
    assert Store().root == (tmp_path / "s").resolve()
    monkeypatch.setenv("EMONETS_STORE", "s3://bucket/x")
    with pytest.raises(ValueError, match="only local"):
        Store()


def test_taking_the_lock_sweeps_what_a_killed_write_left(store, tmp_path):
    store.write("problems", pd.DataFrame({"clip_id": ["a"], "path": ["a.mp4"], "stage": ["x"], "reason": ["r"]}),
                partition="p1")
    folder = store.partition_dir("problems", "p1")
    (folder / ".tmp-part.parquet-k1ll3d").write_bytes(b"half a parquet file")
    (store.root / "models" / ".tmp-fused-x1").mkdir(parents=True)
    (store.root / "models" / ".tmp-fused-x1" / "weights.pt").write_bytes(b"half")
    outside = tmp_path / ".tmp-not-the-stores"
    outside.write_bytes(b"a user's file")
    with store.lock():
        pass
    assert not (folder / ".tmp-part.parquet-k1ll3d").exists()
    assert not (store.root / "models" / ".tmp-fused-x1").exists()
    assert outside.read_bytes() == b"a user's file"
    assert list(store.read("problems")["clip_id"]) == ["a"]


def test_a_partition_written_before_a_column_was_added_reads_with_it_null(store):
    spec = load_catalog()["clips"]
    assert "path_bytes" in spec.added_columns
    old_schema = pa.schema([f for f in spec.schema if f.name != "path_bytes"])
    row = {f.name: [False if pa.types.is_boolean(f.type) else 0.0 if pa.types.is_floating(f.type) else "x"]
           for f in old_schema}
    folder = store.partition_dir("clips", "old-root")
    folder.mkdir(parents=True)
    pq.write_table(pa.table(row, schema=old_schema), folder / "part.parquet")
    (folder / "manifest.json").write_text(json.dumps({
        "table": "clips", "partition": "old-root", "rows": 1, "fingerprint": "f", "library_version": "0"}))
    clips = store.read("clips")
    assert list(clips.columns) == spec.schema.names and clips["path_bytes"].isna().all()
    assert list(store.read("clips", columns=["clip_id", "path_bytes"]).columns) == ["clip_id", "path_bytes"]


def test_rewriting_the_same_rows_from_the_same_inputs_keeps_the_finished_partition(store):
    df = pd.DataFrame({"clip_id": ["a"], "path": ["a.mp4"], "stage": ["mfcc"], "reason": ["r"]})
    first = store.write("problems", df, partition="mfcc-a", inputs={"sha256": "1"})
    again = store.write("problems", df, partition="mfcc-a", inputs={"sha256": "1"})
    assert again.created == first.created == store.manifest("problems", "mfcc-a").created
    changed = store.write("problems", df, partition="mfcc-a", inputs={"sha256": "2"})
    assert changed.created > first.created and changed.inputs == {"sha256": "2"}
    other = store.write("problems", df.assign(reason=["s"]), partition="mfcc-a", inputs={"sha256": "2"})
    assert other.fingerprint != changed.fingerprint and list(store.read("problems")["reason"]) == ["s"]
