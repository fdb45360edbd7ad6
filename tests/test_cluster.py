"""Cluster configs and remote searches as Ray jobs (`zsl_search/search/_jobs.py`).

The job tests run against a real single-node Ray head started with `ray start --head --block`
in its own temp dir, with token authentication on, the way cluster/cluster.yaml starts it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from _ports import free_ports
import yaml

import zsl_search
from zsl_search.errors import ConfigError, SpecError, ZslSearchError
from zsl_search.search._jobs import ClusterError, submit_search

REPO = Path(__file__).resolve().parents[1]
CLUSTER_YAMLS = [REPO / "cluster" / "cluster.yaml", REPO / "cluster" / "local.yaml"]
_HEAD_READY_TIMEOUT_S = 60.0
_JOB_TIMEOUT_S = 240.0


# ---------------------------------------------------------------- cluster YAMLs


@pytest.mark.parametrize("path", CLUSTER_YAMLS, ids=lambda p: p.name)
def test_cluster_yaml_passes_ray_schema(path: Path) -> None:
    # The same two steps `ray up` runs before touching any machine.
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load(path.read_text())
    validate_config(prepare_config(copy.deepcopy(config)))
    assert path.read_text().startswith(f"# ray up cluster/{path.name}")


def test_schema_validation_rejects_unknown_fields() -> None:
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load(CLUSTER_YAMLS[0].read_text())
    config["docker"]["imagee"] = "typo"
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(config))


@pytest.mark.parametrize("path", CLUSTER_YAMLS, ids=lambda p: p.name)
def test_cluster_yaml_matches_installed_versions(path: Path) -> None:
    import ray

    config = yaml.safe_load(path.read_text())
    assert config["docker"]["image"] == f"rayproject/ray:{ray.__version__}-py311-gpu"
    # The package is installed from the synced repository, so its version is this checkout's.
    mounts = config["file_mounts"]
    repo_mount = next(remote for remote, local in mounts.items() if local == ".")
    setup = " ".join(config["setup_commands"])
    assert f"pip install -e {repo_mount}" in setup
    assert f"ray[default,tune]=={ray.__version__}" in setup
    assert zsl_search.__version__ in (REPO / "pyproject.toml").read_text()
    # Token auth on every node, dashboard/job server on loopback only.
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    assert all("RAY_AUTH_MODE=token" in c for c in starts if "ray start" in c)
    assert any("--dashboard-host=127.0.0.1" in c for c in config["head_start_ray_commands"])
    assert "/home/ray/.ray/auth_token" in mounts


def test_aws_cluster_has_cpu_head_and_gpu_workers() -> None:
    config = yaml.safe_load(CLUSTER_YAMLS[0].read_text())
    types = config["available_node_types"]
    head, worker = types[config["head_node_type"]], types["worker.gpu"]
    assert head["resources"].get("GPU", 0) == 0 and "IamInstanceProfile" in head["node_config"]
    assert worker["resources"]["GPU"] >= 1 and worker["min_workers"] == 0 and worker["max_workers"] == 4
    assert config["provider"]["type"] == "aws"


# ---------------------------------------------------------------- a real Ray head


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid``, from /proc (Ray's workers have process groups of their own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def _stop_tree(proc: subprocess.Popen[bytes]) -> None:
    """Stop `ray start --block` and every process it started, by pid. Never `ray stop`: it kills
    every Ray process of this user on the machine, other sessions' included. SIGTERM gets a
    short grace only: `ray start --block`, its GCS and a dashboard process were still alive 20 s
    after one (measured), so a longer wait only delayed the SIGKILL."""
    pids = [proc.pid, *_descendants(proc.pid)]
    for sig, grace_s in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader, or it stays a zombie that looks alive
            pids = [pid for pid in pids if _alive(pid)]
            if not pids:
                return
            time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # it exited since it was listed
        return b""


class Head(NamedTuple):
    url: str  # the job server, http://127.0.0.1:PORT
    gcs_port: int
    client_env: dict[str, str]  # the environment of a client holding the cluster's token


class _HeadProcess:
    """A Ray head on loopback with token authentication, started as cluster.yaml starts it,
    that `ensure` restarts if its job server stopped answering (seen once in a fresh-clone run:
    'Connection aborted', then 'refused', for every later test of the module)."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir, self.proc, self.head, self.temp_dir = cache_dir, None, None, None

    def start(self) -> Head:
        # Short temp dir: Ray's unix socket paths under it must stay below 108 bytes.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="zr-", dir="/tmp"))
        # Every port explicit: Ray's fixed defaults (agent 52365, client 10001) clash with any
        # other Ray on this machine, e.g. another session's tests, and the job server then has no agent.
        gcs_port, dashboard_port, agent_port, agent_grpc_port, client_port, metrics_port = free_ports(6)
        bin_dir = Path(sys.executable).parent
        env = {k: v for k, v in os.environ.items()
               if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_TOKEN_PATH")}
        env.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_USAGE_STATS_ENABLED": "0"})
        head_env = {
            **env,
            "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",  # job entrypoints run `python`
            "ZSL_SEARCH_CACHE": str(self.cache_dir),
        }
        log_path = self.temp_dir / "ray-start.log"
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [str(bin_dir / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
                 f"--port={gcs_port}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}",
                 "--include-dashboard=true", f"--dashboard-agent-listen-port={agent_port}",
                 f"--dashboard-agent-grpc-port={agent_grpc_port}", f"--ray-client-server-port={client_port}",
                 f"--metrics-export-port={metrics_port}", "--num-cpus=2", "--num-gpus=0", f"--temp-dir={self.temp_dir}"],
                env=head_env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        self.head = Head(f"http://127.0.0.1:{dashboard_port}", gcs_port, env)
        ready = _client(self.head, f"result = wait_for_server(URL, {_HEAD_READY_TIMEOUT_S})",
                        timeout=_HEAD_READY_TIMEOUT_S + 30)
        if ready is not True:
            raise RuntimeError(f"job server not ready ({ready}):\n{log_path.read_text()[-4000:]}")
        return self.head

    def stop(self) -> None:
        if self.proc is not None:
            _stop_tree(self.proc)
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
        self.proc = self.head = None

    def serving(self) -> bool:
        """Whether the job server answers HTTP at all (any status, 401 included)."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
        try:
            opener.open(f"{self.head.url}/api/version", timeout=5).close()
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False
        return True

    def ensure(self) -> Head:
        if self.head is not None and self.serving():
            return self.head
        if self.head is not None:  # say why, then carry on with a new head
            logs = sorted((self.temp_dir / "session_latest" / "logs").glob("dashboard*.err")) if self.temp_dir else []
            tail = logs[0].read_text(errors="replace")[-1500:] if logs else "(no dashboard log)"
            warnings.warn(f"the Ray head's job server at {self.head.url} stopped answering; restarting it. "
                          f"Dashboard log tail:\n{tail}", stacklevel=1)
            self.stop()
        return self.start()


@pytest.fixture(scope="module")
def _head_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_HeadProcess]:
    pytest.importorskip("aiohttp", reason="the Ray job server needs ray[default]")
    process = _HeadProcess(tmp_path_factory.mktemp("cluster-cache"))
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def ray_head(_head_process: _HeadProcess) -> Head:
    """The module's Ray head, started on first use (or again if its job server died)."""
    return _head_process.ensure()


_CLIENT_PRELUDE = """
import json, sys, time
from zsl_search.errors import ZslSearchError
from zsl_search.search._jobs import job_logs, job_status, stop_job, submit_search

def wait_for_server(url, timeout):
    from ray.job_submission import JobSubmissionClient
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            JobSubmissionClient(url).list_jobs()
            return True
        except Exception as e:
            last = repr(e)
            time.sleep(0.5)
    return last

URL, ARGS = sys.argv[1], json.loads(sys.argv[2])
try:
"""


def _client(head: Head, code: str, *, args: object = None, env: dict[str, str] | None = None,
            timeout: float = 60) -> object:
    """Run ``code`` (which sets ``result``) in a fresh client process and return ``result``.

    Ray keeps the auth mode and token per process, and this pytest process may hold a live Ray
    driver of its own (the session's ``ray_local``), so the client side runs apart. A
    `ZslSearchError` comes back as ``{"error": class name, "message": ...}``.
    """
    body = "\n".join("    " + line for line in code.strip().splitlines())
    script = (_CLIENT_PRELUDE + body + "\nexcept ZslSearchError as e:\n"
              "    result = {'error': type(e).__name__, 'message': str(e)}\nprint('RESULT=' + json.dumps(result))\n")
    out = subprocess.run([sys.executable, "-c", script, head.url, json.dumps(args)], env=env or head.client_env,
                         capture_output=True, text=True, timeout=timeout)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT=")]
    assert out.returncode == 0 and lines, f"client failed ({out.returncode}):\n{out.stderr[-4000:]}"
    return json.loads(lines[-1].removeprefix("RESULT="))


TINY_SPEC = {
    "name": "cluster-tiny",
    "dataset": {"path": "demo"},
    "variants": ["fclswgan"],
    "space": {"all": {"hidden": 32, "syn_num": 20, "cls_epochs": 2, "cls_pretrain_epochs": 2}},
    "budget": {"trials": 2, "max_epochs": 1, "grace_epochs": 1},
    "scheduler": "fifo",
    "resources": {"cpu": 1, "gpu": 0},
}


def _write_spec(path: Path, **fields: object) -> Path:
    path.write_text("# zsl-search search submit tiny.yaml --address ...\n" + yaml.safe_dump({**TINY_SPEC, **fields}))
    return path


_SUBMIT_AND_WAIT = """
job_id = submit_search(ARGS["spec"], address=URL, name="remote-tiny", max_trials=2)
deadline = time.monotonic() + ARGS["timeout"]
while (status := job_status(job_id, address=URL)) not in ("SUCCEEDED", "FAILED", "STOPPED"):
    if time.monotonic() > deadline:
        stop_job(job_id, address=URL)
        break
    time.sleep(1.0)
from ray.job_submission import JobSubmissionClient
info = JobSubmissionClient(URL).get_job_info(job_id)
result = {
    "job_id": job_id, "status": status, "logs": job_logs(job_id, address=URL),
    "followed": "".join(job_logs(job_id, address=URL, follow=True)),
    "stopped": stop_job(job_id, address=URL),
    "py_modules": info.runtime_env.get("py_modules"), "metadata": info.metadata,
}
"""


def test_submitted_search_runs_on_the_cluster(ray_head: Head, tmp_path: Path) -> None:
    storage = tmp_path / "results"
    # budget.trials 3 in the file, --max-trials 2 on submit: the override travels with the job.
    spec = _write_spec(tmp_path / "tiny.yaml", storage=str(storage), budget={**TINY_SPEC["budget"], "trials": 3})
    r = _client(ray_head, _SUBMIT_AND_WAIT, args={"spec": str(spec), "timeout": _JOB_TIMEOUT_S},
                timeout=_JOB_TIMEOUT_S + 60)
    assert isinstance(r, dict) and "error" not in r, r
    assert r["status"] == "SUCCEEDED", r["logs"][-4000:]
    logs = r["logs"]
    # The job's driver joined this cluster (Ray sets RAY_ADDRESS for it) rather than starting its own.
    assert "Connecting to existing Ray cluster at address: " in logs and f":{ray_head.gcs_port}..." in logs
    assert "search remote-tiny: 2 trials" in logs

    experiment = storage / "remote-tiny"
    saved = yaml.safe_load((experiment / "spec.yaml").read_text())
    assert saved["name"] == "remote-tiny" and saved["budget"]["trials"] == 2
    assert list(experiment.glob("experiment_state-*.json")), sorted(p.name for p in experiment.iterdir())
    assert len([p for p in experiment.iterdir() if p.is_dir() and "fclswgan" in p.name]) == 2
    shown = subprocess.run([sys.executable, "-m", "zsl_search.cli", "leaderboard", "show", str(storage),
                            "--search", "remote-tiny", "--format", "json"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert len(json.loads(shown.stdout)) == 2  # the job's leaderboard is readable where the spec put it
    # The job carried this package (py_modules), so the cluster ran exactly this code.
    assert r["job_id"].startswith("zsl-remote-tiny-")
    assert r["py_modules"] and r["metadata"] == {"zsl_search": "remote-tiny"}
    # Following a finished job's output yields what it printed, then ends; stopping it is a no-op.
    assert "search remote-tiny: 2 trials" in r["followed"]
    assert r["stopped"] is False


def test_unknown_job_is_one_line_error(ray_head: Head) -> None:
    r = _client(ray_head, "result = job_status('raysubmit_doesnotexist', address=URL)")
    assert r == {"error": "ClusterError", "message": f"no job 'raysubmit_doesnotexist' on the Ray job server at "
                 f"{ray_head.url}; check the id (`ray job list` shows them)"}


def test_wrong_token_is_one_line_error(ray_head: Head) -> None:
    env = {**ray_head.client_env, "RAY_AUTH_TOKEN": "not-the-cluster-token"}
    r = _client(ray_head, "result = job_status('raysubmit_anything', address=URL)", env=env)
    assert isinstance(r, dict) and r.get("error") == "ClusterError", r
    assert "needs the cluster's token" in r["message"] and "\n" not in r["message"]


# ---------------------------------------------------------------- local checks (no cluster)


def test_a_head_whose_job_server_died_is_restarted(_head_process: _HeadProcess) -> None:
    # Last of the module's head tests: only it pays for the second head.
    head = _head_process.ensure()
    dashboards = [pid for pid in _descendants(_head_process.proc.pid) if b"dashboard.py" in _cmdline(pid)]
    assert dashboards, "no dashboard process under the head"
    for pid in dashboards:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while _head_process.serving() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _head_process.serving()
    with pytest.warns(UserWarning, match="stopped answering; restarting it"):
        again = _head_process.ensure()
    assert again.url != head.url and _head_process.serving()
    r = _client(again, "result = job_status('raysubmit_doesnotexist', address=URL)")
    assert r["error"] == "ClusterError"


def test_bad_spec_fails_before_contacting_the_cluster(tmp_path: Path) -> None:
    spec = _write_spec(tmp_path / "bad.yaml", storage=str(tmp_path), variants=["nosuchgan"])
    with pytest.raises(SpecError, match="unknown variant"):
        submit_search(spec, address="http://127.0.0.1:9")  # port 9: nothing listens, never reached


def test_relative_storage_is_rejected(tmp_path: Path) -> None:
    spec = _write_spec(tmp_path / "rel.yaml", storage="./zsl-results")
    with pytest.raises(ConfigError, match="relative path"):
        submit_search(spec, address="http://127.0.0.1:9")
    with pytest.raises(ConfigError, match="max-trials"):
        submit_search(spec, address="http://127.0.0.1:9", storage="s3://b/p", max_trials=0)


def test_unreachable_job_server_is_one_line_error(tmp_path: Path) -> None:
    spec = _write_spec(tmp_path / "tiny.yaml", storage=str(tmp_path / "r"))
    (port,) = free_ports(1)
    with pytest.raises(ClusterError) as info:
        submit_search(spec, address=f"127.0.0.1:{port}")
    message = str(info.value)
    assert message.startswith(f"cannot reach Ray job server at http://127.0.0.1:{port}")
    assert "ray dashboard cluster/cluster.yaml" in message and "\n" not in message
    assert isinstance(info.value, ZslSearchError)


def test_cli_unreachable_address_prints_one_line(tmp_path: Path) -> None:
    from zsl_search.cli import build_parser

    try:
        build_parser().parse_args(["search", "submit", "spec.yaml"])
    except SystemExit:
        pytest.skip("`zsl-search search submit` is not wired into the CLI yet")
    spec = _write_spec(tmp_path / "tiny.yaml", storage=str(tmp_path / "r"))
    (port,) = free_ports(1)
    out = subprocess.run([sys.executable, "-m", "zsl_search.cli", "search", "submit", str(spec),
                          "--address", f"http://127.0.0.1:{port}"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [
        f"zsl-search: error: cannot reach Ray job server at http://127.0.0.1:{port} (Connection refused); "
        "start it with `ray dashboard cluster/cluster.yaml` (SSH tunnel to http://127.0.0.1:8265) and retry"
    ]
    assert "Traceback" not in out.stderr


def test_watching_a_job_never_imports_torch() -> None:
    # `search status`, `logs` and `stop` only talk to the job server: importing torch (the spec
    # classes') cost them 2.4 s a command.
    (port,) = free_ports(1)
    address = f"http://127.0.0.1:{port}"
    code = ("import sys; from zsl_search.cli import main; "
            f"codes = [main(['search', a, 'zsl-x-0000', '--address', {address!r}]) for a in ('status', 'logs', 'stop')]; "
            "assert codes == [2, 2, 2], codes; assert 'torch' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.count(f"cannot reach Ray job server at {address}") == 3, done.stderr


@pytest.mark.slow  # three Ray nodes in a driver of its own: 45-90 s on 2 cores (`make test-slow`)
def test_a_search_spreads_over_two_nodes_and_survives_losing_one(s3_server, tmp_path: Path) -> None:
    """Acceptance: on a two-node cluster (one node with fake GPU resources) trials run on both
    nodes, each node loads the features once into its own feature-store actor, and the
    leaderboard lands in S3 whichever node ran a trial. Then a node dies mid-trial: Tune
    restarts that trial from its last checkpoint on the survivor, whose store serves it, and the
    leaderboard holds every trial exactly once."""
    from zsl_search.leaderboard import read_rows

    storage = f"s3://{s3_server.make_bucket('zsl-multinode')}/runs"
    r = subprocess.run([sys.executable, str(Path(__file__).with_name("_multinode_driver.py")), storage],
                       capture_output=True, text=True, timeout=420)
    assert r.returncode == 0, r.stderr[-4000:]
    out = json.loads(next(line for line in reversed(r.stdout.splitlines()) if line.startswith("{")))
    nodes, lost = set(out["nodes"]), out["lost"]
    assert lost in nodes, "no worker was killed: the trials finished before both nodes reported"
    (survivor,) = nodes - {lost}
    # Before the loss: trials on both nodes, one store per node, each on its own node.
    assert {node for trial in out["reports"].values() for _, node in trial} == nodes
    assert {name.rsplit(":", 1)[1] for name in out["stores_before"]} == {node[:16] for node in nodes}
    assert len(out["stores_before"]) == 2
    # The trial on the lost node continued from its last checkpoint: epochs 1..at on the lost node,
    # then on the survivor from at + 1 to the end (a restart from scratch would begin again at 1).
    # The epoch in flight when the node died may come again: Tune had its result but had not yet
    # registered its checkpoint, so the restart is from the one before.
    (trial,) = [t for t, rep in out["reports"].items() if any(node == lost for _, node in rep) and rep[-1][1] == survivor]
    reported = [tuple(r) for r in out["reports"][trial]]
    at = max(epoch for epoch, node in reported if node == lost)
    assert reported[:at] == [(epoch, lost) for epoch in range(1, at + 1)] and at >= 2, (out["reports"], lost)
    resumed = reported[at][0]
    assert resumed in (at, at + 1), reported
    assert reported[at:] == [(epoch, survivor) for epoch in range(resumed, out["max_epochs"] + 1)]
    rows = read_rows(storage, "multinode")  # in S3, whichever node wrote the trial
    assert len(rows) == 3 and len({row["trial_id"] for row in rows}) == 3 and out["ending"] == "finished"
    restarted = next(row for row in rows if row["trial_id"] == trial)
    assert restarted["status"] == "COMPLETE" and restarted["restarts"] == 1 and restarted["node_id"] == survivor
    # The lost node's store went with it; the survivor's served to the end.
    assert [name.rsplit(":", 1)[1] for name in out["stores_after"]] == [survivor[:16]]
