"""Every extraction stage and every specialist the pipeline knows, in one place.

A *stage* writes one feature table per work unit: what a clip must have for it, the stage whose
partition it reads (mouths read faces), its default config, the function computing one unit
and the one decoder of its table's rows. A *specialist* is trained on one stage's table: its
model and config classes, the stages it needs, how it trains. Extraction, training, fusion,
prediction, the report, the tasks and the flows all iterate these entries; nothing else keeps
a map or an if-chain of names.

Code is referenced as ``"module:attribute"`` and imported on first use, so reading the
registry imports nothing heavy (and no module importing it can form a cycle). Modules named in
``$EMONETS_PLUGINS`` (comma-separated) are imported when the registry is first read; they call
:func:`register_stage` / :func:`register_specialist`. Guarded child processes inherit the
variable, so a plugin's stage runs there as well.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

NEEDS = ("face_source", "audio", "video")  # what a unit must have for a stage (WorkUnit.can_run)


def resolve(ref: str) -> Any:
    """The object a ``"module:attribute"`` reference names (imported now)."""
    module, _, attr = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class StageSpec:
    """One extraction stage."""

    name: str
    table: str                   # the catalog table it writes (one partition per work unit)
    needs: str                   # face_source (video frames or still images) | audio | video
    order: str                   # the column ordering one clip's rows in time
    config: str                  # "module:attr": the default config object, or its class
    run: str                     # "module:fn(unit, config, upstream_rows) -> StageOutput"
    decode: str                  # "module:fn(rows) -> array": usable rows, in order, to one array
    upstream: str | None = None  # the stage whose partition of the same unit it reads
    prepare: str | None = None   # "module:fn(force=bool)": set-up before a run's first unit of this
    #                              stage (force=False: skip what is already done) and, forced, to
    #                              repair before retrying a unit whose worker crashed
    usable: str | None = None    # "module:fn(rows) -> rows": drop rows that carry no input
    lazy_items: bool = False     # training keeps each clip's array on disk, read when used
    #                              (emonets.stored_features): too large to hold for every clip
    schema: dict[str, str] | None = field(default=None, compare=False)  # the table's columns (catalog
    #                              types) when catalog.yaml does not declare it (a plugin's table)

    def __post_init__(self) -> None:
        if self.needs not in NEEDS:
            raise ValueError(f"stage {self.name}: needs={self.needs!r}; choose from {', '.join(NEEDS)}")

    def default_config(self) -> Any:
        obj = resolve(self.config)
        return obj() if isinstance(obj, type) else obj

    def compute(self, unit: Any, config: Any, upstream_rows: Any = None) -> Any:
        return resolve(self.run)(unit, config, upstream_rows)

    def decode_rows(self, rows: Any) -> Any:
        return resolve(self.decode)(rows)

    def usable_rows(self, rows: Any) -> Any:
        return resolve(self.usable)(rows) if self.usable else rows

    def prepare_workers(self, *, force: bool = True) -> None:
        if self.prepare:
            resolve(self.prepare)(force=force)


@dataclass(frozen=True)
class SpecialistSpec:
    """One specialist: a model trained on one stage's table."""

    name: str
    model: str                    # "module:Class" with fit / predict_proba / save / load
    config: str                   # "module:Class" of its config dataclass
    reads: str                    # the stage whose table it trains on and scores from
    stages: tuple[str, ...]       # every stage it needs extracted (reads and its upstream)
    fit: str | None = None        # "module:fn(TrainingRequest) -> model"; None: model(cfg).fit(train, val)
    train_on_views: bool = False  # widen the training set with the stage's augmented copies
    pretrained_key: str | None = None  # a setting naming a ready network to start from (then no
    #                               network is trained); a setting of the training, no config field
    plan: Callable[[Any, dict], dict] = field(default=lambda cfg, overrides: {"fits": 0}, compare=False)
    #                               how many Lightning fits it runs and what it does around them

    def model_class(self) -> type:
        return resolve(self.model)

    def config_class(self) -> type:
        return resolve(self.config)

    @property
    def table(self) -> str:
        return stage(self.reads).table

    @property
    def order(self) -> str:
        return stage(self.reads).order


_STAGES: dict[str, StageSpec] = {}
_SPECIALISTS: dict[str, SpecialistSpec] = {}
_plugins_loaded = False
_lock = threading.RLock()


def register_stage(spec: StageSpec) -> StageSpec:
    """Add (or replace) a stage; its table is catalog.yaml's, or declared from ``spec.schema``."""
    with _lock:
        if spec.upstream is not None and spec.upstream not in _STAGES:
            raise ValueError(f"stage {spec.name}: upstream stage {spec.upstream!r} is not registered")
        if spec.schema is not None:
            from data_catalog.catalog import register_table

            register_table(spec.table, spec.schema, producer=spec.name)
        _STAGES[spec.name] = spec
    return spec


