"""The one Lightning fit of the specialists: Trainer set-up, fit, best checkpoint reloaded.

The face, audio and motion fits differ only in their LightningModule and data. Device and
precision (``lightning_utils.device_settings``), the checkpoint of the monitored figure and early
stopping on it, the CSV log, epoch timing, progress reports and quiet start-up are set up here
once, so the three cannot drift apart (they once had three precision rules).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch

from emonets.specialists.lightning_utils import (EpochTimer, ReleaseProcessGroup, device_settings, progress_callbacks,
                                                quiet_lightning, read_history)

# Lightning's notes that say nothing about our fits: few loader workers, fewer batches than the
# logging interval, no validation split, pytree internals, SWA replacing our per-step schedule,
# and sync_dist advice for epoch_seconds (rank 0's own figure by design).
_NOISE = ("does not have many workers", "number of training batches", "val_dataloader", "LeafSpec",
          "SWA is currently only", "recommended to use `self.log", "exists and is not empty")


@dataclass(frozen=True, kw_only=True)
class TrainerSettings:
    """Everything a fit sets on the Trainer apart from its callbacks of its own."""

    name: str                         # the specialist, in progress reports
    max_epochs: int
    log_dir: Path                     # CSV log in log_dir / log_name / version_N
    log_name: str
    log_version: int | None = None    # None: the next free version
    monitor: str | None = None        # the figure that picks the kept checkpoint; None: no checkpoint
    mode: str = "min"
    checkpoint_dir: Path | None = None
    checkpoint_name: str | None = None  # file stem; None: Lightning's "epoch=E-step=S"
    weights_only_checkpoint: bool = False
    patience: int | None = None       # early stopping on ``monitor``; None: none
    validate: bool = True             # False: no validation loop at all
    precision: str = "auto"           # see lightning_utils.resolve_precision
    accelerator: str = "auto"         # "cpu" keeps the fit off a GPU
    devices: int = 1
    strategy: str = "auto"
    deterministic: bool | None = None  # None: leave torch's flag as it is
    max_minutes: float | None = None
    log_every_n_steps: int = 1
    resumable: bool = False           # keep checkpoint_dir/last.ckpt every epoch and continue from it
    #                                   when the fit runs again (a killed CPU training loses one epoch)

    def hardware(self) -> dict[str, Any]:
        """The Trainer's accelerator, devices, precision (and strategy) for these settings."""
        return device_settings(self.devices, self.strategy, self.precision, self.accelerator)


@dataclass
class FitResult:
    trainer: L.Trainer
    hardware: dict[str, Any]          # what ``TrainerSettings.hardware`` chose
    history: list[dict]               # per-epoch metrics (lightning_utils.read_history)
    epoch_seconds: list[float]
    best_score: float | None          # the kept checkpoint's monitored figure
    resumed_from: Path | None = None  # the checkpoint a resumable fit continued from


@contextlib.contextmanager
def work_folder(path: Path | str | None, prefix: str) -> Iterator[Path]:
    """``path``, or a temporary folder for logs and checkpoints, removed afterwards, when None."""
    if path:
        yield Path(path)
        return
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fit_and_reload_best(settings: TrainerSettings, module: L.LightningModule, *,
                        callbacks: Sequence[L.Callback] = (), keep_final: Callable[[L.Trainer], bool] | None = None,
                        **data) -> FitResult:
    """Fit ``module`` on ``data`` (``trainer.fit``'s loaders or datamodule); reload the best
    checkpoint's weights into it unless ``keep_final(trainer)`` says the last ones are the model
    (SWA's average). Torch's deterministic-algorithms flag is put back afterwards.
    """
    s = settings
    hardware = s.hardware()
    timer = EpochTimer()
    every: list[L.Callback] = [timer, *progress_callbacks(s.name)]
    if s.devices > 1:
        every.append(ReleaseProcessGroup())
    every += callbacks
    checkpoint = None
    if s.monitor is not None:
        if s.patience is not None:
            every.append(L.pytorch.callbacks.EarlyStopping(monitor=s.monitor, mode=s.mode, patience=s.patience))
        checkpoint = L.pytorch.callbacks.ModelCheckpoint(
            dirpath=s.checkpoint_dir, filename=s.checkpoint_name, monitor=s.monitor, mode=s.mode, save_top_k=1,
            save_weights_only=s.weights_only_checkpoint)
        every.append(checkpoint)
    resume_from = None
    if s.resumable:
        if s.checkpoint_dir is None:
            raise ValueError("a resumable fit needs a checkpoint_dir")
        # save_top_k=1 without a monitor keeps the newest epoch; Lightning writes last.ckpt only beside it
        every.append(L.pytorch.callbacks.ModelCheckpoint(dirpath=s.checkpoint_dir, save_top_k=1, save_last=True))
        resume_from = resumable_checkpoint(Path(s.checkpoint_dir))
    logger = L.pytorch.loggers.CSVLogger(s.log_dir, name=s.log_name, version=s.log_version)
    _ = logger.version  # fix the version here, so spawned DDP workers write where we read
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    was_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        with warnings.catch_warnings(), quiet_lightning():
            for noise in _NOISE:
                warnings.filterwarnings("ignore", message=f".*{noise}.*")
            trainer = L.Trainer(
                max_epochs=s.max_epochs, **hardware,
                max_time={"minutes": s.max_minutes} if s.max_minutes else None,
                callbacks=every, logger=logger, enable_progress_bar=False, enable_model_summary=False,
                enable_checkpointing=checkpoint is not None or s.resumable, num_sanity_val_steps=0,
                log_every_n_steps=s.log_every_n_steps, limit_val_batches=1.0 if s.validate else 0,
                deterministic=s.deterministic,
            )
            trainer.fit(module, **data, ckpt_path=resume_from)
    finally:  # Lightning's deterministic=True switches torch's global flag on
        torch.use_deterministic_algorithms(was_deterministic, warn_only=was_warn_only)
    if checkpoint is not None and checkpoint.best_model_path and not (keep_final and keep_final(trainer)):
        state = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    history = read_history(Path(logger.log_dir) / "metrics.csv", timer.seconds)
    return FitResult(trainer, hardware, history, timer.seconds, _best_score(checkpoint, s, history), resume_from)


def resumable_checkpoint(folder: Path) -> Path | None:
    """``folder/last.ckpt`` when it can be read back, else None (the fit starts over). One that a
    kill cut short is renamed ``last.ckpt.unreadable-N`` (kept, never deleted) and not used."""
    last = folder / "last.ckpt"
    if not last.is_file():
        return None
    try:
        torch.load(last, map_location="cpu", weights_only=False)
    except Exception:  # noqa: BLE001 - any failure to read it means: do not resume from it
        n = 1
        while last.with_name(f"last.ckpt.unreadable-{n}").exists():
            n += 1
        last.rename(last.with_name(f"last.ckpt.unreadable-{n}"))
        return None
    return last


def _best_score(checkpoint, s: TrainerSettings, history: list[dict]) -> float | None:
    """The kept checkpoint's figure (from the history when spawned DDP workers kept the score)."""
    if checkpoint is None:
        return None
    if checkpoint.best_model_score is not None:
        return float(checkpoint.best_model_score)
    scores = [h[s.monitor] for h in history if h.get(s.monitor) is not None]
    return float((max if s.mode == "max" else min)(scores)) if scores else None
