"""Crash anywhere: `kill -9` the process group of `extract` and of `train-all`, re-run, compare.

On real shared clips (CREMA-D videos with sound for `extract`; for `train-all` the same videos plus
a few RAVDESS utterances laid out as an AFEW tree of symlinks, so there are train, val and test
clips), this script:

1. makes a *reference* store with uninterrupted runs: `ingest` + `extract`, then `train-all`
   (`--specialists audio,motion --max-epochs 1 --fusion-draws 2000` by default: the cheap
   specialists that train on these few clips; face_cnn needs a ConvNet trained on FER-2013 and
   bag_of_mouths more clips), and times when each partition was finished;
2. runs each command once more on the finished reference with nothing changed, to learn which
   partitions every run rewrites by design (`train-all` re-ingests its roots, rewriting `clips`
   and `problems/ingest-*`); those are not counted as "recomputed";
3. optionally (`--control`, on by default) makes a second uninterrupted store, to show that the
   pipeline is deterministic here, so a difference after crashes means something;
4. for each kill point, from a fresh state (a new store with the clips ingested for `extract`; a
   copy of the crash store after the extract cycles for `train-all`): starts the command in its
   own process group (`start_new_session`), kills the group with SIGKILL after a delay, checks for
   surviving processes, re-runs it (on every other cycle the re-run is killed too, then re-run
   again) until one run completes, then compares every catalog table with the reference.

Kill points are spread over the reference run's own timeline: one in start-up (before the first
partition), the rest at evenly spaced times between its first and last finished partition, and
one after the last partition (while the run reports and shuts down). Each is set as "d s after
the run's k-th finished partition" (read off the reference), so that a run slowed or sped up by
the machine's load is still killed at the same point of its work. The first re-run of every
`--double-every`th cycle is killed too, once it has redone half of what was left.

Figures: per table, whether the digest of its sorted rows (sha256 of each row's canonical JSON,
sorted, then hashed) equals the reference's after every cycle; `recomputed_finished` (partitions
complete before a kill whose manifest `created` changed afterwards although their inputs and
config had not, leaving out the by-design rewrites of step 2; `recomputed_of_unfinished_units`
says how many of them are a unit's problems partition, which is written just before the unit's
main partition, whose manifest is the unit's commit point); `lost_finished` (complete before a
kill, missing afterwards); `temp_files` (`.tmp-*` names anywhere in the store at the end of a
cycle); `incomplete_partitions` (partition folders without manifest.json at the end of a cycle);
`stray_processes` (processes the killed run had started, or naming its store in their command
line or environment, still alive 2 s after the kill; each is followed for up to `--stray-wait`
seconds to say how long it lived, then killed by pid).

    nice -n 10 .venv/bin/python benchmarks/bench_crash_anywhere.py [--clips 6] [--extract-kills 6]
        [--train-kills 5] [--no-control] [--keep]

Measured with the defaults (6 CREMA-D clips, 21 RAVDESS utterances, 15 kills): 22 min on 2 cores
shared with other jobs (load 3-6); `--no-control` saves about 2.5 min. Prints one line per run
and a summary, then ONE JSON object as its last line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import yaml

REPO = Path(__file__).resolve().parents[1]
EMONETS = str(Path(sys.executable).with_name("emonets"))
TEMP_PREFIX = ".tmp-"
RAVDESS_EMOTIONS = {"01": "Neutral", "03": "Happy", "04": "Sad", "05": "Angry", "06": "Fear",
                    "07": "Disgust", "08": "Surprise"}  # 02 (calm) is not an EmoNets class: left out
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- data ---------------------------------------------------------------------------------------
def shared_root() -> Path:
    return Path(os.environ.get("EMONETS_SHARED_DATA") or REPO.parent / "shared" / "data")


def make_sources(work: Path, shared: Path, clips: int, talking: int, actors: list[tuple[str, str]],
                 per_actor: int) -> dict:
    """Symlink trees under ``work/src`` (nothing is copied): the extract roots and the train-all roots."""
    src = work / "src"
    crema = src / "crema-d"
    crema.mkdir(parents=True)
    for f in sorted((shared / "crema-d").glob("*.flv"))[:clips]:
        (crema / f.name).symlink_to(f)
    roots = [(crema, "cremad")]
    if talking:
        faces = src / "talking-faces"
        faces.mkdir()
        for f in sorted((shared / "talking-faces").glob("*.mp4"))[:talking]:
            (faces / f.name).symlink_to(f)
        roots.append((faces, "videos"))
    speech = src / "ravdess-afew"
    for actor, split in actors:
        files = [f for f in sorted((shared / "ravdess-speech" / f"Actor_{actor}").glob("*.flac"))
                 if f.stem.split("-")[2] in RAVDESS_EMOTIONS]
        # statement 01 / repetition 01 first, then the rest: a stable, emotion-balanced order
        files.sort(key=lambda f: (f.stem.split("-")[5], f.stem.split("-")[4], f.stem.split("-")[3], f.stem))
        for f in files[:per_actor]:
            folder = speech / split / RAVDESS_EMOTIONS[f.stem.split("-")[2]]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f.name).symlink_to(f)
    return {"extract_roots": roots, "train_roots": roots + [(speech, "afew")],
            "videos": sum(1 for r, _ in roots for _ in r.iterdir()),
            "speech": sum(1 for _ in speech.rglob("*.flac"))}


# -- /proc --------------------------------------------------------------------------------------
def proc_stat(pid: int) -> tuple[int, int, int] | None:
    """(parent pid, process group, start time) of a live, non-zombie process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[2]), int(fields[19])


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def mentions(pid: int, needle: bytes) -> bool:
    """The process's command line or environment names ``needle`` (the store path)."""
    for name in ("cmdline", "environ"):
        try:
            if needle in Path(f"/proc/{pid}/{name}").read_bytes():
                return True
        except OSError:
            pass
    return False


