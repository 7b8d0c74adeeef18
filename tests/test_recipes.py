"""Face ConvNet recipes: lineages of steps fixed in advance, a killed lineage continues from its
last checkpoint, finished steps are read back, the ensemble is every lineage's final net (never a
pick on val), and `emonets train face_cnn --recipe` runs it through the flow."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from emonets.specialists.face_cnn import recipes as recipes_module
from emonets.specialists.face_cnn.recipes import (Lineage, Recipe, Step, assemble, finished_step, run_lineage,
                                                  step_dir)

REPO = Path(__file__).resolve().parents[1]
NET = (("widths", (8, 16)), ("convs", (1, 1)), ("dropout", 0.0), ("head_dropout", 0.0), ("batch_size", 32),
       ("augment", False))
TINY = Recipe(name="tiny", version=1, tta="mirror", net=NET, lineages=(
    Lineage("a", seed=0, steps=(Step(3, 1e-2), Step(2, 5e-3, swa_epochs=2, swa_lr=1e-3))),
    Lineage("b", seed=7, steps=(Step(4, 1e-2),)),
))


def stripes(n: int, seed: int, size: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Noisy horizontal (class 0) or vertical (class 1) stripes: a task a tiny net learns."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    wave = np.sin(2 * np.pi * np.arange(size)[None, :, None] / rng.uniform(4, 8, (n, 1, 1)) + rng.uniform(0, 6, (n, 1, 1)))
    wave = np.broadcast_to(wave, (n, size, size)).copy()
    wave[y == 1] = wave[y == 1].transpose(0, 2, 1)
    return np.clip(128 + 80 * wave + rng.normal(0, 20, (n, size, size)), 0, 255).astype(np.uint8), y


@pytest.fixture(scope="module")
def lineages(tmp_path_factory):
    torch.set_num_threads(1)
    work = tmp_path_factory.mktemp("recipe-work")
    x, y = stripes(192, seed=0)
    xv, yv = stripes(48, seed=1)
    return work, (x, y, xv, yv), [run_lineage(TINY, name, x, y, xv, yv, work) for name in ("a", "b")]


def test_each_lineage_runs_its_steps_and_keeps_their_final_nets(lineages):
    work, _, (a, b) = lineages
    assert [s["epochs_trained"] for s in a["steps"]] == [3, 3]  # SWA's step adds its batch-norm epoch
    assert [s["epochs_trained"] for s in b["steps"]] == [4]
    assert all(s["completed"] for s in a["steps"] + b["steps"]) and a["steps"][1]["swa"]["completed"]
    state, _ = finished_step(work, TINY, TINY.lineages[0], 1)
    assert all(torch.equal(state[k], a["state"][k]) for k in state)  # the lineage's result is its last step's


def test_a_second_run_reads_finished_steps_back_and_another_recipe_does_not(lineages):
    work, (x, y, xv, yv), (a, _) = lineages
    again = run_lineage(TINY, "a", x, y, xv, yv, work)
    assert [s.get("reused") for s in again["steps"]] == [True, True]
    assert all(torch.equal(again["state"][k], a["state"][k]) for k in a["state"])
    steps = TINY.lineages[0].steps
    edited = Recipe(name="tiny", version=2, tta="affine", net=NET, lineages=(
        Lineage("a", seed=0, steps=(steps[0], Step(2, 1e-3, swa_epochs=2, swa_lr=1e-3))),))
    assert finished_step(work, edited, edited.lineages[0], 0) is not None  # step 1 trains the same: kept
    assert finished_step(work, edited, edited.lineages[0], 1) is None  # step 2 changed: trained afresh


def test_the_ensemble_is_every_lineages_final_net_whatever_val_says(lineages):
    _, (x, y, xv, yv), (a, b) = lineages
    model = assemble(TINY, [b, a])  # given in any order: members follow the recipe
    (member_config, member_state), = model.members_
    assert all(torch.equal(model.state_[k], a["state"][k]) for k in a["state"])  # lineage a's final net, as it is
    assert all(torch.equal(member_state[k], b["state"][k]) for k in b["state"])  # then lineage b's
    assert len(model._nets()) == 2 and model.config.tta == "mirror"
    assert model.metrics_["recipe"]["selection"] == "every lineage's final net, all lineages averaged"
    xt, yt = stripes(100, seed=9)
    assert (model.predict_frames(xt).argmax(1) == yt).mean() >= 0.9
    with pytest.raises(ValueError, match=r"lineages \['b'\] have not finished"):
        assemble(TINY, [a])


LONG = Recipe(name="long", version=1, tta="mirror", net=NET, lineages=(Lineage("a", seed=0, steps=(Step(12, 1e-2),)),))


def test_a_killed_lineage_continues_from_its_last_checkpoint(tmp_path):
    """A kill -9 right after epoch 5's checkpoint; the same call again trains the 7 epochs left."""
    script = textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {str(REPO)!r}); sys.path.insert(0, {str(REPO / 'tests')!r})
        torch.set_num_threads(1)
        from test_recipes import killed_run
        killed_run({str(tmp_path)!r}, after_saves=5)
    """)
    child = subprocess.run([sys.executable, "-c", script], timeout=600)
    assert child.returncode == -signal.SIGKILL
    assert (step_dir(tmp_path, LONG, LONG.lineages[0], 0) / "checkpoints" / "last.ckpt").is_file()
    assert finished_step(tmp_path, LONG, LONG.lineages[0], 0) is None  # stopped midway: no final net
    x, y = stripes(192, seed=0)
    result = run_lineage(LONG, "a", x, y, None, None, tmp_path)
    step = result["steps"][0]
    assert (step["epochs_trained"], step["epochs_total"], step["resumed"], step["completed"]) == (7, 12, True, True)
    assert finished_step(tmp_path, LONG, LONG.lineages[0], 0) is not None


def killed_run(work: str, after_saves: int) -> None:
    """Run LONG's lineage in this process and kill it (SIGKILL) right after its Nth last.ckpt."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    real, saves = ModelCheckpoint._save_last_checkpoint, []

    def save_then_maybe_die(self, trainer, monitor_candidates):
        real(self, trainer, monitor_candidates)
        saves.append(1)
        if len(saves) == after_saves:
            os.kill(os.getpid(), signal.SIGKILL)

    ModelCheckpoint._save_last_checkpoint = save_then_maybe_die
    x, y = stripes(192, seed=0)
    run_lineage(LONG, "a", x, y, None, None, Path(work))


