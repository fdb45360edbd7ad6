"""Connecting to Ray, shared by searches, finalize and image extraction."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any

from .errors import ConfigError, warn


# Ray starts one idle worker per CPU for the first driver. None of ours can take one: trial and
# store actors carry a runtime env of their own, so each starts its own process anyway. On 2
# cores the idle pair cost 1.3 CPU-s at every start (a third of a local Ray's own start-up CPU),
# competing with the first trials.
LOCAL_RAY_CONFIG = {"prestart_worker_first_driver": False}


def init_ray(address: str | None) -> None:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``, which a Ray job's driver is given),
    else start a private local Ray. Never ``ray.init()`` bare: it attaches to whatever Ray
    instance happens to run on this machine, e.g. someone else's search."""
    import ray

    from . import settings

    if ray.is_initialized():
        return
    address = address or settings.ray_address()
    if address:
        _check_reachable(address)
        try:
            with signals_deferred(signal.SIGINT, signal.SIGTERM):
                ray.init(address=address, namespace=None, log_to_driver=False)
        except (ConnectionError, ValueError) as e:  # no cluster for `auto`, a malformed address, a refused token
            first = next(iter(str(e).splitlines()), type(e).__name__)
            raise ConfigError(f"cannot join a Ray cluster at {address} ({first}); check --address or RAY_ADDRESS "
                              "(and RAY_AUTH_MODE / the cluster's auth token), or start one with `ray start --head`") from None
        return
    for attempt in range(3):
        try:
            with (_quiet_local_start(), signals_deferred(signal.SIGINT, signal.SIGTERM),
                  _ray_group_of_its_own()):
                ray.init(address="local", include_dashboard=False, log_to_driver=False, _system_config=LOCAL_RAY_CONFIG)
            return
        except Exception as e:  # noqa: BLE001 - Ray raises a bare Exception for this one
            # Ray gives a local node 30 s to register, hard-coded; a machine busy enough to miss
            # that gets another try rather than a failed search.
            if "timed out during startup" not in str(e) or attempt == 2:
                raise
            ray.shutdown()
            warn("local Ray took over 30 s to start (a busy machine?); starting it again")


@contextlib.contextmanager
def _ray_group_of_its_own() -> Iterator[None]:
    """Local Ray's processes (GCS, raylet and, through it, the trial workers) started in a
    process group of their own, this driver back in its own group once they run.

    `timeout`, a scheduler or ``kill -TERM -- -PGID`` signal a whole process group: the
    driver would stop the search and save its state, as on Ctrl-C, while the same SIGTERM
    killed the GCS under it (Ray blocks only SIGINT in its processes). Left as they are where
    that cannot be done, or must not: a driver that leads its group (a job of an interactive
    shell: its children join that group whatever it does) or runs in a terminal's foreground
    (there Ctrl-C goes to the group, and a driver outside it while Ray starts would miss one)."""
    try:
        original = os.getpgrp()
        if original == os.getpid() or _in_terminal_foreground(original):
            yield
            return
        os.setpgid(0, 0)
    except (AttributeError, OSError):  # not POSIX, or not allowed: the group stays shared
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # the group is gone (whoever led it ended): stay apart
            os.setpgid(0, original)


def _in_terminal_foreground(group: int) -> bool:
    try:
        tty = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY)
    except OSError:
        return False  # no controlling terminal
    try:
        return os.tcgetpgrp(tty) == group
    except OSError:
        return False
    finally:
        os.close(tty)


@contextlib.contextmanager
def signals_deferred(*signums: int) -> Iterator[None]:
    """``signums`` (SIGINT, SIGTERM) recorded, not acted on, while the block runs, then handed
    to the handlers they had, once it ends (Ray's own ``DeferSigint`` does this for SIGINT).
    For work a Ctrl-C must not cut in half: ``ray.init``, where one landing mid-start left Ray's
    core worker half built and the process, after printing that it was interrupted, died in
    Ray's shutdown (SIGSEGV); and imports, where it leaves modules half initialised for the code
    that handles the interrupt. The handlers in place before the block are the ones restored
    (``ray.init`` installs its own SIGTERM one, which would bypass the CLI's). A second signal
    is acted on at once: whoever sends it means it (``ray.init`` may wait 30 s for a busy
    machine). Only the main thread can set handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {s: signal.getsignal(s) for s in signums}

    def record(signum: int, frame: Any) -> None:
        handler = previous[signum]
        if caught and callable(handler):
            handler(signum, frame)
        caught.append(signum)

    for s in signums:
        signal.signal(s, record)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    for s in dict.fromkeys(caught):
        handler = previous[s]
        if callable(handler):
            handler(s, None)  # Python's SIGINT handler raises KeyboardInterrupt here
        elif handler == signal.SIG_DFL:
            os.kill(os.getpid(), s)


class _DropLines(logging.Filter):
    def __init__(self, *starts: str) -> None:
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.starts)


@contextlib.contextmanager
def _quiet_local_start() -> Iterator[None]:
    """Without Ray's two lines on starting this run's private Ray: that it started, and that
    it turned token authentication on (its default; nothing to act on). Its other warnings stay."""
    with log_filters([("ray._private.worker", _DropLines("Started a local Ray instance")),
                      ("ray._private.authentication.authentication_token_setup",
                       _DropLines("Token authentication is enabled for this Ray cluster"))]):
        yield


@contextlib.contextmanager
def log_filters(filters: list[tuple[str, logging.Filter]]) -> Iterator[None]:
    """Each ``(logger name, filter)`` pair's filter on its logger, for the block only."""
    pairs = [(logging.getLogger(name), f) for name, f in filters]
    for logger, f in pairs:
        logger.addFilter(f)
    try:
        yield
    finally:
        for logger, f in pairs:
            logger.removeFilter(f)


def _check_reachable(address: str) -> None:
    """Fail in one line when nothing listens at ``address`` (``HOST:PORT`` or ``ray://HOST:PORT``):
    ``ray.init`` would retry for minutes, printing its own warnings. Other forms (``auto``) are
    left to Ray."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or "://" in host:
        return
    if (why := unreachable(host.strip("[]"), int(port), timeout=10)) is not None:
        raise ConfigError(f"cannot reach a Ray cluster at {address} ({why}); check --address or "
                          "RAY_ADDRESS, or start one with `ray start --head`")


def unreachable(host: str, port: int, *, timeout: float) -> str | None:
    """Why a TCP connection to ``host:port`` fails within ``timeout`` seconds (e.g. ``Connection
    refused``), or None when something listens there."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        return str(e.strerror or e)
    return None
