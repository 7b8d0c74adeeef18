"""Named, versioned recipes for the face ConvNet: independent lineages of training steps, each
step continuing from the one before, and an ensemble of the lineages' final nets.

A recipe is fixed before it trains, its selection rule included: every lineage's *final* net
(the averaged one where its last step runs SWA) is a member, all members are averaged, with the
recipe's test-time views. No checkpoint and no member is picked on val figures (val is only
logged). This is the hand-run chain that reached 72.25% on FER-2013 val (README), made into data
the pipeline runs, with the after-the-fact pick of members removed.

Each lineage runs on its own (a Prefect task per lineage in ``flows/train_recipe.py``, so
lineages run side by side on a process pool or a Dask cluster). A step writes its final net to
``WORK/LINEAGE/step-N-KEY/final.pt`` atomically once all its epochs ran (KEY: what the step
trains, Recipe.step_key); before that
Lightning keeps ``checkpoints/last.ckpt`` every epoch, and running the recipe again continues
from there (a CPU recipe takes hours: a killed run loses at most one epoch).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from data_catalog.atomic import write_bytes_atomic, write_json_atomic
from emonets.specialists.face_cnn.model import FaceCNN, FaceCNNConfig


@dataclass(frozen=True)
class Step:
    """One schedule: ``epochs`` of one-cycle AdamW peaking at ``lr``, from the previous step's
    final net (from scratch for a lineage's first); the last ``swa_epochs`` average the weights."""

    epochs: int
    lr: float = 3e-3
    swa_epochs: int = 0
    swa_lr: float = 4e-4


@dataclass(frozen=True)
class Lineage:
    name: str
    seed: int
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Recipe:
    name: str
    version: int
    lineages: tuple[Lineage, ...]
    tta: str = "affine"
    net: tuple[tuple[str, object], ...] = ()  # FaceCNNConfig fields shared by every step (widths, ...)
    selection: str = "every lineage's final net, all lineages averaged"

    def config(self, lineage: Lineage, index: int) -> FaceCNNConfig:
        """The FaceCNNConfig of one step of one lineage."""
        step = lineage.steps[index]
        return replace(FaceCNNConfig(**dict(self.net)), seed=lineage.seed + index, lr=step.lr, max_epochs=step.epochs,
                       swa_epochs=step.swa_epochs, swa_lr=step.swa_lr, tta=self.tta)

    def to_dict(self) -> dict:
        return asdict(self)

    def fingerprint(self) -> str:
        """The whole definition (names the assembled bundle)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:16]

    def step_key(self, lineage: Lineage, index: int) -> str:
        """What step ``index`` of ``lineage`` trains: the net, the lineage's seed and its steps up to
        and including this one (so editing step 3 keeps steps 1-2, and a step never continues a
        checkpoint of another definition). Test-time views and names are not part of it."""
        part = [dict(self.net), lineage.seed, [asdict(s) for s in lineage.steps[: index + 1]]]
        return hashlib.sha256(json.dumps(part, sort_keys=True, default=str).encode()).hexdigest()[:12]


# The chain of README's 72.25% figure, as two lineages fixed in advance (each step's epochs,
# peak learning rates and SWA as measured there; seed of step N = lineage seed + N).
FER_ENSEMBLE_V1 = Recipe(
    name="fer-ensemble", version=1, tta="affine",
    lineages=(
        Lineage("a", seed=0, steps=(Step(32, 3e-3), Step(75, 1.5e-3), Step(30, 1.5e-3, swa_epochs=30, swa_lr=4e-4))),
        Lineage("b", seed=1, steps=(Step(65, 3e-3), Step(64, 1.5e-3))),
    ))

RECIPES = {f"{r.name}-v{r.version}": r for r in (FER_ENSEMBLE_V1,)}


def register_recipe(r: Recipe) -> Recipe:
    """Add a recipe (a plugin module named in $EMONETS_PLUGINS does, so pool workers know it too)."""
    RECIPES[f"{r.name}-v{r.version}"] = r
    return r


def recipe(name: str) -> Recipe:
    """The recipe called ``name`` ("fer-ensemble-v1"); a ValueError naming the known ones else."""
    from emonets import registry

    registry.load_plugins()
    if name not in RECIPES:
        raise ValueError(f"unknown face_cnn recipe {name!r}; known: {', '.join(sorted(RECIPES))}")
    return RECIPES[name]


def step_dir(work: Path, recipe_: Recipe, lineage: Lineage, index: int) -> Path:
    """Where a step keeps its checkpoints and final net: named by what it trains (Recipe.step_key)."""
    return Path(work) / lineage.name / f"step-{index + 1}-{recipe_.step_key(lineage, index)}"


def finished_step(work: Path, recipe_: Recipe, lineage: Lineage, index: int) -> tuple[dict, dict] | None:
    """(state dict, metrics) of a step that ran all its epochs for this definition, or None."""
    folder = step_dir(work, recipe_, lineage, index)
    try:
        meta = json.loads((folder / "final.json").read_text())
        if meta.get("key") != recipe_.step_key(lineage, index):
            return None
        state = torch.load(folder / "final.pt", map_location="cpu", weights_only=True)
    except (OSError, ValueError, RuntimeError, EOFError):
        return None
    return state, meta.get("metrics", {})


def run_lineage(recipe_: Recipe, lineage_name: str, images: np.ndarray, labels: np.ndarray,
                val_images: np.ndarray | None, val_labels: np.ndarray | None, work: Path | str) -> dict:
    """Train one lineage step by step (finished steps are read back, an interrupted one continues
    from its last checkpoint); return its final net's state dict, face size and per-step metrics."""
    from emonets.specialists.face_cnn.training import train_face_net

    lineage = next((l for l in recipe_.lineages if l.name == lineage_name), None)
    if lineage is None:
        raise ValueError(f"recipe {recipe_.name}-v{recipe_.version} has no lineage {lineage_name!r}")
    images = np.asarray(images, dtype=np.uint8)
    state, steps = None, []
    for index in range(len(lineage.steps)):
        done = finished_step(Path(work), recipe_, lineage, index)
        if done is not None:
            state, metrics = done
            steps.append({**metrics, "reused": True})
            continue
        folder = step_dir(Path(work), recipe_, lineage, index)
        state, metrics = train_face_net(recipe_.config(lineage, index), images, labels, val_images, val_labels,
                                        init_state=state, resume_dir=folder)
        summary = {k: metrics.get(k) for k in ("epochs_trained", "epochs_total", "resumed", "seconds_per_epoch",
                                                "train_seconds", "device", "precision", "final_val_acc", "completed",
                                                "swa")}
        swa_unfinished = lineage.steps[index].swa_epochs and not (metrics.get("swa") or {}).get("completed")
        if not metrics.get("completed") or swa_unfinished:
            raise ValueError(f"lineage {lineage.name} step {index + 1} stopped before its last epoch "
                             f"({metrics.get('epochs_total')} of {lineage.steps[index].epochs}); "
                             "run the same command again to continue from its last checkpoint")
        buffer = io.BytesIO()
        torch.save(state, buffer)
        write_bytes_atomic(folder / "final.pt", buffer.getvalue())
        write_json_atomic(folder / "final.json", {"key": recipe_.step_key(lineage, index), "metrics": summary})
        steps.append(summary)
    return {"lineage": lineage.name, "state": state, "size": int(images.shape[1]), "steps": steps}


def assemble(recipe_: Recipe, lineages: list[dict]) -> FaceCNN:
    """The recipe's ensemble: one member per lineage (its final net), in the recipe's order, with
    the recipe's test-time views. The selection rule is the recipe's, never a figure."""
    by_name = {result["lineage"]: result for result in lineages}
    missing = [l.name for l in recipe_.lineages if l.name not in by_name]
    if missing:
        raise ValueError(f"recipe {recipe_.name}-v{recipe_.version}: lineages {missing} have not finished")
    models = []
    for lineage in recipe_.lineages:
        result = by_name[lineage.name]
        model = FaceCNN(recipe_.config(lineage, len(lineage.steps) - 1))
        model.size_, model.state_, model.svm_ = result["size"], result["state"], None
        model.metrics_ = {"lineage": lineage.name, "steps": result["steps"]}
        models.append(model)
    out = FaceCNN.ensemble(models)
    out.metrics_["recipe"] = {"name": recipe_.name, "version": recipe_.version, "selection": recipe_.selection,
                              "fingerprint": recipe_.fingerprint(), "definition": recipe_.to_dict()}
    return out
