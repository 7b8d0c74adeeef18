"""The deployments of prefect.yaml on a real local Prefect server, run by a real process worker.

`scripts/prefect-server.sh start` starts the server (SQLite under a temporary store) on a free
port, creates the `emonets` pool and registers every deployment; each test then creates a run
with `prefect deployment run ... --param ...` and lets `prefect worker start --run-once` execute
it. The server is always stopped by the fixture's finalizer.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "prefect-server.sh"
PREFECT = str(Path(sys.executable).with_name("prefect"))
FLOW_NAMES = {"train-all": "train-all", "extract-features": "extract-features", "predict": "predict",
              "face-recipe": "train-specialist"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(store: Path, port: int, **extra: str) -> dict[str, str]:
    """A clean environment for the script and the CLI: none of this process's Prefect settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "EMONETS_"))}
    env.update(STORE=str(store), PORT=str(port), UI="false", WORKER="false", PREFECT=PREFECT,
               PREFECT_API_URL=f"http://127.0.0.1:{port}/api", PREFECT_HOME=str(store / "_prefect" / "home"),
               PREFECT_LOGGING_LEVEL="INFO", DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false")
    env.update(extra)
    return env


def _script(command: str, env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), command, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


# -- without a server -----------------------------------------------------------------------------
def test_prefect_yaml_deployments_point_at_the_flows():
    import importlib

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in spec["deployments"]}
    assert set(deployments) == set(FLOW_NAMES)
    for name, dep in deployments.items():
        assert dep["work_pool"]["name"] == "emonets"
        path, func = dep["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert getattr(module, func).name == FLOW_NAMES[name]
        assert dep["parameters"]["store_root"] == "{{ store.stdout }}"
    (schedule,) = deployments["train-all"]["schedules"]
    assert schedule["active"] is False and schedule["cron"]
    assert schedule["parameters"] == {"retrain": "full"}  # the scheduled run trains from scratch
    assert deployments["train-all"]["parameters"]["retrain"] == "auto"
    from emonets.recipe_training import check_recipe

    recipe = deployments["face-recipe"]["parameters"]
    check_recipe(recipe["specialist"], recipe["recipe"], None)  # a recipe that exists, for the face specialist
    (pull,) = spec["pull"]
    assert pull["prefect.deployments.steps.set_working_directory"]["directory"] == "{{ checkout.stdout }}"


def test_script_says_clearly_when_no_server_runs(tmp_path):
    env = _env(tmp_path / "store", _free_port())
    for command, args in (("run", ("train-all",)), ("deploy", ())):
        done = _script(command, env, *args, timeout=60)
        assert done.returncode == 1
        assert "no Prefect server answers at http://127.0.0.1:" in done.stderr
        assert "scripts/prefect-server.sh start" in done.stderr
    status = _script("status", env, timeout=60)
    assert status.returncode == 1 and "server: not running" in status.stdout


def test_script_refuses_an_unknown_command(tmp_path):
    done = _script("launch", _env(tmp_path / "store", _free_port()), timeout=60)
    assert done.returncode == 1 and "unknown command 'launch'" in done.stderr


# -- on a real server -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Server + pool + deployments from prefect.yaml via the script; stopped however the tests end."""
    if shutil.which("bash") is None or not Path(PREFECT).exists():
        pytest.skip("needs bash and the prefect command beside this Python")
    root = tmp_path_factory.mktemp("prefect-server")
    store, port = root / "store", _free_port()
    env = _env(store, port)
    try:
        started = _script("start", env)
        assert started.returncode == 0, started.stdout + started.stderr
        assert "registered" in started.stdout
        yield {"env": env, "store": store, "url": f"http://127.0.0.1:{port}", "start": started.stdout}
    finally:
        stopped = _script("stop", env, timeout=120)
        pid_files = list((store / "_prefect").glob("*.pid"))
        assert stopped.returncode == 0 and not pid_files, stopped.stdout + stopped.stderr


@pytest.fixture(scope="module")
def demo(server, tmp_path_factory):
    """A tiny synthetic AFEW tree (21 clips of 1 s), ingested into the server's store."""
    from emonets.datasets.demo.dataset import make_demo_dataset
    from tasks.ingest import ingest_root

    root = tmp_path_factory.mktemp("demo-data")
    make_demo_dataset(root, per_class=1, seconds=1.0, fps=10, seed=1)
    summary = ingest_root.fn(str(root), str(server["store"]), "auto")
    assert summary["clips"] == 21
    return root, summary


def _run_deployment(server, name: str, **params) -> str:
    """`prefect deployment run` with --param k=<json>; returns the new flow run's id."""
    args = [PREFECT, "deployment", "run", name]
    for key, value in params.items():
        args += ["--param", f"{key}={json.dumps(value)}"]
    done = subprocess.run(args, cwd=REPO, env=server["env"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return re.search(r"UUID: ([0-9a-f-]{36})", done.stdout).group(1)


def _work_once(server, timeout: float = 400) -> str:
    done = subprocess.run([PREFECT, "worker", "start", "--pool", "emonets", "--run-once"], cwd=REPO,
                          env=server["env"], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done.stdout + done.stderr


def _api(server):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    class Api:
        def __enter__(self):
            self._settings = temporary_settings(updates={PREFECT_API_URL: server["url"] + "/api"})
            self._settings.__enter__()
            self._client = get_client(sync_client=True)
            return self._client.__enter__()

        def __exit__(self, *exc):
            self._client.__exit__(*exc)
            self._settings.__exit__(*exc)

    return Api()


def _task_runs_of_stage(client, stage: str) -> list:
    """The extraction task runs that computed ``stage`` (named "faces+mouths:<unit>")."""
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName

    runs = client.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_=stage)), limit=200)
    return [r for r in runs if stage in r.name.split(":", 1)[0].split("+")]


@pytest.mark.slow
def test_deployments_are_registered_with_the_schedule_inactive(server):
    with _api(server) as client:
        deployment = client.read_deployment_by_name("train-all/train-all")
        assert [s.active for s in deployment.schedules] == [False]
        assert [s.parameters for s in deployment.schedules] == [{"retrain": "full"}]
        assert deployment.parameters["store_root"] == str(server["store"])
        assert deployment.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}]
        for name in ("extract-features/extract-features", "predict/predict", "train-specialist/face-recipe"):
            assert client.read_deployment_by_name(name).work_pool_name == "emonets"