def all_procs() -> dict[int, tuple[int, int, int]]:
    out = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            st = proc_stat(int(entry.name))
            if st:
                out[int(entry.name)] = st
    return out


def uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


class Tracker(threading.Thread):
    """Notes every process of a run (descendants of its leader, or in its process group)."""

    def __init__(self, leader: int, poll: float = 0.1):
        super().__init__(daemon=True)
        self.leader, self.poll = leader, poll
        self.seen: dict[tuple[int, int], str] = {}  # (pid, start time) -> command line
        self._halt = threading.Event()

    def scan(self) -> None:
        procs = all_procs()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in procs.items():
            children.setdefault(ppid, []).append(pid)
        found, todo = {self.leader}, [self.leader]
        while todo:
            for child in children.get(todo.pop(), []):
                if child not in found:
                    found.add(child)
                    todo.append(child)
        found |= {pid for pid, (_, pgid, _) in procs.items() if pgid == self.leader}
        found.discard(os.getpid())
        for pid in found:
            st = procs.get(pid)
            if st and (pid, st[2]) not in self.seen:
                self.seen[(pid, st[2])] = cmdline(pid)

    def run(self) -> None:
        while not self._halt.is_set():
            self.scan()
            self._halt.wait(self.poll)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def alive(pid: int, started: int) -> bool:
    st = proc_stat(pid)
    return st is not None and st[2] == started


def check_strays(tracker: Tracker, store: Path, ended: float, grace: float, wait: float) -> list[dict]:
    """Processes of the run (or naming its store) alive ``grace`` s after it ended; followed up to
    ``wait`` s, then killed by pid. Returns one dict per survivor."""
    tracker.stop()
    watched = {k: v for k, v in tracker.seen.items() if k[0] != tracker.leader}
    while time.monotonic() - ended < grace and any(alive(*k) for k in watched):
        time.sleep(0.05)
    time.sleep(max(0.0, grace - (time.monotonic() - ended)))
    survivors = {k: v for k, v in watched.items() if alive(*k)}
    needle = str(store).encode()
    me = os.getpid()
    for pid, (ppid, _, started) in all_procs().items():  # anything else naming the store
        if pid != me and (pid, started) not in survivors and ppid != me and mentions(pid, needle):
            survivors[(pid, started)] = cmdline(pid)
    out = []
    for (pid, started), cmd in survivors.items():
        t0 = started / CLK_TCK
        while alive(pid, started) and time.monotonic() - ended < wait:
            time.sleep(0.1)
        still = alive(pid, started)
        if still:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        out.append({"pid": pid, "cmdline": cmd[:300], "lived_after_kill_s": round(time.monotonic() - ended, 1),
                    "still_alive_after_wait": still, "age_at_end_s": round(uptime() - t0, 1)})
    return out


