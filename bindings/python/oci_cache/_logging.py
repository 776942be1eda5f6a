"""Delivering the library's log events to Python's `logging`.

One C callback, made once and kept for the life of the process, serves every cache. Each
cache registers its logger here and gives the library the registration number as the
callback's `userdata`: C never holds a Python object, and an event that arrives after its
cache closed (the library may deliver one that was already in flight) finds no logger and is
dropped instead of reaching freed memory.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
from typing import Any, Optional

from ._lib import LogCallback, text

#: The logger a cache uses when none is given.
DEFAULT_LOGGER_NAME = "oci_cache"

#: `logging` level of the library's TRACE events (below DEBUG).
TRACE = logging.DEBUG - 5

# oci_cache_log_level -> logging level.
_LEVELS = {1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO, 4: logging.DEBUG, 5: TRACE}

_loggers: dict[int, logging.Logger] = {}
_registrations = itertools.count(1)
_lock = threading.Lock()


def register(logger: logging.Logger) -> int:
    """Route the events of a cache to `logger`; returns the number to pass as `userdata`."""
    with _lock:
        number = next(_registrations)
        _loggers[number] = logger
    return number


def unregister(number: int) -> None:
    """Stop routing events for `number`; later events with it are dropped. Idempotent."""
    with _lock:
        _loggers.pop(number, None)


def library_level(logger: logging.Logger) -> int:
    """The most verbose `oci_cache_log_level` that `logger` would emit, so that the library
    does not format events nobody reads."""
    effective = logger.getEffectiveLevel()
    for code in (5, 4, 3, 2):
        if effective <= _LEVELS[code]:
            return code
    return 1


def _deliver(
    userdata: Optional[int],
    level: int,
    target: Optional[bytes],
    message: Optional[bytes],
    fields: Optional[bytes],
) -> None:
    # Called on the library's threads. An exception here cannot reach the fetch that logged,
    # and ctypes would only print it: catch everything, including a handler's failure.
    try:
        logger = _loggers.get(userdata or 0)
        if logger is None:
            return
        python_level = _LEVELS.get(level, logging.DEBUG)
        if not logger.isEnabledFor(python_level):
            return

        logger.log(
            python_level,
            text(message),
            extra={"oci_cache_target": text(target), "oci_cache_fields": _parse_fields(fields)},
        )
    except BaseException:  # noqa: BLE001 - nothing may propagate into C
        pass


def _parse_fields(fields: Optional[bytes]) -> Any:
    """The event's fields as a dict; the raw text if the library ever sent something else."""
    raw = text(fields)
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return raw


#: The C callback every cache registers. Module-level, so it outlives every cache.
CALLBACK = LogCallback(_deliver)
