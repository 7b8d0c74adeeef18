"""The models that ship with the code: checked against SHA256SUMS before anything loads them."""

from __future__ import annotations

import os

import pytest
import torch

from emonets import release
from emonets.bundle import Bundle, load_bundle, save_bundle
from emonets.release import ReleaseError, shipped, verify, write_sums


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A release folder of one tiny bundle, standing in for emonets/release."""
    root = tmp_path / "release"
    save_bundle(root / "audio", Bundle(kind="audio", torch_states={"net": {"w": torch.arange(4.0)}}))
    (root / "MODEL_CARD.md").write_text("# card\n")
    write_sums(root)
    monkeypatch.setattr(release, "RELEASE_DIR", root)
    monkeypatch.setattr(release, "_verified", set())
    return root


def test_the_shipped_release_matches_its_checksums():
    """What a user's install holds (the default path: emonets/release)."""
    if not (release.RELEASE_DIR / release.SUMS_FILE).is_file():
        pytest.fail(f"no {release.SUMS_FILE} in {release.RELEASE_DIR}: the release is not installed")
    verify()
    assert shipped("face_cnn") is not None
    model = load_bundle(shipped("face_cnn"), kind="face_cnn")
    assert model.torch_states["net"]  # loads through the verifying path
    from emonets.fusion.model import FusedModel

    fused = FusedModel.load(shipped("fused"))  # the default model: face, voice and mouths fused
    assert {"face_cnn", "audio", "bag_of_mouths"} <= set(fused.order)
    size = sum(p.stat().st_size for p in release.RELEASE_DIR.rglob("*") if p.is_file())
    assert size < 40e6  # the whole release, as installed


def test_a_changed_or_missing_file_is_refused_with_its_name(folder):
    verify(folder)
    assert load_bundle(folder / "audio").torch_states["net"]["w"].tolist() == [0.0, 1.0, 2.0, 3.0]
    weights = folder / "audio" / "torch" / "net.pt"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    release._verified.clear()
    with pytest.raises(ReleaseError, match=r"net\.pt: checksum mismatch"):
        load_bundle(folder / "audio")
    weights.unlink()
    with pytest.raises(ReleaseError, match=r"net\.pt: a shipped model file is missing"):
        verify(folder)
    (folder / release.SUMS_FILE).unlink()
    with pytest.raises(ReleaseError, match="SHA256SUMS: missing"):
        verify(folder)


def test_a_bundle_outside_the_release_is_not_checked(tmp_path, folder):
    outside = save_bundle(tmp_path / "mine", Bundle(kind="audio", torch_states={"net": {"w": torch.zeros(1)}}))
    assert load_bundle(outside).kind == "audio"  # no SHA256SUMS needed for a user's own bundle


def test_evaluate_release_scores_the_shipped_model_on_a_labelled_root(shared, tmp_path):
    """`emonets evaluate release ROOT`, right after install: the shipped model, no training; the last
    line is one JSON object with the figures, each specialist's on the clips it could score."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    done = subprocess.run([str(Path(sys.executable).with_name("emonets")), "evaluate", "release", str(shared("crema-d")),
                           "--store", str(tmp_path / "s")], capture_output=True, text=True, env=env, timeout=300,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["model"] == str(shipped("fused")) and result["n"] == 6
    assert 0.0 <= result["accuracy"] <= 1.0 and 0.0 <= result["macro_f1"] <= 1.0
    names = json.loads((shipped("fused") / "bundle.json").read_text())["config"]["specialists"]
    assert set(result["specialists"]) == set(names)  # each on the clips it could score: all six have face and voice
    assert all(m["n"] == 6 for m in result["specialists"].values())
