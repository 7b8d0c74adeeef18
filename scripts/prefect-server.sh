#!/usr/bin/env bash
# A real local Prefect server for EmoNets: SQLite under the store, the `emonets` process work
# pool, the deployments of prefect.yaml, and one worker. See docs/ORCHESTRATION.md.
#
#   scripts/prefect-server.sh start     start server (if not running), pool, deploy, worker
#   scripts/prefect-server.sh stop      stop the worker, then the server (by their pid files)
#   scripts/prefect-server.sh status    what is running, and where
#   scripts/prefect-server.sh deploy    (re-)register prefect.yaml's deployments
#   scripts/prefect-server.sh run NAME [prefect deployment run options...]
#                                       e.g. run train-all --param max_epochs=5
#   scripts/prefect-server.sh env       the exports that point a shell at this server
#
# Settings (environment): STORE (default $EMONETS_STORE or ./emonets-store), HOST (127.0.0.1),
# PORT (4200), POOL (emonets), PREFECT (the prefect command; default .venv/bin/prefect),
# START_TIMEOUT (seconds to wait for a healthy server, default 120), STOP_TIMEOUT (30), UI (true|false,
# default true), WORKER (true|false, default true: start a worker with the server).
# Server and worker logs and pid files: $STORE/_prefect/; its SQLite database and Prefect home:
# $STORE/_prefect/home. Set PREFECT_SERVER_DATABASE_CONNECTION_URL for PostgreSQL instead.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
STORE="${STORE:-${EMONETS_STORE:-./emonets-store}}"
mkdir -p "$STORE/_prefect/home"
STORE="$(cd "$STORE" && pwd)"
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-4200}"
POOL="${POOL:-emonets}"
START_TIMEOUT="${START_TIMEOUT:-120}"
if [[ -z "${PREFECT:-}" ]]; then
  if [[ -x "$REPO/.venv/bin/prefect" ]]; then PREFECT="$REPO/.venv/bin/prefect"; else PREFECT="prefect"; fi
fi
PY="$REPO/.venv/bin/python"; [[ -x "$PY" ]] || PY=python3
RUN_DIR="$STORE/_prefect"
URL="http://$HOST:$PORT"

export PREFECT_HOME="$RUN_DIR/home"
export PREFECT_API_URL="$URL/api"
export PREFECT_SERVER_API_HOST="$HOST" PREFECT_SERVER_API_PORT="$PORT"
export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1
export PREFECT_UI_ENABLED="${UI:-true}"
export EMONETS_STORE="$STORE"