def register_specialist(spec: SpecialistSpec) -> SpecialistSpec:
    """Add (or replace) a specialist; the stages it names must be registered first."""
    with _lock:
        missing = [s for s in (spec.reads, *spec.stages) if s not in _STAGES]
        if missing:
            raise ValueError(f"specialist {spec.name}: stages {missing} are not registered")
        if spec.reads not in spec.stages:
            raise ValueError(f"specialist {spec.name}: the stage it reads ({spec.reads}) must be among its stages")
        _SPECIALISTS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a stage or specialist (tests that register toys clean up with this)."""
    with _lock:
        _SPECIALISTS.pop(name, None)
        _STAGES.pop(name, None)


def load_plugins() -> None:
    """Import the modules named in ``$EMONETS_PLUGINS`` (once), for registries kept elsewhere
    (a face ConvNet recipe: emonets.specialists.face_cnn.recipes.register_recipe)."""
    _load_plugins()


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    with _lock:
        if _plugins_loaded:
            return
        for module in filter(None, (m.strip() for m in os.environ.get("EMONETS_PLUGINS", "").split(","))):
            try:
                importlib.import_module(module)
            except Exception as err:  # a user's setting: one clear line, not a traceback from deep inside
                raise ValueError(f"EMONETS_PLUGINS: cannot import {module!r}: {type(err).__name__}: {err}") from err
        _plugins_loaded = True  # only once every plugin registered (a failed one is retried, and fails again)


def stages() -> tuple[str, ...]:
    """Every stage name, in registration order (upstream stages before their dependents)."""
    _load_plugins()
    return tuple(_STAGES)


def specialists() -> tuple[str, ...]:
    _load_plugins()
    return tuple(_SPECIALISTS)


def stage(name: str) -> StageSpec:
    _load_plugins()
    if name not in _STAGES:
        raise ValueError(f"unknown stage {name!r}{_close(name, _STAGES)} (choose from {', '.join(_STAGES)})")
    return _STAGES[name]


def specialist(name: str) -> SpecialistSpec:
    _load_plugins()
    if name not in _SPECIALISTS:
        raise ValueError(f"unknown specialist {name!r}{_close(name, _SPECIALISTS)} "
                         f"(choose from {', '.join(_SPECIALISTS)})")
    return _SPECIALISTS[name]


def stage_of_table(table: str) -> StageSpec:
    """The stage writing ``table``."""
    for spec in (stage(n) for n in stages()):
        if spec.table == table:
            return spec
    raise ValueError(f"no stage writes table {table!r}")


def stages_for(names: list[str] | tuple[str, ...]) -> list[str]:
    """The stages these specialists need, in registration order."""
    wanted = {s for n in names for s in specialist(n).stages}
    return [s for s in stages() if s in wanted]


def stage_chains(names: list[str] | tuple[str, ...]) -> list[list[str]]:
    """These stages grouped into chains that run in order within one unit (a stage after the
    stage it reads), independent of one another: faces → mouths, mfcc, motion."""
    chains: list[list[str]] = []
    where: dict[str, list[str]] = {}
    for name in [s for s in stages() if s in set(names)]:
        up = stage(name).upstream
        chain = where.get(up) if up is not None else None
        if chain is None:
            chain = []
            chains.append(chain)
        chain.append(name)
        where[name] = chain
    return chains


def _close(name: str, known: dict) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def config_fields(spec: SpecialistSpec) -> set[str]:
    return {f.name for f in dataclasses.fields(spec.config_class())}


# -- the built-in stages and specialists ---------------------------------------------------
register_stage(StageSpec(
    name="faces", table="faces", needs="face_source", order="frame",
    config="emonets.features.faces.config:FaceConfig", run="emonets.features.extraction:run_faces",
    decode="emonets.features.faces.rows:decode_faces", usable="emonets.features.faces.rows:found_rows"))
register_stage(StageSpec(
    name="mouths", table="mouths", needs="face_source", order="frame", upstream="faces",
    config="emonets.features.mouths:MouthConfig", run="emonets.features.extraction:run_mouths",
    decode="emonets.features.mouths:decode_mouths"))
register_stage(StageSpec(
    name="mfcc", table="mfcc", needs="audio", order="frame",
    config="emonets.features.mfcc:MfccConfig",
    run="emonets.features.extraction:run_mfcc", decode="emonets.features.mfcc:decode_mfcc",
    prepare="emonets.features.jit_cache:prepare_workers"))  # workers then only read numba's cache
register_stage(StageSpec(
    name="motion", table="motion_blocks", needs="video", order="block",
    config="emonets.features.motion_blocks:MotionConfig", run="emonets.features.extraction:run_motion",
    decode="emonets.features.motion_blocks:decode_blocks", lazy_items=True))  # ~5 MB of blocks a clip

register_specialist(SpecialistSpec(
    name="face_cnn", model="emonets.specialists.face_cnn.model:FaceCNN",
    config="emonets.specialists.face_cnn.model:FaceCNNConfig", reads="faces", stages=("faces",),
    fit="emonets.specialists.face_cnn.fit:fit_face_cnn", pretrained_key="cnn_bundle",
    plan=lambda cfg, overrides: {"fits": 0 if overrides.get("cnn_bundle") else 1, "phase": "loading faces"}))
register_specialist(SpecialistSpec(
    name="audio", model="emonets.specialists.audio.model:AudioSpecialist",
    config="emonets.specialists.audio.model:AudioConfig", reads="mfcc", stages=("mfcc",),
    train_on_views=True,  # the speed-perturbed copies the mfcc stage writes
    plan=lambda cfg, overrides: {"fits": len(cfg.seeds)}))  # a seed ensemble: one fit per seed
register_specialist(SpecialistSpec(
    name="bag_of_mouths", model="emonets.specialists.bag_of_mouths.model:BagOfMouths",
    config="emonets.specialists.bag_of_mouths.model:BagOfMouthsConfig", reads="mouths", stages=("faces", "mouths"),
    plan=lambda cfg, overrides: {"fits": 0, "phase": "k-means dictionaries + logistic regression"}))
register_specialist(SpecialistSpec(
    name="motion", model="emonets.specialists.motion.model:MotionSpecialist",
    config="emonets.specialists.motion.model:MotionSpecialistConfig", reads="motion", stages=("motion",),
    plan=lambda cfg, overrides: {"fits": 1, "phase": "whitening blocks", "then": "k-means words + chi2 SVM"}))