def test_an_unreadable_last_checkpoint_is_set_aside_not_used(tmp_path):
    from emonets.specialists.trainer import resumable_checkpoint

    (tmp_path / "last.ckpt").write_bytes(b"cut short")
    assert resumable_checkpoint(tmp_path) is None
    assert (tmp_path / "last.ckpt.unreadable-1").read_bytes() == b"cut short"  # kept, not deleted


def test_unknown_recipes_and_recipes_for_other_specialists_are_refused():
    from emonets.recipe_training import check_recipe

    with pytest.raises(ValueError, match="known: fer-ensemble-v1"):
        check_recipe("face_cnn", "nope", None)
    with pytest.raises(ValueError, match="for face_cnn, not audio"):
        check_recipe("audio", "fer-ensemble-v1", None)
    with pytest.raises(ValueError, match=r"\['lr'\] cannot go with a recipe"):
        check_recipe("face_cnn", "fer-ensemble-v1", {"lr": 0.1})
    with pytest.raises(ValueError, match="--max-epochs cannot go with a recipe"):
        check_recipe("face_cnn", "fer-ensemble-v1", None, 3)
    check_recipe("face_cnn", "fer-ensemble-v1", {"tta": "mirror"})


def test_the_shipped_recipe_is_fixed_in_advance():
    r = recipes_module.recipe("fer-ensemble-v1")
    assert [len(l.steps) for l in r.lineages] == [3, 2] and r.tta == "affine"
    assert r.lineages[0].steps[-1].swa_epochs == 30
    assert r.fingerprint() == recipes_module.recipe("fer-ensemble-v1").fingerprint()


@pytest.mark.slow
def test_train_face_cnn_with_a_recipe_from_the_command_line(tmp_path):
    """`emonets train face_cnn --recipe NAME` as a user runs it (the process pool, a plugin's
    recipe): lineages, the ensemble, the specialist started from it; a second run retrains nothing."""
    import json

    from PIL import Image

    root = tmp_path / "faces"
    for split, n, seed in (("train", 24, 0), ("val", 12, 1)):
        x, y = stripes(n, seed=seed, size=48)
        for i, (img, label) in enumerate(zip(x, y)):
            folder = root / split / ("happy" if label == 0 else "sad")
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(folder / f"{i:03d}.jpg", quality=95)
    store = tmp_path / "store"
    exe = str(Path(sys.executable).with_name("emonets"))
    env = {**os.environ, "EMONETS_PLUGINS": "tiny_recipe_plugin",
           "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])}
    ingest = subprocess.run([exe, "ingest", str(root), "--format", "fer2013", "--store", str(store)], env=env,
                            capture_output=True, text=True, timeout=600)
    assert ingest.returncode == 0, ingest.stdout + ingest.stderr

    def train() -> dict:
        done = subprocess.run([exe, "train", "face_cnn", "--recipe", "tiny-v1", "--store", str(store)], env=env,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "recipe tiny-v1: 2 nets averaged (mirror views)" in done.stdout
        return json.loads(done.stdout.strip().splitlines()[-1])

    first = train()
    made = first["recipe"]
    assert [[s["epochs_trained"] for s in l["steps"]] for l in made["lineages"]] == [[2, 3], [3]]
    assert made["val_faces"]["n"] == 12
    bundle = json.loads((Path(made["bundle"]) / "bundle.json").read_text())
    assert len(bundle["config"]["members"]) == 1  # two nets: the first and one member
    assert bundle["metrics"]["recipe"]["name"] == "tiny"
    spec = json.loads((store / "models" / "face_cnn" / "bundle.json").read_text())
    assert spec["inputs"]["training"]["config"]["cnn_bundle"] == made["bundle"]
    second = train()
    assert all(s.get("reused") for l in second["recipe"]["lineages"] for s in l["steps"])
    assert second["status"] == "reused"
