"""What every Lightning fit in the specialists shares: epoch timing, progress reports, quiet
start-up, the metric history from the CSV logger, and the Trainer's device/strategy settings with
the one precision rule (one device, or DDP, whose process group ``ReleaseProcessGroup`` closes
cleanly). ``emonets.specialists.trainer`` puts them together into a fit.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from emonets import training_progress


class EpochTimer(L.Callback):
    """Wall seconds of each training epoch (validation included).

    The seconds are also logged as ``epoch_seconds``, so they reach the CSV log even when the
    fit ran in spawned DDP processes (whose copies of this callback the caller never sees).
    """

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        seconds = time.perf_counter() - self._start
        self.seconds.append(seconds)
        pl_module.log("epoch_seconds", seconds, on_step=False, on_epoch=True, rank_zero_only=True)


class ProgressReport(L.Callback):
    """Reports a fit's start, each epoch (epoch / max_epochs, the monitored figure, its seconds)
    and its end to the active reporter (emonets.training_progress), from global rank 0 only.

    It holds nothing but the specialist's name, so a DDP spawn can pickle it; the reporter is
    found through the environment, which spawned and pooled processes inherit.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._start = 0.0

    def on_fit_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            training_progress.emit("fit", self.name, max_epochs=_max_epochs(trainer))

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        metric, value = monitored_figure(trainer)
        timer = next((c for c in trainer.callbacks if isinstance(c, L.pytorch.callbacks.Timer)), None)
        cap_left = timer.time_remaining("train") if timer is not None else None
        training_progress.emit("epoch", self.name, epoch=trainer.current_epoch + 1, max_epochs=_max_epochs(trainer),
                               metric=metric, value=value, seconds=time.perf_counter() - self._start,
                               time_cap_left=cap_left)

    def on_fit_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            training_progress.emit("fit_end", self.name, epochs=trainer.current_epoch)


def _max_epochs(trainer) -> int | None:
    return trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None


def monitored_figure(trainer) -> tuple[str | None, float | None]:
    """(name, value) of the figure that picks the model: early stopping's or the checkpoint's
    monitor, else the first ``val_*`` metric, else the training loss."""
    metrics = trainer.callback_metrics
    monitors = [getattr(trainer.early_stopping_callback, "monitor", None),
                getattr(trainer.checkpoint_callback, "monitor", None)]
    names = [m for m in monitors if m] + sorted(k for k in metrics if k.startswith("val_")) + ["train_loss"]
    for name in names:
        if name in metrics:
            value = float(metrics[name])
            return name, None if math.isnan(value) else value
    return None, None


def progress_callbacks(name: str) -> list[L.Callback]:
    """Callbacks that report a fit's progress (epoch / total, last val figure) for ``name``.

    Empty unless a progress reporter is active (the CLI sets one); every trainer adds these.
    """
    return [ProgressReport(name)] if training_progress.active() else []


@contextlib.contextmanager
def quiet_lightning():
    """Hide Lightning's start-up banners (GPU available..., tips) for the duration of a fit."""
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def read_history(csv_path: Path, seconds: list[float] | None = None) -> list[dict]:
    """Per-epoch metrics from Lightning's CSVLogger (one row per epoch after merging).

    ``seconds`` (from an EpochTimer in this process) wins over the logged ``epoch_seconds``.
    """
    import pandas as pd

    seconds = list(seconds or [])
    rows: list[dict] = []
    if csv_path.is_file():
        df = pd.read_csv(csv_path)
        if "epoch" in df:
            merged = df.groupby("epoch").first().reset_index()
            rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                    for r in merged.drop(columns=["step"], errors="ignore").to_dict("records")]
    for i, row in enumerate(rows):
        row["epoch"] = int(row["epoch"])
        logged = row.pop("epoch_seconds", None)
        row["seconds"] = seconds[i] if i < len(seconds) else logged
    if not rows:
        rows = [{"epoch": i, "seconds": s} for i, s in enumerate(seconds)]
    return rows