# -- store --------------------------------------------------------------------------------------
def load_tables() -> dict[str, str]:
    spec = yaml.safe_load((REPO / "data_catalog" / "catalog.yaml").read_text())["tables"]
    return {name: entry["path"] for name, entry in spec.items()}


def manifests(store: Path, tables: dict[str, str]) -> dict[tuple[str, str], dict]:
    out = {}
    for table, rel in tables.items():
        base = store / rel
        if not base.is_dir():
            continue
        for d in base.iterdir():
            m = d / "manifest.json"
            if d.is_dir() and not d.name.startswith(TEMP_PREFIX) and m.is_file():
                try:
                    out[(table, d.name)] = json.loads(m.read_text())
                except (OSError, ValueError):
                    pass  # being replaced right now
    return out


def temp_files(store: Path) -> list[str]:
    found = []
    for folder, dirs, files in os.walk(store):
        for name in dirs + files:
            if name.startswith(TEMP_PREFIX):
                found.append(str(Path(folder, name).relative_to(store)))
    return found


def incomplete(store: Path, tables: dict[str, str]) -> list[str]:
    out = []
    for table, rel in tables.items():
        base = store / rel
        if base.is_dir():
            out += [f"{rel}/{d.name}" for d in base.iterdir()
                    if d.is_dir() and not d.name.startswith(TEMP_PREFIX) and not (d / "manifest.json").is_file()]
    return out


def _canon(value):
    if isinstance(value, bytes):
        return {"b": value.hex()}
    if isinstance(value, float) and value != value:
        return "NaN"
    if isinstance(value, list):
        return [_canon(v) for v in value]
    return value


def digests(store: Path, tables: dict[str, str], ignore: dict[str, list[str]]) -> dict[str, dict]:
    """Per table: rows, partitions, sha256 of its sorted row digests, and each partition's digest."""
    out = {}
    for table, rel in tables.items():
        base = store / rel
        rows, parts = [], {}
        if base.is_dir():
            for d in sorted(base.iterdir()):
                if not (d / "manifest.json").is_file():
                    continue
                data = pq.read_table(d / "part.parquet")
                drop = [c for c in ignore.get(table, []) if c in data.column_names]
                part_rows = sorted(hashlib.sha256(json.dumps({k: _canon(v) for k, v in r.items()}, sort_keys=True)
                                                  .encode()).hexdigest()
                                   for r in data.drop_columns(drop).to_pylist())
                parts[d.name] = hashlib.sha256("".join(part_rows).encode()).hexdigest()[:16]
                rows += part_rows
        rows.sort()
        out[table] = {"rows": len(rows), "partitions": len(parts),
                      "digest": hashlib.sha256("".join(rows).encode()).hexdigest()[:16], "by_partition": parts}
    return out


def compare(got: dict, ref: dict) -> dict[str, dict]:
    out = {}
    for table, r in ref.items():
        g = got.get(table, {"rows": 0, "partitions": 0, "digest": "", "by_partition": {}})
        entry = {"equal": g["digest"] == r["digest"], "rows": g["rows"], "ref_rows": r["rows"]}
        if not entry["equal"]:
            keys = sorted(set(g["by_partition"]) | set(r["by_partition"]))
            entry["differing_partitions"] = [k for k in keys if g["by_partition"].get(k) != r["by_partition"].get(k)][:10]
        out[table] = entry
    return out


# -- runs ---------------------------------------------------------------------------------------
def child_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "EMONETS_STORE"))}
    env.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    env["COLUMNS"] = "100"
    env["PYTHONUNBUFFERED"] = "1"  # so the output at a kill shows where the run was
    return env


def last_json(text: str) -> dict | None:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def new_partitions(store: Path, tables: dict[str, str], since: float) -> int:
    """Complete partitions whose manifest was written at or after ``since`` (wall clock)."""
    n = 0
    for rel in tables.values():
        try:
            with os.scandir(store / rel) as it:
                for d in it:
                    try:
                        n += os.stat(os.path.join(d.path, "manifest.json")).st_mtime >= since
                    except OSError:
                        pass
        except OSError:
            pass
    return n