die() { echo "prefect-server: error: $*" >&2; exit 1; }
say() { echo "prefect-server: $*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

alive() {  # alive NAME: true when NAME's pid file names a live process
  local f="$RUN_DIR/$1.pid"
  [[ -f "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

healthy() {  # the server answers /api/health
  if command -v curl >/dev/null 2>&1; then
    curl -sf -m 3 -o /dev/null "$URL/api/health"
  else
    "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=3)' "$URL/api/health" 2>/dev/null
  fi
}

need_server() {
  healthy || die "no Prefect server answers at $URL (start one with: scripts/prefect-server.sh start)"
}

spawn() {  # spawn NAME CMD...: run CMD in the background as its own process group; log + pid file
  # `set -m`: without job control bash starts background jobs with SIGINT ignored, and a Prefect
  # worker stops on SIGINT (it would ignore its own); with it the job leads its own group.
  local name="$1"; shift
  set -m
  nohup "$@" >>"$RUN_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/$name.pid"
  set +m
}

stop_one() {  # stop_one NAME SIGNAL: SIGNAL to NAME's process group, SIGKILL after STOP_TIMEOUT s
  local name="$1" sig="$2" f="$RUN_DIR/$1.pid" pid
  if ! alive "$name"; then rm -f "$f"; say "$name: not running"; return 0; fi
  pid="$(cat "$f")"
  kill "-$sig" -- "-$pid" 2>/dev/null || kill "-$sig" "$pid"
  for _ in $(seq 1 $((2 * ${STOP_TIMEOUT:-30}))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then
    say "$name (pid $pid) did not stop in ${STOP_TIMEOUT:-30} s; killing it"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
  fi
  rm -f "$f"
  say "$name (pid $pid) stopped"
}

start_server() {
  if alive server && healthy; then say "server already running at $URL (pid $(cat "$RUN_DIR/server.pid"))"; return; fi
  alive server && die "server pid $(cat "$RUN_DIR/server.pid") is alive but $URL does not answer; run stop first"
  healthy && die "something else already answers at $URL; choose another PORT"
  local t0; t0="$(now)"
  spawn server "$PREFECT" server start --host "$HOST" --port "$PORT"
  until healthy; do
    if ! alive server; then
      tail -n 30 "$RUN_DIR/server.log" >&2
      die "the server exited during start-up (log: $RUN_DIR/server.log)"
    fi
    if awk -v s="$(since "$t0")" -v m="$START_TIMEOUT" 'BEGIN { exit !(s > m) }'; then
      tail -n 30 "$RUN_DIR/server.log" >&2
      stop_one server TERM
      die "the server was not healthy after ${START_TIMEOUT} s (log: $RUN_DIR/server.log)"
    fi
    sleep 0.5
  done
  say "server healthy at $URL after $(since "$t0") s (database: ${PREFECT_SERVER_DATABASE_CONNECTION_URL:-sqlite $PREFECT_HOME/prefect.db})"
}

ensure_pool() {
  if "$PREFECT" work-pool inspect "$POOL" >/dev/null 2>&1; then return; fi
  "$PREFECT" work-pool create "$POOL" --type process >/dev/null
  say "work pool '$POOL' (process) created"
}

deploy() {
  local t0; t0="$(now)"
  "$PREFECT" --no-prompt deploy --all >"$RUN_DIR/deploy.log" 2>&1 || {
    tail -n 30 "$RUN_DIR/deploy.log" >&2; die "prefect deploy failed (log: $RUN_DIR/deploy.log)"; }
  say "deployments from prefect.yaml registered in $(since "$t0") s: $(grep -o "Deployment '[^']*'" "$RUN_DIR/deploy.log" | cut -d"'" -f2 | paste -sd' ' -)"
}

start_worker() {
  if alive worker; then say "worker already running (pid $(cat "$RUN_DIR/worker.pid"))"; return; fi
  spawn worker "$PREFECT" worker start --pool "$POOL" --name "emonets-$(hostname)-$PORT"
  sleep 1
  alive worker || { tail -n 30 "$RUN_DIR/worker.log" >&2; die "the worker exited at once (log: $RUN_DIR/worker.log)"; }
  say "worker started on pool '$POOL' (pid $(cat "$RUN_DIR/worker.pid"), log $RUN_DIR/worker.log)"
}

case "${1:-}" in
  start)
    start_server
    ensure_pool
    deploy
    if [[ "${WORKER:-true}" == true ]]; then start_worker; else say "no worker started (WORKER=$WORKER)"; fi
    say "UI: $URL   store: $STORE"
    say "point a shell at it:  eval \"\$(scripts/prefect-server.sh env)\""
    say "run the training:     scripts/prefect-server.sh run train-all   (or: prefect deployment run 'train-all/train-all')"
    ;;
  stop)
    # A worker stops on SIGINT: it takes no new runs; runs in flight get the signal too (their
    # process group) and are marked crashed; a re-run resumes from what was finished.
    stop_one worker INT
    stop_one server TERM
    ;;
  status)
    if alive server; then s="running (pid $(cat "$RUN_DIR/server.pid"))"; else s="not running"; fi
    if healthy; then h="healthy"; else h="not answering"; fi
    if alive worker; then w="running (pid $(cat "$RUN_DIR/worker.pid"))"; else w="not running"; fi
    echo "server: $s, $URL $h"
    echo "worker: $w, pool '$POOL'"
    echo "store:  $STORE   logs: $RUN_DIR/{server,worker}.log"
    alive server && healthy
    ;;
  deploy)
    need_server
    ensure_pool
    deploy
    ;;
  run)
    shift
    name="${1:-}"; [[ -n "$name" ]] || die "usage: $0 run DEPLOYMENT [--param k=v ...] (train-all | extract-features | predict)"
    shift
    need_server
    [[ "$name" == */* ]] || name="$name/$name"
    alive worker || say "warning: no worker of this script is running; the run waits until one polls pool '$POOL'"
    exec "$PREFECT" deployment run "$name" "$@"
    ;;
  env)
    echo "export PREFECT_API_URL=$PREFECT_API_URL"
    echo "export PREFECT_HOME=$PREFECT_HOME"
    echo "export EMONETS_STORE=$STORE"
    echo "export DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false"
    ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    [[ -z "${1:-}" ]] && exit 2
    die "unknown command '$1'"
    ;;
esac