def cpu_has_fast_bf16() -> bool:
    """True where oneDNN runs bfloat16 natively on this CPU (AVX512-BF16 / AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str = "auto", *, gpu: bool | None = None) -> str:
    """The precision rule of every specialist's fit.

    "auto": bf16 mixed where bf16 is native: on a GPU, and on a CPU with AVX512-BF16 / AMX
    (1.8-2.7x faster convolutions measured here); "32-true" otherwise.
    "auto-gpu": bf16 mixed on a GPU, "32-true" on any CPU (the audio and motion nets, whose CPU
    fits have always run in float32; bf16 there would change their trained models).
    Any other value ("32-true", "16-mixed", "bf16-mixed", ...) is passed to Lightning as is.
    """
    if precision not in ("auto", "auto-gpu"):
        return precision
    gpu = torch.cuda.is_available() if gpu is None else gpu
    if gpu:
        return "bf16-mixed"
    return "bf16-mixed" if precision == "auto" and cpu_has_fast_bf16() else "32-true"


class ReleaseProcessGroup(L.Callback):
    """Ends a DDP fit by closing its process group on every rank, together.

    Left open, the gloo group is torn down at interpreter exit of the spawned workers, and a
    worker that exits while its peer still talks to it can abort ("terminate called without an
    active exception", SIGABRT), failing a fit that had finished. A barrier first, so no rank
    closes while another still needs it.
    """

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()


def device_settings(devices: int = 1, strategy: str = "auto", precision: str = "auto",
                    accelerator: str = "auto") -> dict[str, Any]:
    """Trainer arguments for ``devices`` processes: GPUs when present (and ``accelerator`` is
    "auto", "gpu" or "cuda"), else CPU processes; ``precision`` by ``resolve_precision``.

    More than one device means data-parallel training (DDP). "auto" picks ``ddp_spawn``: it
    starts its workers with multiprocessing, so it works from a Prefect task, a notebook or a
    test, not only from a script (plain ``ddp`` re-runs ``sys.argv``; pass it for multi-GPU
    jobs launched as scripts or by torchrun/SLURM). On the CPU each process gets an equal share of
    the cores (Lightning sets the thread count).
    """
    if devices < 1:
        raise ValueError(f"devices must be at least 1, not {devices}")
    gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    if gpu and devices > torch.cuda.device_count():
        raise ValueError(f"asked for {devices} GPUs, this machine has {torch.cuda.device_count()}")
    settings: dict[str, Any] = {"accelerator": "gpu" if gpu else "cpu", "devices": devices,
                                "precision": resolve_precision(precision, gpu=gpu)}
    if devices > 1:
        settings["strategy"] = "ddp_spawn" if strategy == "auto" else strategy
        settings["use_distributed_sampler"] = False  # our loaders shard themselves (see ShardedBatches)
    elif strategy != "auto":
        settings["strategy"] = strategy
    return settings


class ShardedBatches(torch.utils.data.Sampler):
    """Whole batches of row indices for one DDP rank (or all rows with one process).

    Every rank draws the same permutation (seed + epoch) and takes its own stride of it, so the
    ranks see disjoint rows each epoch; with ``drop_last`` all ranks get the same number of
    batches. Lightning calls ``set_epoch`` before each epoch.
    """

    def __init__(self, n: int, batch_size: int, *, shuffle: bool, drop_last: bool, seed: int = 0,
                 rank: int = 0, world_size: int = 1):
        self.n, self.batch_size, self.shuffle, self.drop_last = n, batch_size, shuffle, drop_last
        self.seed, self.rank, self.world_size, self.epoch = seed, rank, world_size, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _rows(self) -> torch.Tensor:
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            order = torch.arange(self.n)
        if self.drop_last and self.world_size > 1:
            order = order[: self.n - self.n % self.world_size]
        return order[self.rank::self.world_size]

    def __iter__(self):
        rows = self._rows()
        stop = len(rows) - len(rows) % self.batch_size if self.drop_last and len(rows) > self.batch_size else len(rows)
        for start in range(0, stop, self.batch_size):
            yield rows[start:start + self.batch_size].tolist()

    def __len__(self) -> int:
        per_rank = len(self._rows())
        if self.drop_last and per_rank > self.batch_size:
            return per_rank // self.batch_size
        return math.ceil(per_rank / self.batch_size)
