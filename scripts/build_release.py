"""`make release`: rebuild the fused model that ships in emonets/release/ from the data, print
its figures (one JSON object last).

1. compose the composed audio-video set from FER-2013 and RAVDESS (../shared/data);
2. the face ConvNet: the recipe (`--face recipe`, default: FER-2013 ingested into its own store,
   `emonets train face_cnn --recipe fer-ensemble-v1`: hours on a CPU, continued where a stopped
   run left off) or the shipped one (`--face shipped`: minutes, for a quick rebuild);
3. `train-all` on the composed set (the face specialist starts from that ConvNet);
4. motion kept or left out of the fusion by the rule fixed in emonets.release_build;
5. the fused bundle copied, its weights halved when no figure moves (measured: `evaluate` of both
   on composed val and test), into emonets/release/fused; MODEL_CARD.md's fused section and
   SHA256SUMS rewritten, and verified.

    python scripts/build_release.py                # the whole thing
    python scripts/build_release.py --face shipped # reuse the shipped ConvNet
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("EMONETS_SHARED_DATA",
                                                                          REPO.parent / "shared" / "data")))
    ap.add_argument("--work", type=Path, default=REPO / "emonets-store" / "release-build",
                    help="where the composed set, the stores and the evaluation live (kept: a re-run reuses them)")
    ap.add_argument("--face", choices=("recipe", "shipped"), default="recipe")
    ap.add_argument("--recipe", default="fer-ensemble-v1")
    ap.add_argument("--out", type=Path, default=REPO / "emonets" / "release")
    ap.add_argument("--per-class", type=int, default=None,
                    help="composed clips per class and split (a quick look into another --out; default: all)")
    args = ap.parse_args()
    if args.per_class is not None and args.out.resolve() == (REPO / "emonets" / "release").resolve():
        raise SystemExit("error: --per-class builds a quick look; give it another --out (never the shipped release)")

    from data_catalog import Store
    from emonets import __version__
    from emonets.bundle import replace_dir
    from emonets.datasets.compose.dataset import compose_dataset
    from emonets.fusion.model import SELECTION_RULE
    from emonets.prediction_run import evaluate_root
    from emonets import release_build as rb
    from emonets.release import shipped_model, verify, write_sums
    from flows.train_all import train_all
    from tasks.fuse import run_fusion

    started = time.perf_counter()
    composed = args.work / "composed"
    compose_dataset(args.shared / "fer2013", args.shared / "ravdess-speech", composed, seed=0, workers=2,
                    per_class=args.per_class)
    face_source = "the shipped FER-2013 ConvNet (`face_cnn/` above), not retrained"
    cnn_bundle = str(shipped_model("face_cnn"))
    if args.face == "recipe":
        from flows.train_specialist import train_specialist
        from tasks.ingest import ingest_root

        fer_store = args.work / "fer-store"
        ingest_root.fn(str(args.shared / "fer2013"), str(fer_store), "fer2013")
        made = train_specialist("face_cnn", str(fer_store), recipe=args.recipe)["recipe"]
        cnn_bundle = made["bundle"]
        val = (made.get("val_faces") or {}).get("accuracy")
        face_source = (f"recipe `{args.recipe}` on FER-2013 train ({len(made['lineages'])} lineages, every final net "
                       f"averaged, {made['tta']} views; FER-2013 val {val:.4f}, not used to choose anything)")
    store = Store(args.work / "store")
    summary = train_all(data_roots=[str(composed)], store_root=str(store.root),
                        configs={"face_cnn": {"cnn_bundle": cnn_bundle}})
    partitions = store.partitions("clips")
    specialists = [n for n, s in summary["specialists"].items() if s["status"] != "failed"]
    motion = rb.motion_decision(store, specialists, partitions)
    if not motion["keep"] and "motion" in specialists:
        specialists = [s for s in specialists if s != "motion"]
        run_fusion(str(store.root), specialists, partitions)  # the fused bundle without motion
    if "with_motion" in motion:
        w, wo = motion["with_motion"], motion["without_motion"]
        motion["summary"] = (f"{'Kept' if motion['keep'] else 'Left out'}: CV accuracy on val "
                             f"{w['cv_accuracy']:.3f} with it ({w['method']}), {wo['cv_accuracy']:.3f} without "
                             f"({wo['method']}, one standard error {wo['standard_error']:.3f}); the rule: {rb.MOTION_RULE}.")
    else:
        motion["summary"] = motion.get("note", "")

    fused = store.path("models", "fused")
    full = rb.copy_bundle_tree(fused, args.work, "fused-float32")
    half = rb.copy_bundle_tree(fused, args.work, "fused-float16")
    rb.halve_torch_weights(half)
    evaluations = {}
    for name, bundle in (("float32", full), ("float16", half)):
        work = Store(args.work / "eval")  # one store: the clips are extracted once for both bundles
        evaluations[name] = {split: evaluate_root(str(bundle), str(composed), "auto", work, split)
                             for split in ("val", "test")}
    same = all(rb.figures_equal(evaluations["float32"][s], evaluations["float16"][s]) for s in ("val", "test"))
    chosen = half if same else full
    clips = store.read("clips", partitions=partitions)
    counts = clips["split"].value_counts().to_dict()
    build = {"specialists": specialists, "fusion_method": json.loads((fused / "bundle.json").read_text())["config"]["method"],
             "fusion_rule": SELECTION_RULE, "library_version": __version__, "built": time.strftime("%Y-%m-%d"),
             "weights": "float16" if same else "float32", "weights_rule": rb.HALF_RULE,
             "bytes": rb.bundle_bytes(chosen), "face_source": face_source, "motion": motion,
             "clips": {"total": int(len(clips)), **{k: int(v) for k, v in counts.items()}},
             "evaluation": evaluations["float16" if same else "float32"],
             "float16_vs_float32": {s: {"float32": {k: evaluations["float32"][s][k] for k in ("accuracy", "macro_f1")},
                                        "float16": {k: evaluations["float16"][s][k] for k in ("accuracy", "macro_f1")}}
                                    for s in ("val", "test")}}
    # The whole release is staged beside the old one (its face_cnn/, the new fused/, the card and
    # SHA256SUMS), verified, then swapped in: never a release whose sums do not match.
    args.out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{args.out.name}-", dir=args.out.parent))
    try:
        staged = staging / args.out.name
        if args.out.is_dir():
            shutil.copytree(args.out, staged, ignore=shutil.ignore_patterns("__pycache__"))
        staged.mkdir(exist_ok=True)
        shutil.rmtree(staged / "fused", ignore_errors=True)  # the staged copy's, not the release's
        shutil.copytree(chosen, staged / "fused")
        rb.write_card_section(staged / "MODEL_CARD.md", rb.fused_card(build))
        write_sums(staged)
        verify(staged)
        replace_dir(staged, args.out)
    finally:
        for folder in (staging, full.parent, half.parent):  # this build's own temporary copies
            shutil.rmtree(folder, ignore_errors=True)
    build["release_bytes"] = rb.bundle_bytes(args.out)
    build["seconds"] = round(time.perf_counter() - started, 1)
    (args.work / "release.json").write_text(json.dumps(build, indent=2, default=str))
    test = build["evaluation"]["test"]
    print(f"release: fused {', '.join(specialists)} ({build['fusion_method']}, {build['weights']}, "
          f"{build['bytes'] / 1e6:.1f} MB; whole release {build['release_bytes'] / 1e6:.1f} MB); composed test "
          f"accuracy {test['accuracy']:.3f}, macro-F1 {test['macro_f1']:.3f} (n {test['n']}); "
          f"motion {'kept' if motion['keep'] else 'left out'}")
    print(rb.summary_line(build))


if __name__ == "__main__":
    main()
