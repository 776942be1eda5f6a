"""Cancelling a fetch from another thread."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest

from oci_cache import Cache, CancelledError, CancelToken

LARGE_MIB = 200

# A cancelled fetch returns "promptly"; this is generous for a loaded two-core machine.
CANCEL_LIMIT_SECONDS = 5.0


class DownloadStarted(logging.Handler):
    """Sets `started` when the library decides to download layer `digest`."""

    def __init__(self, digest: str) -> None:
        super().__init__(logging.DEBUG)
        self.digest = digest
        self.started = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "oci_cache_fields", {})
        if record.getMessage() == "layer cache" and fields.get("digest") == self.digest:
            self.started.set()


@pytest.fixture
def quiet_debug_logger() -> Iterator[logging.Logger]:
    """A logger at DEBUG whose records stay out of the test report."""
    logger = logging.getLogger("test.cancel")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger
    logger.handlers.clear()
    logger.setLevel(logging.NOTSET)
    logger.propagate = True


def test_cancel_from_another_thread_stops_a_large_fetch(
    cache_dir, registry, repository, quiet_debug_logger
):
    sample = registry.push_sample(repository, tags=["1.0.0"], large_mib=LARGE_MIB)
    large_digest = sample.layers[-1]["digest"]
    download = DownloadStarted(large_digest)
    quiet_debug_logger.addHandler(download)

    with Cache(cache_dir, logger=quiet_debug_logger) as cache:
        token = CancelToken()
        outcome: list[BaseException] = []

        def fetch() -> None:
            try:
                cache.fetch(sample.reference("1.0.0"), cancel=token)
            except BaseException as error:  # noqa: BLE001 - handed to the test's thread
                outcome.append(error)

        fetcher = threading.Thread(target=fetch)
        fetcher.start()
        # Cancel while the large layer downloads, not before the fetch began.
        assert download.started.wait(timeout=60), "the large layer's download never started"
        cancelled_at = time.monotonic()
        token.cancel()
        fetcher.join(timeout=60)
        returned_after = time.monotonic() - cancelled_at

        assert not fetcher.is_alive()
        assert len(outcome) == 1 and isinstance(outcome[0], CancelledError), outcome
        assert outcome[0].code == 9
        assert returned_after < CANCEL_LIMIT_SECONDS
        assert token.cancelled
        status = cache.status(sample.reference("1.0.0"))
        assert not status.cached

        # A cancelled fetch leaves nothing behind that a later fetch trips on.
        image = cache.fetch(sample.reference("1.0.0"))

    assert [layer.digest for layer in image.layers][-1] == large_digest
    assert image.layers[-1].cache == "miss"
    assert image.layers[-1].path.is_dir()


def test_a_triggered_token_cancels_the_next_fetch_at_once(cache, sample):
    token = CancelToken()
    token.cancel()

    with pytest.raises(CancelledError, match="cancelled"):
        cache.fetch(sample.reference("1.0.0"), cancel=token)

    assert cache.fetch(sample.reference("1.0.0")).cache == "miss"
