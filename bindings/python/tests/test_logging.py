"""The library's log events, delivered to Python's logging."""

from __future__ import annotations

import logging

from oci_cache import Cache
from oci_cache._logging import library_level


def test_debug_events_reach_the_oci_cache_logger(cache_dir, sample, caplog):
    caplog.set_level(logging.DEBUG, logger="oci_cache")

    with Cache(cache_dir) as cache:
        image = cache.fetch(sample.reference("1.0.0"))

    decisions = [record for record in caplog.records if record.getMessage() == "layer cache"]
    # Layers download concurrently: their events come in any order.
    assert sorted(record.oci_cache_fields["digest"] for record in decisions) == sorted(
        layer.digest for layer in image.layers
    )
    assert all(record.name == "oci_cache" for record in decisions)
    assert all(record.levelno == logging.DEBUG for record in decisions)
    assert all(record.oci_cache_fields["outcome"] == "miss" for record in decisions)
    assert all(record.oci_cache_target.startswith("oci_cache") for record in decisions)


def test_events_go_to_the_logger_given(cache_dir, sample, caplog):
    logger = logging.getLogger("runner.steps")
    caplog.set_level(logging.DEBUG, logger="runner.steps")

    with Cache(cache_dir, logger=logger) as cache:
        cache.fetch(sample.reference("1.0.0"))

    assert any(record.getMessage() == "layer cache" for record in caplog.records)
    assert {record.name for record in caplog.records} == {"runner.steps"}


def test_events_below_the_logger_level_are_not_delivered(cache_dir, sample, caplog):
    caplog.set_level(logging.INFO, logger="oci_cache")

    with Cache(cache_dir) as cache:
        cache.fetch(sample.reference("1.0.0"))

    assert caplog.records, "one INFO record per completed fetch"
    assert all(record.levelno >= logging.INFO for record in caplog.records)


def test_a_failing_log_handler_does_not_break_the_fetch(cache_dir, sample):
    logger = logging.getLogger("runner.broken")
    logger.setLevel(logging.DEBUG)

    def explode(record: logging.LogRecord) -> bool:
        raise RuntimeError("a handler bug")

    logger.addFilter(explode)
    try:
        with Cache(cache_dir, logger=logger) as cache:
            image = cache.fetch(sample.reference("1.0.0"))
    finally:
        logger.removeFilter(explode)

    assert image.cache == "miss"


def test_library_level_follows_the_logger_effective_level():
    logger = logging.getLogger("runner.levels")
    expected = {
        logging.ERROR: 1,
        logging.WARNING: 2,
        logging.INFO: 3,
        logging.DEBUG: 4,
        5: 5,
        logging.CRITICAL: 1,
    }
    try:
        for level, code in expected.items():
            logger.setLevel(level)
            assert library_level(logger) == code, logging.getLevelName(level)
    finally:
        logger.setLevel(logging.NOTSET)
