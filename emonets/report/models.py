"""What the report says about the models: which specialist the fusion trusts for which class
(read off the fitted fuser's parameters), and what identifies each bundle (a sha256 over its
parts, the data it was trained on, when and with which versions)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from emonets.labels import EMOTIONS


def describe_fuser(fuser: Any, method: str, specialists: Sequence[str]) -> dict[str, Any]:
    """Which specialist a fitted fuser leans on for which class, read off its parameters.

    ``weights`` maps a class (or "every class", for fusers with no per-class weights) to a
    weight per specialist; ``trusted`` gives the specialist(s) with the largest weight there.
    """
    specs = list(specialists)
    if method == "random_search":
        W = np.asarray(fuser.weights_, np.float64)  # (s, 7); each class's column sums to one
        rows = {c: W[:, i] for i, c in enumerate(EMOTIONS)}
        how = ("A weight per specialist and class (each class's weights sum to 1; a specialist missing on a clip "
               "hands its share to the others)")
    elif method == "learned":
        coef = np.asarray(fuser.coef_, np.float64)  # (7, 7s log-probs + s presence flags)
        n = len(EMOTIONS)  # feature s * 7 + c is specialist s's log-probability of class c
        rows = {c: np.array([coef[i, s * n + i] for s in range(len(specs))]) for i, c in enumerate(EMOTIONS)}
        how = ("Logistic regression; shown: the coefficient on each specialist's log-probability of the class itself "
               "(it also weighs the other classes' log-probabilities and which specialists were present)")
    elif method == "log_linear":
        rows = {"every class": np.asarray(fuser.weights_, np.float64)}
        how = "A product of experts: one weight per specialist, the same for every class, plus a bias per class"
    elif method == "mean":
        rows = {"every class": np.full(len(specs), 1.0 / max(len(specs), 1))}
        how = "The plain mean: every specialist that scored a clip counts equally"
    else:
        rows, how = {}, f"No weights known for fusion method {method!r}"
    weights = {k: {s: round(float(v), 4) for s, v in zip(specs, w)} for k, w in rows.items()}
    trusted = {k: [s for s, v in w.items() if v >= max(w.values()) - 1e-9] for k, w in weights.items() if w}
    return {"method": method, "specialists": specs, "per_class": method in ("random_search", "learned"),
            "weights": weights, "trusted": trusted, "how": how}


def fusion_trust(bundle_dir: Path | str) -> dict[str, Any] | None:
    """``describe_fuser`` of the fuser saved in a fused bundle (None when there is no bundle).

    Reads only the bundle's own arrays, not the specialist copies inside it.
    """
    from emonets.bundle import is_bundle, load_bundle
    from emonets.fusion.fusers import FUSERS

    if not is_bundle(bundle_dir):
        return None
    bundle = load_bundle(bundle_dir, kind="fused")
    method = bundle.config.get("method")
    if method not in FUSERS:
        raise ValueError(f"{bundle_dir}: unknown fusion method {method!r}")
    arrays = {k[len("fuser_"):]: v for k, v in bundle.arrays.items() if k.startswith("fuser_")}
    return describe_fuser(FUSERS[method].from_arrays(arrays), method, bundle.config.get("specialists", []))


def describe_bundle(path: Path | str) -> dict[str, Any] | None:
    """What identifies a model bundle: a sha256 over its listed parts, the fingerprint of the data
    it was trained on, when it was made and with which package versions (None: no bundle)."""
    from emonets.bundle import read_description

    path = Path(path)
    try:
        desc = read_description(path)
    except FileNotFoundError:
        return None
    digest = hashlib.sha256()
    for name in sorted(desc.get("files", [])):
        digest.update(name.encode() + b"\0")
        part = path / name
        if part.is_file():
            with part.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    inputs = desc.get("inputs", {}) or {}
    meta = desc.get("meta", {}) or {}
    created = meta.get("created")
    return {"kind": desc.get("kind"), "method": (desc.get("config") or {}).get("method"),
            "fingerprint": digest.hexdigest(),
            "trained_on": (inputs.get("training") or {}).get("data") or inputs.get("data"),
            "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created)) if created else None,
            "versions": meta.get("versions", {}), "retraining": retraining_text(desc.get("retraining"))}


def retraining_text(retraining: dict | None) -> str | None:
    """One line: how the model was trained and why (emonets.retraining), e.g.
    "from scratch (rule: full, no previous model)"."""
    if not retraining:
        return None
    changes = retraining.get("changes")
    mode = retraining.get("mode", "?")
    delta = (f"; {changes.get('added')} added, {changes.get('removed')} removed, {changes.get('changed')} changed of "
             f"{changes.get('previous')} training clips" if changes and mode == "full" else "")  # warm: in the reason
    note = f"; {retraining['note']}" if retraining.get("note") else ""
    trained = retraining.get("trained", "?")
    if trained == "warm":
        created = f" of {retraining['warm_from_created']}" if retraining.get("warm_from_created") else ""
        trained = f"warm from the previous bundle{created}: {retraining.get('warm_start', '')}"
    cache = retraining.get("clip_cache") or {}
    reused = f"; {cache['hits']} clips' intermediates reused" if cache.get("hits") else ""
    return f"{trained} (rule: {mode}, {retraining.get('reason', '?')}{delta}){note}{reused}"
