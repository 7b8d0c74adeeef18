"""Which clips a specialist's training set gained, lost or changed since its bundle was made,
and whether it may continue from that bundle (warm) or must train from scratch (full).

The training set is the clips a model learns or early-stops from (splits train and val); test
clips are only scored. The change is computed from fingerprints, never timestamps: per clip, its
content hash, label and split and the config and library version its feature partition was made
with (a partition is a function of exactly these; FER images share one partition per 2,000, so
the partition's own content hash would mark 1,999 untouched images as changed). The bundle
records the map; the next run diffs it against the store's.

The rule (fixed here, shown in the report next to the decision):

- full when there is no previous bundle or it has no clip map, when the config, ``max_epochs`` or
  the library version differ, when asked (``RetrainPolicy.full``: ``--full``, ``retrain="full"``,
  the scheduled retraining), when more than
  ``max_changed_fraction`` of the previous training set was added, removed or changed, or when
  any clip was removed or changed beyond ``max_removed_fraction`` (fine-tuning cannot un-learn a
  clip) or was marked withdrawn;
- warm otherwise: the network parts continue from the previous bundle, the cheap heads re-fit
  (each specialist's ``fit_warm`` says what it continues; one without trains from scratch).

A full retrain asked for also replaces a bundle that is current but was warm-started: the
scheduled run is what stops warm starts from piling up on one another.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from data_catalog import Store
from emonets import registry


TRAINING_SPLITS = ("train", "val")  # what a model learns or early-stops from


@dataclass(frozen=True)
class RetrainPolicy:
    max_changed_fraction: float = 0.10   # above this share of the previous set: train from scratch
    max_removed_fraction: float = 0.01   # removed or changed clips above this share: from scratch
    full: bool = False                   # always from scratch (--full, and the scheduled run)
    withdrawn: frozenset[str] = frozenset()  # clips a user withdrew: removing any is a full retrain


@dataclass(frozen=True)
class ClipChanges:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)   # same clip id, other bytes, label or split
    previous: int = 0                                  # clips in the previous training set

    @property
    def count(self) -> int:
        return len(self.added) + len(self.removed) + len(self.changed)

    def summary(self, limit: int = 20) -> dict:
        """Counts and (at most ``limit`` of) the clip ids, for the report and the bundle."""
        return {"previous": self.previous, "added": len(self.added), "removed": len(self.removed),
                "changed": len(self.changed), **{f"{k}_ids": sorted(getattr(self, k))[:limit]
                                                 for k in ("added", "removed", "changed")}}


@dataclass(frozen=True)
class Decision:
    mode: str            # reuse | warm | full
    reason: str
    changes: ClipChanges | None = None

    def to_dict(self) -> dict:
        out = {"mode": self.mode, "reason": self.reason}
        if self.changes is not None:
            out["changes"] = self.changes.summary()
        return out


def clip_fingerprints(store: Store, specialist: str, clip_partitions: list[str] | None = None) -> dict[str, str]:
    """Clip id -> fingerprint of what that clip gives the specialist, for every clip of its
    training set (splits train and val) with a complete feature partition."""
    return fingerprints(store, specialist, clip_partitions)[0]


def fingerprints(store: Store, specialist: str, clip_partitions: list[str] | None = None,
                 clips=None) -> tuple[dict[str, str], dict[str, str]]:
    """(training fingerprints, content fingerprints) of the clips with a complete feature partition.

    The training fingerprint (train and val clips only) adds label and split to the content: what
    the retraining rule diffs. The content fingerprint (every split) is the clip's bytes and how its
    features were made: what keys its per-clip intermediates (emonets.clip_cache). ``clips``: the
    clips table of those partitions, when the caller has read it already.
    """
    from emonets.features.extraction import work_units

    table = registry.specialist(specialist).table
    if clips is None:
        keys = store.partitions("clips") if clip_partitions is None else list(clip_partitions)
        clips = store.read("clips", partitions=keys)
    rows = clips.set_index("clip_id")
    training, content = {}, {}
    for unit in work_units(clips):
        manifest = store.manifest(table, unit.key)
        if manifest is None:
            continue
        made_with = json.dumps([manifest.config, manifest.library_version], sort_keys=True, default=str)
        for clip_id in unit.clip_ids:
            row = rows.loc[clip_id]
            content[clip_id] = _short_hash(str(row["sha256"]), table, made_with)
            if row["split"] in TRAINING_SPLITS:
                training[clip_id] = _short_hash(str(row["sha256"]), str(row["label"]), str(row["split"]), made_with)
    return training, content


def _short_hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def diff(previous: dict[str, str], current: dict[str, str]) -> ClipChanges:
    return ClipChanges(added=sorted(set(current) - set(previous)), removed=sorted(set(previous) - set(current)),
                       changed=sorted(c for c in set(previous) & set(current) if previous[c] != current[c]),
                       previous=len(previous))


def decide(previous_inputs: dict | None, inputs: dict, previous_clips: dict[str, str] | None,
           clips: dict[str, str], policy: RetrainPolicy = RetrainPolicy()) -> Decision:
    """Reuse, warm or full for a specialist whose bundle was made from ``previous_inputs`` (its
    recorded training inputs, emonets.freshness.training_inputs) and ``previous_clips``."""
    if previous_inputs == inputs:
        return Decision("reuse", "inputs unchanged")
    if previous_inputs is None:
        return Decision("full", "no previous model")
    for key, what in (("config", "the config"), ("max_epochs", "max_epochs"),
                      ("library_version", "the library version")):
        if previous_inputs.get(key) != inputs.get(key):
            return Decision("full", f"{what} changed ({previous_inputs.get(key)!r} -> {inputs.get(key)!r})")
    if previous_clips is None:
        return Decision("full", "the previous model records no clip list")
    changes = diff(previous_clips, clips)
    base = max(1, changes.previous)
    if policy.full:
        return Decision("full", "a full retrain was asked for", changes)
    withdrawn = sorted(policy.withdrawn & (set(changes.removed) | set(changes.changed)))
    if withdrawn:
        return Decision("full", f"withdrawn clips left the training set ({', '.join(withdrawn[:5])}): "
                                "fine-tuning cannot un-learn them", changes)
    if changes.count / base > policy.max_changed_fraction:
        return Decision("full", f"{changes.count} of {changes.previous} training clips added, removed or changed "
                                f"({changes.count / base:.1%} > {policy.max_changed_fraction:.0%})", changes)
    lost = len(changes.removed) + len(changes.changed)
    if lost / base > policy.max_removed_fraction:
        return Decision("full", f"{lost} clips removed or changed ({lost / base:.1%} > "
                                f"{policy.max_removed_fraction:.0%}): fine-tuning cannot un-learn them", changes)
    if changes.count == 0:
        return Decision("warm", "the same training clips; only data it does not learn from changed", changes)
    return Decision("warm", f"{len(changes.added)} added, {len(changes.removed)} removed, {len(changes.changed)} "
                            f"changed of {changes.previous} training clips ({changes.count / base:.1%})", changes)


RETRAIN_MODES = ("auto", "full")


def retrain_policy(retrain: str = "auto", withdrawn: list[str] | None = None) -> RetrainPolicy:
    """The policy of a run's ``retrain`` setting: "auto" (warm where the rule allows) or "full"."""
    if retrain not in RETRAIN_MODES:
        raise ValueError(f"retrain must be one of {', '.join(RETRAIN_MODES)}, not {retrain!r}")
    return RetrainPolicy(full=retrain == "full", withdrawn=frozenset(str(c) for c in withdrawn or ()))


def policy_dict(policy: RetrainPolicy) -> dict:
    d = asdict(policy)
    d["withdrawn"] = sorted(policy.withdrawn)
    return d