@pytest.mark.slow
def test_extract_features_runs_through_a_worker(server, demo):
    from data_catalog import Store

    _, ingested = demo
    run_id = _run_deployment(server, "extract-features/extract-features", store_root=str(server["store"]),
                             stages=["mfcc"])
    log = _work_once(server)
    with _api(server) as client:
        run = client.read_flow_run(run_id)
        assert run.state.is_completed(), (run.state, log[-3000:])
        assert run.parameters["stages"] == ["mfcc"]
        assert len(_task_runs_of_stage(client, "mfcc")) == ingested["clips"]
    store = Store(server["store"])
    clips = store.read("clips")["clip_id"]
    assert sorted(store.partitions("mfcc")) == sorted(clips)
    assert len(store.read("mfcc")) > 0 and not store.partitions("faces")


@pytest.mark.slow
def test_train_all_runs_through_a_worker_and_reuses_features(server, demo):
    from data_catalog import Store

    data_root, ingested = demo
    params = dict(data_roots=[str(data_root)], specialists=["audio", "face_cnn"], runner="threads", max_epochs=1,
                  fusion_draws=2000)  # keep the fusion's random search small
    run_id = _run_deployment(server, "train-all/train-all", **params)
    log = _work_once(server, timeout=600)
    store = Store(server["store"])
    with _api(server) as client:
        run = client.read_flow_run(run_id)
        assert run.state.is_completed(), (run.state, log[-3000:])
        assert run.parameters["fusion_draws"] == 2000 and run.parameters["specialists"] == ["audio", "face_cnn"]
        # The MFCC of the extract-features run above were reused, not recomputed.
        assert len(_task_runs_of_stage(client, "mfcc")) == ingested["clips"]
        assert len(_task_runs_of_stage(client, "faces")) == ingested["clips"]
    reports = list(store.path("reports").glob("*/report.md"))
    assert reports and all("audio" in r.read_text() and "face_cnn" in r.read_text() for r in reports)
    assert set(store.read("predictions")["specialist"]) >= {"audio", "face_cnn"}
