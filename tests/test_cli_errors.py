"""The `emonets` command's failures: one line `error: …`, exit 2 (usage) or 1 (the run failed),
found before Prefect starts where they can be; nothing of the user's deleted by `--out`; a busy
store refused at once; `train` extracting what its specialist needs."""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from data_catalog import Store
from cli.main import app

REPO = Path(__file__).resolve().parents[1]
EMONETS = [sys.executable, "-m", "cli.main"]
runner = CliRunner()


def _emonets(*args: str, env: dict | None = None, timeout: float = 300) -> tuple[subprocess.CompletedProcess, float]:
    started = time.perf_counter()
    done = subprocess.run([*EMONETS, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    return done, time.perf_counter() - started


def _one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert "Traceback" not in output, output
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    return lines[0]


@pytest.fixture
def tiny_root(tmp_path):
    """An AFEW-style root: 2 classes x 2 clips in Train and in Val, 1 s each, every clip different."""
    import numpy as np

    from emonets.media.writer import write_video

    root = tmp_path / "data"
    sr, yy, xx = 16000, *np.mgrid[0:48, 0:64]
    for n, (split, label, i) in enumerate((s, lab, i) for s in ("Train", "Val") for lab in ("Happy", "Sad")
                                          for i in range(2)):
        frames = (np.stack([(xx + 3 * j + n) % 256, (yy + n) % 256, np.full_like(xx, 16 * n)], -1).astype(np.uint8)
                  for j in range(25))
        tone = (0.3 * np.sin(2 * np.pi * (200 + 40 * n) * np.arange(sr) / sr)).astype(np.float32)
        folder = root / split / label
        folder.mkdir(parents=True, exist_ok=True)
        write_video(folder / f"{split}_{label}_{i}.mp4", frames, fps=25, audio=tone, sr=sr)
    return root


def _ingest(root: Path, store: Path) -> None:
    result = runner.invoke(app, ["ingest", str(root), "--store", str(store)])
    assert result.exit_code == 0, result.output


def _fake_bundle(path: Path, kind: str = "audio") -> Path:
    path.mkdir(parents=True)
    (path / "bundle.json").write_text(json.dumps({"kind": kind, "config": {}}))
    return path


# -- found before Prefect starts ---------------------------------------------------------------
def test_a_typo_in_the_specialist_is_one_line_within_seconds(tmp_path):
    done, seconds = _emonets("train", "audoi", "--store", str(tmp_path / "s"))
    print(f"`emonets train audoi`: exit {done.returncode} after {seconds:.1f} s")
    assert done.returncode == 2
    line = _one_error_line(done.stdout + done.stderr)
    assert "did you mean 'audio'" in line
    assert seconds < 15  # was 15-60 s (checked only inside the flow, after Prefect's start-up)


@pytest.mark.parametrize("args, says", [
    (["train", "audio", "--config", "{bad json"], "--config is not valid JSON"),
    (["train", "audio", "--config", "[1, 2]"], "must be a JSON object"),
    (["train", "audio"], "nothing ingested"),
    (["extract", "--stages", "faces,mouth"], "did you mean 'mouths'"),
    (["extract", "--runner", "thread"], "did you mean 'threads'"),
    (["train-all", "--specialists", "audio,moton"], "did you mean 'motion'"),
    (["predict", "{video}", "--model", "{folder}"], "is not a model bundle"),
    (["predict", "{video}", "--model", "{video}"], "is not a model bundle"),
    (["predict", "{video}", "--model", "{missing}"], "does not exist"),
    (["evaluate", "{folder}", "{folder}"], "is not a model bundle"),
    (["evaluate", "{bundle}", "{missing}"], "data root"),
])
def test_usage_errors_are_one_line_exit_2(tmp_path, args, says):
    folder = tmp_path / "plain"
    (folder / "sub").mkdir(parents=True)
    video = tmp_path / "v.mp4"
    video.write_bytes(b"not really a video")
    fill = {"{video}": str(video), "{folder}": str(folder), "{missing}": str(tmp_path / "nope"),
            "{bundle}": str(_fake_bundle(tmp_path / "b"))}
    result = runner.invoke(app, [fill.get(a, a) for a in args] + ["--store", str(tmp_path / "s")])
    assert result.exit_code == 2, result.output
    assert says in _one_error_line(result.output)


def test_out_never_replaces_a_users_folder_or_file(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    plain_file = tmp_path / "notes.txt"
    plain_file.write_text("keep me")
    for out in (mine, plain_file):
        result = runner.invoke(app, ["train", "audio", "--store", str(tmp_path / "s"), "--out", str(out)])
        assert result.exit_code == 2, result.output
        assert "give a new path, an empty folder" in _one_error_line(result.output)
    assert (mine / "thesis.tex").read_text() == "years of work" and plain_file.read_text() == "keep me"


def test_copy_bundle_only_into_absent_empty_or_bundle(tmp_path):
    from emonets.bundle import copy_bundle

    src = _fake_bundle(tmp_path / "src")
    (src / "arrays.npz").write_bytes(b"x")
    assert (copy_bundle(src, tmp_path / "new") / "arrays.npz").is_file()
    (tmp_path / "empty").mkdir()
    assert (copy_bundle(src, tmp_path / "empty") / "bundle.json").is_file()
    old = _fake_bundle(tmp_path / "old")
    (old / "stale.pt").write_text("old weights")
    copy_bundle(src, old)
    assert not (old / "stale.pt").exists() and (old / "arrays.npz").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left
    user = tmp_path / "user"
    user.mkdir()
    (user / "photo.jpg").write_text("x")
    with pytest.raises(ValueError, match="other contents"):
        copy_bundle(src, user)
    assert [p.name for p in user.iterdir()] == ["photo.jpg"]


class _Evil:
    def __reduce__(self):
        return (print, ("this could have been os.system",))


def test_load_bundle_names_refused_missing_and_corrupt_files(tmp_path):
    import torch

    from emonets.bundle import Bundle, BundleError, load_bundle, save_bundle

    path = save_bundle(tmp_path / "b", Bundle(kind="audio", torch_states={"net": {"w": torch.zeros(2)}}))
    assert load_bundle(path).torch_states["net"]["w"].shape == (2,)
    pt = path / "torch" / "net.pt"
    torch.save({"w": _Evil()}, pt)
    with pytest.raises(BundleError, match=r"net\.pt: refused to load"):
        load_bundle(path)
    pt.write_bytes(b"\x80\x02garbage")
    with pytest.raises(BundleError, match=r"net\.pt: corrupt or truncated"):
        load_bundle(path)
    pt.unlink()
    with pytest.raises(BundleError, match=r"incomplete bundle, missing torch/net\.pt"):
        load_bundle(path)


class _NotSklearn:
    """A class skops would happily write, and must never run on load."""

    def __init__(self):
        self.x = 1


def test_an_estimator_file_holding_an_untrusted_type_is_refused(tmp_path):
    from sklearn.linear_model import LogisticRegression

    from emonets.bundle import Bundle, BundleError, load_bundle, save_bundle

    fitted = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    path = save_bundle(tmp_path / "ok", Bundle(kind="bag_of_mouths", estimators={"lr": fitted}))
    assert load_bundle(path).estimators["lr"].predict([[1.0]]).tolist() == [1]  # sklearn types: trusted
    bad = save_bundle(tmp_path / "bad", Bundle(kind="bag_of_mouths", estimators={"lr": _NotSklearn()}))
    with pytest.raises(BundleError, match=r"lr\.skops: refuses to load untrusted types .*_NotSklearn"):
        load_bundle(bad)


def test_known_failures_map_to_one_line():
    from cli.errors import describe
    from emonets.errors import disk_full_in

    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/store/x.parquet")
        except OSError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert describe(outer) == ("no space left on device (/store/x.parquet)", 1)
    assert describe(pickle.UnpicklingError("Weights only load failed. Long story.\nmore"))[1] == 2
    msg, code = describe(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), csv_file="/data/labels.csv")
    assert msg.startswith("cannot read /data/labels.csv as CSV") and code == 2
    assert describe(KeyError("a bug")) is None  # a bug keeps its traceback
    err = disk_full_in(["Failed: [Errno 28] No space left on device: '/s/faces/k/.tmp-part'"])
    assert err.errno == errno.ENOSPC and err.filename == "/s/faces/k/.tmp-part"
    assert disk_full_in(["Failed: KeyError('x')"]) is None


def test_predict_a_missing_file_exits_1_with_a_record_for_it(tmp_path):
    model = _fake_bundle(tmp_path / "model")
    result = runner.invoke(app, ["predict", str(tmp_path / "missing.mp4"), "--model", str(model),
                                 "--store", str(tmp_path / "s"), "--json"])
    assert result.exit_code == 1, result.output
    record = json.loads(result.output.strip().splitlines()[-1])
    assert record["label"] is None and record["error"] == "no such file"


def test_a_busy_store_is_refused_before_prefect_starts(tmp_path, tiny_root):
    store = tmp_path / "store"
    _ingest(tiny_root, store)
    with Store(store).lock():
        done, seconds = _emonets("extract", "--store", str(store), timeout=120)
    print(f"`emonets extract` on a busy store: exit {done.returncode} after {seconds:.1f} s")
    assert done.returncode == 2
    assert "is in use by pid" in _one_error_line(done.stdout + done.stderr)
    assert seconds < 15  # ~1 s; Prefect's start alone took 15-40 s before the check


# -- inside a run ---------------------------------------------------------------------------
@pytest.fixture
def console_log():
    """A stand-in for the terminal: a stream handler on the root logger, as Prefect's console is."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logging.getLogger().addHandler(handler)
    yield stream
    logging.getLogger().removeHandler(handler)


AUDIO_TINY = json.dumps({"hidden": [8], "max_epochs": 1, "seeds": [0], "patience": 1})


@pytest.mark.slow
def test_train_extracts_what_it_needs_and_reports_run_failures_in_one_line(
        prefect_api, tmp_path, tiny_root, monkeypatch, console_log):
    store = tmp_path / "store"
    _ingest(tiny_root, store)  # no `extract`: train finds its own prerequisites
    out = _fake_bundle(tmp_path / "exported")
    (out / "stale.pt").write_text("old")
    args = ["train", "audio", "--store", str(store), "--runner", "threads", "--config", AUDIO_TINY]
    first = runner.invoke(app, [*args, "--out", str(out)])
    assert first.exit_code == 0, first.output
    summary = json.loads(first.output.strip().splitlines()[-1])
    assert summary["status"] == "trained" and summary["extraction"]["computed"] == 8
    assert Store(store).partitions("mfcc") and not Store(store).partitions("faces")  # only what audio needs
    assert summary["bundle"] == str(out) and not (out / "stale.pt").exists()
    assert json.loads((out / "bundle.json").read_text())["kind"] == "audio"

    # A malicious weights file: one line, exit 2, nothing unpickled.
    evil = tmp_path / "evil"
    import shutil

    import torch

    shutil.copytree(out, evil)
    torch.save({"w": _Evil()}, next((evil / "torch").glob("*.pt")))
    refused = runner.invoke(app, ["evaluate", str(evil), str(tiny_root), "--store", str(store)])
    assert refused.exit_code == 2, refused.output
    assert "refused to load" in _one_error_line(refused.output)

    # The disk fills up while the model is written: one line naming the path, exit 1.
    import pyarrow.parquet as pq

    def full(table, where, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(where))

    monkeypatch.setattr(pq, "write_table", full)
    again = runner.invoke(app, [*args, "--max-epochs", "2"])  # new inputs: trains (and writes) again
    assert again.exit_code == 1, again.output
    line = _one_error_line(again.output)
    assert line.startswith("error: no space left on device (") and str(store) in line
    logged = console_log.getvalue()
    assert "Traceback" not in logged and "Encountered exception" not in logged, logged


@pytest.mark.slow
def test_a_full_disk_during_extraction_is_one_line_on_the_console(tmp_path, tiny_root):
    """End to end in a real process (its Prefect, its task runner and the extraction's children)."""
    store = tmp_path / "store"
    _ingest(tiny_root, store)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(  # every process of the run: the disk is full
        "import errno\nimport pyarrow.parquet as pq\n"
        "def _full(table, where, *a, **k):\n"
        "    raise OSError(errno.ENOSPC, 'No space left on device', str(where))\n"
        "pq.write_table = _full\n")
    done, seconds = _emonets("extract", "--store", str(store), "--stages", "mfcc", "--runner", "local",
                             env={"PYTHONPATH": os.pathsep.join([str(hook), str(REPO)])})
    print(f"extract on a full disk: exit {done.returncode} after {seconds:.1f} s")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "ERROR" not in done.stderr, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip() and not line.startswith("extracting")]
    assert len(lines) == 1 and lines[0].startswith(f"error: no space left on device ({store}"), done.stdout
    # nothing half-written is visible, and once there is room again the next run completes
    assert not [p for p in store.rglob(".tmp-*")]
    assert not Store(store).partitions("mfcc")
    again, _ = _emonets("extract", "--store", str(store), "--stages", "mfcc", "--runner", "local")
    assert again.returncode == 0, again.stdout + again.stderr
    summary = json.loads(again.stdout.strip().splitlines()[-1])
    assert summary["failed"] == 0 and summary["computed"] == len(Store(store).partitions("mfcc")) > 0
