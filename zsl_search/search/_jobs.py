"""Run a search on a remote Ray cluster as a Ray job, and watch or stop it.

The job ships the spec file (as the job's ``working_dir``) and this very ``zsl_search`` package
(as a ``py_module``), so the cluster runs the code you submitted from, not whatever version its
image happens to have installed. Inside the job the entrypoint is the ordinary
``python -m zsl_search.cli search run SPEC``: Ray's job supervisor sets ``RAY_ADDRESS`` for the
driver, so `run_search` joins the cluster instead of starting a new one (`settings.ray_address`).

The job server is the head node's dashboard (port 8265). `cluster/cluster.yaml` binds it to the
head's loopback, so reach it through ``ray dashboard cluster/cluster.yaml`` (an SSH tunnel to
``http://127.0.0.1:8265``). With token authentication (``RAY_AUTH_MODE=token``) the client sends
the token Ray finds in ``RAY_AUTH_TOKEN``, the file ``RAY_AUTH_TOKEN_PATH`` or
``~/.ray/auth_token``; Ray reads those variables itself.

Example:
    >>> job = submit_search("experiments/quickstart.yaml", address="http://127.0.0.1:8265",
    ...                     storage="s3://my-bucket/zsl")  # doctest: +SKIP
    >>> job_status(job, address="http://127.0.0.1:8265")  # doctest: +SKIP
    'RUNNING'
"""

from __future__ import annotations

import asyncio
import secrets
import shlex
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar, overload
from urllib.parse import urlsplit

from .._ray import unreachable
from ..errors import ClusterError, ConfigError
from ..storage import backend_for

__all__ = ["submit_search", "job_status", "job_logs", "stop_job"]

_CONNECT_TIMEOUT_S = 5.0
# How long a submission waits for a freshly started head's job agent ("No available agent"): it
# came up later than 60 s once on a busy 2-core machine, so give a slow node room.
_AGENT_WAIT_S = 300.0
# Never shipped with the package: bytecode is rebuilt on the cluster, for its own Python.
_EXCLUDES = ["__pycache__", "*.pyc"]
_T = TypeVar("_T")
_HOW_TO_CONNECT = "start it with `ray dashboard cluster/cluster.yaml` (SSH tunnel to http://127.0.0.1:8265) and retry"


def submit_search(
    spec_path: str | Path, *, address: str, storage: str | None = None, name: str | None = None,
    max_trials: int | None = None,
) -> str:
    """Submit the search in ``spec_path`` as a Ray job and return its submission id at once.

    The spec (with the overrides) is validated locally first, so a bad spec fails before
    anything is uploaded. Its storage must be ``s3://...`` or an absolute path: a relative one
    would resolve inside the job's temporary working directory on the cluster and be lost.

    Args:
        spec_path: the search spec (YAML).
        address: the job server, e.g. ``http://127.0.0.1:8265`` (``host:port`` means http).
        storage, name, max_trials: override the spec's storage, name and ``budget.trials``.

    Returns:
        The job's submission id (``zsl-NAME-xxxxxxxx``) for `job_status`, `job_logs`, `stop_job`.

    Raises:
        SpecError: the spec or an override is invalid.
        ConfigError: ``max_trials`` < 1, or the storage is a relative path.
        ClusterError: the job server is unreachable or rejects the request.
    """
    spec_path = Path(spec_path)
    if max_trials is not None and max_trials < 1:
        raise ConfigError("--max-trials must be >= 1")
    from ._spec import load_spec  # torch, through the variants' parameters: submit only

    spec = load_spec(spec_path).override({"storage": storage, "name": name},
                                         source=f"{spec_path} with its command-line flags")
    if not backend_for(spec.storage).is_absolute(spec.storage):
        raise ConfigError(
            f"storage {spec.storage!r} is a relative path: on the cluster it would land in the job's temporary "
            "working directory; pass --storage s3://bucket/prefix (or an absolute path every node shares)"
        )

    args = ["python", "-m", "zsl_search.cli", "search", "run", spec_path.name]
    for flag, value in (("--storage", storage), ("--name", name), ("--max-trials", max_trials)):
        if value is not None:
            args += [flag, str(value)]
    package_dir = Path(__file__).resolve().parents[1]  # the zsl_search directory itself
    # Our own id, so a retried submission can never start the search twice.
    submission_id = f"zsl-{spec.name}-{secrets.token_hex(4)}"
    client = _client(address)
    with tempfile.TemporaryDirectory(prefix="zsl-job-") as workdir:
        shutil.copyfile(spec_path, Path(workdir) / spec_path.name)
        runtime_env = {"working_dir": workdir, "py_modules": [str(package_dir)], "excludes": _EXCLUDES}
        deadline = time.monotonic() + _AGENT_WAIT_S
        while True:
            try:
                return _call(address, lambda: client.submit_job(
                    entrypoint=shlex.join(args), runtime_env=runtime_env, submission_id=submission_id,
                    metadata={"zsl_search": spec.name},
                ))
            except ClusterError as e:
                # A head that has just started answers before its job agent is up ("try again later").
                if "No available agent" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(1.0)