def log_tail(path: Path) -> str:
    """The last non-empty line of a run's output (progress bars split on carriage returns)."""
    try:
        text = path.read_bytes()[-4000:].decode(errors="replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    return lines[-1][:140] if lines else ""


def short_cmd(cmd: str) -> str:
    """A process's command line, short: program name and its next two words."""
    words = cmd.split()
    if not words:
        return "?"
    return " ".join([os.path.basename(words[0])] + [os.path.basename(w) if "/" in w else w for w in words[1:3]])[:80]


class Runner:
    def __init__(self, work: Path, tables: dict[str, str], args):
        self.work, self.tables, self.args = work, tables, args
        self.n = 0
        self.strays: list[dict] = []
        self.kinds: dict[str, int] = {}  # the processes killed runs had, by command (short form)

    def run(self, cmd: list[str], store: Path, *, kill: tuple[int, float] | None = None, label: str = "") -> dict:
        """Run ``cmd`` in its own process group; with ``kill=(k, d)``, SIGKILL the group ``d`` s after
        the run has finished its k-th partition (k = 0: ``d`` s after the start)."""
        self.n += 1
        log = self.work / "logs" / f"{self.n:03d}-{label.replace(' ', '-')}.log"
        log.parent.mkdir(exist_ok=True)
        with open(log, "wb") as fh:
            started_wall, started = time.time(), time.monotonic()
            proc = subprocess.Popen(cmd, cwd=self.work, env=child_env(), stdin=subprocess.DEVNULL, stdout=fh,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            tracker = Tracker(proc.pid)
            tracker.scan()
            tracker.start()
            killed, before, tmp_at_kill, anchor, written, tail = False, None, None, None, 0, ""
            while proc.poll() is None:
                if kill is not None:
                    if anchor is None:
                        written = new_partitions(store, self.tables, started_wall) if kill[0] else 0
                        if written >= kill[0]:
                            anchor = time.monotonic()
                    if anchor is not None and time.monotonic() - anchor >= kill[1]:
                        tracker.scan()
                        before = manifests(store, self.tables)
                        os.killpg(proc.pid, signal.SIGKILL)
                        killed = True
                        break
                time.sleep(0.03)
            rc = proc.wait()
            ended = time.monotonic()
            if killed:
                tmp_at_kill = temp_files(store)
                tail = log_tail(log)
                for (pid, _), cmd in tracker.seen.items():
                    if pid != proc.pid:
                        self.kinds[short_cmd(cmd)] = self.kinds.get(short_cmd(cmd), 0) + 1
        strays = check_strays(tracker, store, ended, self.args.stray_grace,
                              self.args.stray_wait if killed else self.args.stray_grace)
        for s in strays:
            s.update(run=self.n, label=label, killed=killed)
        self.strays += strays
        text = log.read_text(errors="replace")
        out = {"run": self.n, "label": label, "rc": rc, "killed": killed, "seconds": round(ended - started, 1),
               "started_wall": started_wall, "strays": len(strays), "procs_seen": len(tracker.seen),
               "summary": last_json(text) if not killed else None, "log": str(log)}
        if killed:
            out.update(kill_at_s=round(ended - started, 1), trigger=kill, before=before,
                       tmp_left_by_kill=len(tmp_at_kill), tmp_names=tmp_at_kill,
                       written_at_kill=sum(1 for m in before.values() if m.get("created", 0) >= started_wall),
                       output_at_kill=tail)
        elif rc:
            out["tail"] = text.strip().splitlines()[-8:]
        return out


def commands(store: Path, roots, args) -> dict[str, list[str]]:
    train = [EMONETS, "train-all", *[str(r) for r, _ in roots["train_roots"]], "--store", str(store)]
    for _, fmt in roots["train_roots"]:
        train += ["--format", fmt]
    train += ["--specialists", args.specialists, "--max-epochs", str(args.max_epochs),
              "--fusion-draws", str(args.fusion_draws)]
    return {"ingest": [[EMONETS, "ingest", str(r), "--store", str(store), "--format", f]
                       for r, f in roots["extract_roots"]],
            "extract": [EMONETS, "extract", "--store", str(store)],
            "train-all": train}


def kill_points(timeline: dict, n: int) -> list[tuple[int, float]]:
    """``n`` kill triggers (k partitions, then d s) spread over the reference run's timeline.

    One in start-up (half-way to the first partition), one after the last partition (half-way to
    the exit), the rest at evenly spaced times between the first and the last partition, each
    expressed as "d s after the k-th partition" of the reference, so that a slower or faster
    re-run on a loaded machine is still killed at the same point of its work.
    """
    made, first, last, total = timeline["made"], timeline["first_s"], timeline["last_s"], timeline["total_s"]
    if not made or n <= 0:
        return [(0, 0.5 * total)][:n]
    targets = [(j + 0.5) / max(1, n - 2) for j in range(max(0, n - 2))]
    points = [(0, round(0.5 * first, 2))]
    for f in targets:
        t = first + f * (last - first)
        k = sum(1 for m in made if m <= t)
        points.append((k, round(t - made[k - 1], 2)))
    if n >= 2:
        points.append((len(made), round(0.5 * (total - last), 2)))
    return points[:n]


def run_timeline(result: dict, store: Path, tables: dict[str, str]) -> dict:
    """When the run finished its partitions, in s from its start (only those it wrote)."""
    t0 = result["started_wall"]
    made = sorted(round(m["created"] - t0, 2) for m in manifests(store, tables).values() if m["created"] >= t0)
    out = {"total_s": result["seconds"], "partitions": len(made), "made": made}
    out.update(first_s=made[0] if made else 0.0, last_s=made[-1] if made else 0.0)
    return out


def must(result: dict, what: str) -> dict:
    if result["rc"] != 0:
        raise SystemExit(f"{what} failed (rc {result['rc']}), see {result['log']}:\n" + "\n".join(result.get("tail", [])))
    return result


# A unit's problems partition is written just before its main partition (problems/<stage>-<clip>
# before <table>/<clip>; problems/score-<specialist> before predictions/<specialist>): the main
# partition is the unit's commit point.
UNIT_OF_PROBLEMS = {"faces-": "faces", "mouths-": "mouths", "mfcc-": "mfcc", "motion-": "motion_blocks",
                    "score-": "predictions"}


def unit_partition(key: tuple[str, str]) -> tuple[str, str] | None:
    """The main partition of the unit a problems partition belongs to (None for other partitions)."""
    if key[0] != "problems":
        return None
    for prefix, table in UNIT_OF_PROBLEMS.items():
        if key[1].startswith(prefix):
            return table, key[1][len(prefix):]
    return None


def changed(before: dict, after: dict, by_design: set) -> dict:
    """Complete partitions before a kill that were rewritten (same inputs) or lost afterwards."""
    recomputed, lost, legit = [], [], 0
    for key, m in before.items():
        now = after.get(key)
        if now is None:
            lost.append("/".join(key))
        elif now.get("created") != m.get("created"):
            same = now.get("inputs") == m.get("inputs") and now.get("config") == m.get("config") \
                and now.get("library_version") == m.get("library_version")
            if not same:
                legit += 1
            elif key not in by_design:
                unit = unit_partition(key)
                recomputed.append({"partition": "/".join(key),
                                   "same_fingerprint": now.get("fingerprint") == m.get("fingerprint"),
                                   # its unit's main partition was not finished at the kill
                                   "unit_unfinished": bool(unit and unit not in before)})
    return {"recomputed": recomputed, "lost": lost, "rewritten_new_inputs": legit}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=6, help="CREMA-D clips (videos with sound; at most 6)")
    ap.add_argument("--talking-faces", type=int, default=0, help="talking-face videos added (0-7; longer, slower)")
    ap.add_argument("--speech-actors", default="01:Train,15:Val,17:Test",
                    help="RAVDESS actors and their split for train-all (actor:Split,...)")
    ap.add_argument("--speech-per-actor", type=int, default=7, help="RAVDESS utterances per actor (at most 52)")
    ap.add_argument("--extract-kills", type=int, default=6, help="kill points in extract runs")
    ap.add_argument("--train-kills", type=int, default=5, help="kill points in train-all runs")
    ap.add_argument("--double-every", type=int, default=2,
                    help="every Nth cycle also kills the first re-run (0: never)")
    ap.add_argument("--specialists", default="audio,motion")
    ap.add_argument("--max-epochs", type=int, default=1)
    ap.add_argument("--fusion-draws", type=int, default=2000)
    ap.add_argument("--control", action=argparse.BooleanOptionalAction, default=True,
                    help="a second uninterrupted store, to check the runs are deterministic")
    ap.add_argument("--stray-grace", type=float, default=2.0, help="s after a kill before survivors count")
    ap.add_argument("--stray-wait", type=float, default=15.0, help="s a survivor is followed before it is killed")
    ap.add_argument("--ignore", default="", help="table:column,... left out of the digests (none by default)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (stores and logs)")
    args = ap.parse_args()

    begun = time.monotonic()
    shared = shared_root()
    if not (shared / "crema-d").is_dir():
        raise SystemExit(f"no shared data at {shared} (set EMONETS_SHARED_DATA)")
    actors = [tuple(a.split(":")) for a in args.speech_actors.split(",") if a]
    ignore: dict[str, list[str]] = {}
    for item in filter(None, args.ignore.split(",")):
        table, column = item.split(":")
        ignore.setdefault(table, []).append(column)
    tables = load_tables()
    work = Path(tempfile.mkdtemp(prefix="emonets-bench-crash-"))
    print(f"work folder: {work}", flush=True)
    roots = make_sources(work, shared, args.clips, args.talking_faces, actors, args.speech_per_actor)
    print(f"data: {roots['videos']} videos (extract), + {roots['speech']} RAVDESS utterances (train-all)", flush=True)
    runner = Runner(work, tables, args)

    def show(r: dict) -> None:
        what = f"killed at {r['kill_at_s']:5.1f} s" if r["killed"] else f"rc {r['rc']:<3}         "
        extra = ""
        if r.get("summary"):
            s = r["summary"]
            if "computed" in s:
                extra = f"computed {s['computed']} cached {s['cached']}"
            elif "specialists" in s:
                extra = "; ".join(f"{k} {v['status']}" for k, v in s["specialists"].items()) + \
                        f"; extraction computed {s['extraction']['computed']}"
        print(f"  run {r['run']:3d} {r['label']:<22} {what} {r['seconds']:6.1f} s  procs {r['procs_seen']:2d}  "
              f"strays {r['strays']}  {r.get('stage', '')}{extra}", flush=True)

    def run(cmd, store, ref_partitions: int = 0, **kw) -> dict:
        r = runner.run(cmd, store, **kw)
        if r["killed"]:
            k, d = r["trigger"]
            r["stage"] = (f"trigger {'start' if not k else f'partition {k}/{ref_partitions}'} + {d:.1f} s; "
                          f"{r['written_at_kill']}/{ref_partitions} written; output: {r['output_at_kill'][:70]!r}; ")
        show(r)
        return r

    def ingest(store: Path) -> None:
        for cmd in commands(store, roots, args)["ingest"]:
            must(runner.run(cmd, store, label="ingest"), "ingest")

    # 1. reference
    ref = work / "ref"
    cmds = commands(ref, roots, args)
    print("reference (uninterrupted):", flush=True)
    ingest(ref)
    r = must(run(cmds["extract"], ref, label="ref extract"), "reference extract")
    extract_tl = run_timeline(r, ref, tables)
    ref_snapshot = work / "ref-after-extract"
    shutil.copytree(ref, ref_snapshot, symlinks=True)
    ref_extract = digests(ref, tables, ignore)
    before = manifests(ref, tables)
    r = must(run(cmds["extract"], ref, label="ref extract again"), "reference extract re-run")
    by_design = {k for k, m in manifests(ref, tables).items() if k in before and m["created"] != before[k]["created"]}
    r = must(run(cmds["train-all"], ref, label="ref train-all"), "reference train-all")
    train_tl = run_timeline(r, ref, tables)
    ref_full = digests(ref, tables, ignore)
    before = manifests(ref, tables)
    must(run(cmds["train-all"], ref, label="ref train-all again"), "reference train-all re-run")
    by_design |= {k for k, m in manifests(ref, tables).items() if k in before and m["created"] != before[k]["created"]}
    print(f"  extract: {extract_tl['partitions']} partitions, first {extract_tl['first_s']} s, last "
          f"{extract_tl['last_s']} s, exit {extract_tl['total_s']} s\n  train-all: {train_tl['partitions']} partitions, "
          f"first {train_tl['first_s']} s, last {train_tl['last_s']} s, exit {train_tl['total_s']} s\n"
          f"  rewritten by every run (not counted): {sorted('/'.join(k) for k in by_design)}", flush=True)

    control = None
    if args.control:
        print("control (a second uninterrupted store):", flush=True)
        ctl = work / "control"
        ccmds = commands(ctl, roots, args)
        ingest(ctl)
        must(run(ccmds["extract"], ctl, label="control extract"), "control extract")
        c_extract = compare(digests(ctl, tables, ignore), ref_extract)
        must(run(ccmds["train-all"], ctl, label="control train-all"), "control train-all")
        c_full = compare(digests(ctl, tables, ignore), ref_full)
        control = {"after_extract": {t: v["equal"] for t, v in c_extract.items()},
                   "after_train_all": {t: v["equal"] for t, v in c_full.items()},
                   "equal": all(v["equal"] for v in c_extract.values()) and all(v["equal"] for v in c_full.values())}
        shutil.rmtree(ctl, ignore_errors=True)

    # 2. crash cycles
    crash = work / "crash"
    ccmds = commands(crash, roots, args)
    kills, cycles = [], []
    per_table = {t: True for t in tables}
    totals = {"recomputed": [], "lost": [], "temp_files": 0, "incomplete": 0, "recovery_failed": 0}

    def cycle(kind: str, trigger: tuple[int, float], index: int, reset, ref_digests: dict, ref_partitions: int) -> None:
        reset()
        cmd = ccmds[kind]
        results = [run(cmd, crash, kill=trigger, label=f"{kind} kill {index + 1}", ref_partitions=ref_partitions)]
        if args.double_every and index % args.double_every == args.double_every - 1 and results[-1]["killed"]:
            # kill the first re-run too, once it has redone half of what the killed run left
            left = max(2, ref_partitions - results[-1]["written_at_kill"])
            results.append(run(cmd, crash, kill=(left // 2, 0.0), label=f"{kind} kill {index + 1} re-run",
                               ref_partitions=ref_partitions))
        rerun = run(cmd, crash, label=f"{kind} recover {index + 1}")
        while rerun["rc"] != 0 and len(results) < 6:  # e.g. refused: a survivor holds the lock
            totals["recovery_failed"] += 1
            print(f"    re-run failed (rc {rerun['rc']}): {' | '.join(rerun.get('tail', [])[-3:])}", flush=True)
            results.append(rerun)
            time.sleep(2)
            rerun = run(cmd, crash, label=f"{kind} recover {index + 1}")
        after = manifests(crash, tables)
        tmp, inc = temp_files(crash), incomplete(crash, tables)
        cmp = compare(digests(crash, tables, ignore), ref_digests)
        for t, v in cmp.items():
            per_table[t] = per_table[t] and v["equal"]
        entry = {"kind": kind, "cycle": index + 1, "recover_rc": rerun["rc"],
                 "recover_summary": {k: v for k, v in (rerun.get("summary") or {}).items()
                                     if k in ("computed", "cached", "failed", "problems", "extraction", "specialists")},
                 "tables_equal": all(v["equal"] for v in cmp.values()),
                 "unequal": {t: v for t, v in cmp.items() if not v["equal"]},
                 "temp_files_end": tmp[:10], "incomplete_end": inc[:10], "kills": []}
        for r in results:
            if not r["killed"]:
                continue
            ch = changed(r["before"], after, by_design)
            totals["recomputed"] += ch["recomputed"]
            totals["lost"] += ch["lost"]
            k = {"kind": kind, "cycle": index + 1, "delay_s": r["kill_at_s"], "trigger": list(r["trigger"]),
                 "tmp_names": r["tmp_names"][:3],
                 "written_at_kill": r["written_at_kill"], "output_at_kill": r["output_at_kill"], "rc": r["rc"],
                 "stage": r["stage"].rstrip("; "), "complete_before_kill": len(r["before"]),
                 "tmp_left_by_kill": r["tmp_left_by_kill"], "procs_of_run": r["procs_seen"],
                 "strays": r["strays"], "recomputed": len(ch["recomputed"]), "lost": len(ch["lost"]),
                 "rewritten_new_inputs": ch["rewritten_new_inputs"]}
            kills.append(k)
            entry["kills"].append(k)
        for r in results:
            if not r["killed"] and r["rc"] == 0 and r is results[0]:
                entry["finished_before_kill"] = True
        totals["temp_files"] += len(tmp)
        totals["incomplete"] += len(inc)
        cycles.append(entry)
        status = "equal" if entry["tables_equal"] else f"DIFFER: {sorted(entry['unequal'])}"
        print(f"    -> tables {status}; recomputed {sum(k['recomputed'] for k in entry['kills'])}, "
              f"lost {sum(k['lost'] for k in entry['kills'])}, temp files {len(tmp)}, incomplete {len(inc)}",
              flush=True)

    def fresh_store() -> None:
        shutil.rmtree(crash, ignore_errors=True)
        ingest(crash)

    print(f"extract crash cycles (kill (after partition k, + s): {kill_points(extract_tl, args.extract_kills)}):",
          flush=True)
    for i, delay in enumerate(kill_points(extract_tl, args.extract_kills)):
        cycle("extract", delay, i, fresh_store, ref_extract, extract_tl["partitions"])

    crash_snapshot = work / "crash-after-extract"
    if crash.exists():
        shutil.copytree(crash, crash_snapshot, symlinks=True)
    else:
        shutil.copytree(ref_snapshot, crash_snapshot, symlinks=True)

    def from_snapshot() -> None:
        shutil.rmtree(crash, ignore_errors=True)
        shutil.copytree(crash_snapshot, crash, symlinks=True)

    print(f"train-all crash cycles (kill (after partition k, + s): {kill_points(train_tl, args.train_kills)}):",
          flush=True)
    for i, delay in enumerate(kill_points(train_tl, args.train_kills)):
        cycle("train-all", delay, i, from_snapshot, ref_full, train_tl["partitions"])

    strays = runner.strays
    result = {
        "kills": len(kills),
        "tables_equal": all(per_table.values()),
        "tables": per_table,
        "recomputed_finished": len(totals["recomputed"]),
        "recomputed_of_unfinished_units": sum(1 for r in totals["recomputed"] if r["unit_unfinished"]),
        "lost_finished": len(totals["lost"]),
        "temp_files": totals["temp_files"],
        "incomplete_partitions": totals["incomplete"],
        "stray_processes": len(strays),
        "recovery_failed": totals["recovery_failed"],
        "control_equal": control["equal"] if control else None,
        "seconds": round(time.monotonic() - begun, 1),
        "clips": {"videos": roots["videos"], "speech": roots["speech"]},
        "specialists": args.specialists.split(","),
        "ignored_columns": ignore,
        "rewritten_every_run": sorted("/".join(k) for k in by_design),
        "timelines": {name: {k: v for k, v in tl.items() if k != "made"}
                      for name, tl in (("extract", extract_tl), ("train_all", train_tl))},
        "per_kill": [{k: v for k, v in kk.items() if k != "cycle"} for kk in kills],
        "recomputed_detail": totals["recomputed"][:20],
        "lost_detail": totals["lost"][:20],
        "strays_detail": strays[:20],
        "processes_of_killed_runs": runner.kinds,
        "unequal_detail": [{"kind": c["kind"], "cycle": c["cycle"], "unequal": c["unequal"]}
                           for c in cycles if not c["tables_equal"]][:10],
        "control": control,
        "cpus": os.cpu_count(),
    }
    print("\nsummary")
    print(f"{'kill':>4} {'command':<10}{'at s':>6} {'rc':>4} {'written':>8} {'tmp':>4} {'strays':>6} {'recomp':>6}  "
          f"output at the kill")
    for i, k in enumerate(kills):
        print(f"{i + 1:>4} {k['kind']:<10}{k['delay_s']:>6} {k['rc']:>4} {k['written_at_kill']:>8} "
              f"{k['tmp_left_by_kill']:>4} {k['strays']:>6} {k['recomputed']:>6}  {k['output_at_kill'][:60]}")
    for t, ok in per_table.items():
        print(f"  {t:<18} {'equal' if ok else 'DIFFERS'}")
    for s in strays:
        print(f"  stray after run {s['run']} ({s['label']}): pid {s['pid']} lived {s['lived_after_kill_s']} s "
              f"after the run ended{' (killed by the benchmark)' if s['still_alive_after_wait'] else ''}: {s['cmdline'][:160]}")
    for item in totals["recomputed"][:20]:
        print(f"  recomputed: {item}")
    print("processes seen in the killed runs (command: count):")
    for cmd, count in sorted(runner.kinds.items(), key=lambda kv: -kv[1]):
        print(f"  {count:4d}  {cmd}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"kept {work}")
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
