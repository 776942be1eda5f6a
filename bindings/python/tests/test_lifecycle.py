"""Opening and closing a cache handle."""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from oci_cache import Cache, ClosedError, _logging

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def test_open_creates_the_cache_directory(cache_dir):
    with Cache(cache_dir) as cache:
        assert cache_dir.is_dir()
        assert cache.dir == cache_dir


def test_close_twice_is_harmless(cache_dir):
    cache = Cache(cache_dir)

    cache.close()
    cache.close()

    assert cache.closed


def test_fetch_after_close_raises_closed_error(cache_dir, sample):
    cache = Cache(cache_dir)
    cache.close()

    with pytest.raises(ClosedError) as raised:
        cache.fetch(sample.reference("1.0.0"))
    assert raised.value.code == 13


def test_status_after_close_raises_closed_error(cache_dir):
    cache = Cache(cache_dir)
    cache.close()

    with pytest.raises(ClosedError):
        cache.status()


def test_context_manager_closes_the_cache(cache_dir):
    with Cache(cache_dir) as cache:
        assert not cache.closed

    assert cache.closed
    with pytest.raises(ClosedError):
        cache.status()


def test_close_waits_for_a_fetch_running_on_another_thread(cache_dir, registry, repository):
    sample = registry.push_sample(repository, tags=["1.0.0"], large_mib=50)
    cache = Cache(cache_dir)
    fetched: list = []
    fetcher = threading.Thread(target=lambda: fetched.append(cache.fetch(sample.reference())))

    fetcher.start()
    wait_until(lambda: cache._handle._running > 0)
    cache.close()
    fetcher.join(timeout=60)

    # Had the handle been freed under it, the fetch would have crashed or failed.
    assert len(fetched) == 1 and fetched[0].cache == "miss"
    assert cache.closed
    assert fetched[0].layers[-1].path.is_dir()


def test_a_forgotten_cache_is_closed_when_collected(cache_dir):
    cache = Cache(cache_dir, logger=logging.getLogger("test.forgotten"))
    registration = cache._handle._log_registration
    assert registration in _logging._loggers

    del cache
    gc.collect()

    assert registration not in _logging._loggers


EXIT_SCRIPT = """
import logging, sys, threading
from oci_cache import Cache

cache_dir, reference = sys.argv[1:]
logging.basicConfig(level=logging.DEBUG, stream=sys.stdout)
downloading = threading.Event()
class Started(logging.Handler):
    def emit(self, record):
        if record.getMessage() == "layer cache":
            downloading.set()
logging.getLogger("oci_cache").addHandler(Started())
cache = Cache(cache_dir)
threading.Thread(target=cache.fetch, args=(reference,), daemon=True).start()
downloading.wait(60)
"""


def test_exit_while_a_daemon_thread_fetches_is_clean(tmp_path, registry, repository):
    # A log event entering a finalising interpreter from a library thread aborts the process:
    # the running fetch must be stopped before that.
    sample = registry.push_sample(repository, tags=["1.0.0"], large_mib=50)

    exited = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, str(tmp_path / "cache"), sample.reference()],
        env={**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert exited.returncode == 0, exited.stderr[-2000:]


def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.001)