def job_status(job_id: str, *, address: str) -> str:
    """The job's status: ``PENDING``, ``RUNNING``, ``STOPPED``, ``SUCCEEDED`` or ``FAILED``.

    Raises:
        ClusterError: the job server is unreachable, or has no job ``job_id``.
    """
    client = _client(address)
    return str(_call(address, lambda: client.get_job_status(job_id), job_id=job_id).value)


@overload
def job_logs(job_id: str, *, address: str, follow: Literal[False] = False) -> str: ...
@overload
def job_logs(job_id: str, *, address: str, follow: Literal[True]) -> Iterator[str]: ...


def job_logs(job_id: str, *, address: str, follow: bool = False) -> str | Iterator[str]:
    """The job's driver output so far (a string), or with ``follow=True`` an iterator of chunks
    as they are printed, ending when the job ends.

    Raises:
        ClusterError: the job server is unreachable, or has no job ``job_id``.
    """
    client = _client(address)
    if not follow:
        return str(_call(address, lambda: client.get_job_logs(job_id), job_id=job_id))
    _call(address, lambda: client.get_job_status(job_id), job_id=job_id)  # fail fast on an unknown id
    return _sync_iter(client.tail_job_logs(job_id), address=address, job_id=job_id)


def stop_job(job_id: str, *, address: str) -> bool:
    """Ask the job to stop (SIGTERM to the driver, then SIGKILL). True if it was still running.

    The Tune experiment keeps its checkpoints: ``zsl-search search resume`` continues it.

    Raises:
        ClusterError: the job server is unreachable, or has no job ``job_id``.
    """
    client = _client(address)
    return bool(_call(address, lambda: client.stop_job(job_id), job_id=job_id))


def _client(address: str) -> Any:
    """A JobSubmissionClient for exactly ``address`` (checked to be reachable first)."""
    from ray.dashboard.utils import get_address_for_submission_client
    from ray.job_submission import JobSubmissionClient

    url = address if "://" in address else f"http://{address}"  # without a scheme Ray reads it as a GCS address
    resolved = get_address_for_submission_client(url)
    if resolved.rstrip("/") != url.rstrip("/"):
        # Ray lets RAY_API_SERVER_ADDRESS / RAY_ADDRESS override the address argument.
        raise ClusterError(f"Ray would send this job to {resolved}, not {address}: unset RAY_API_SERVER_ADDRESS "
                           "and RAY_ADDRESS in this shell, or pass that address")
    _probe(url)
    return _call(address, lambda: JobSubmissionClient(url))


def _probe(url: str) -> None:
    # requests has no connect timeout by default: an unroutable address would hang for minutes.
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    if (why := unreachable(host, port, timeout=_CONNECT_TIMEOUT_S)) is not None:
        raise ClusterError(f"cannot reach Ray job server at {url} ({why}); {_HOW_TO_CONNECT}")


def _call(address: str, fn: Callable[[], _T], *, job_id: str | None = None) -> _T:
    """Run one job-server request, turning Ray's exceptions into one-line `ClusterError`s."""
    import requests
    from ray.exceptions import AuthenticationError

    try:
        return fn()
    except AuthenticationError:
        raise ClusterError(
            f"Ray job server at {address} rejected the request: it needs the cluster's token; export "
            "RAY_AUTH_MODE=token and put the token in ~/.ray/auth_token (or RAY_AUTH_TOKEN_PATH / RAY_AUTH_TOKEN)"
        ) from None
    except (ConnectionError, requests.ConnectionError, requests.Timeout) as e:
        raise ClusterError(f"cannot reach Ray job server at {address} ({e}); {_HOW_TO_CONNECT}") from None
    except RuntimeError as e:
        message = str(e)
        if job_id is not None and "404" in message:
            raise ClusterError(f"no job {job_id!r} on the Ray job server at {address}; check the id "
                               "(`ray job list` shows them)") from None
        raise ClusterError(f"Ray job server at {address}: {message.splitlines()[0] if message else e!r}") from e


def _sync_iter(chunks: AsyncIterator[str], *, address: str, job_id: str) -> Iterator[str]:
    """Drive Ray's async log tail from synchronous code, one chunk at a time."""
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield _call(address, lambda: loop.run_until_complete(chunks.__anext__()), job_id=job_id)
            except StopAsyncIteration:
                return
    finally:
        loop.run_until_complete(chunks.aclose())  # type: ignore[attr-defined]
        loop.close()
