"""The cache handle: open a cache directory, fetch images through it, report what it holds."""

from __future__ import annotations

import ctypes
import dataclasses
import datetime
import functools
import json
import logging
import math
import os
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Optional, TypeVar, Union, overload

from . import _logging
from ._lib import (
    OPTION_AUTH_FILE,
    OPTION_CA_FILE,
    OPTION_DOCKER_CONFIG,
    OPTION_INSECURE_REGISTRY,
    OPTION_MAX_CONCURRENT_LAYERS,
    OPTION_MAX_SIZE_BYTES,
    OPTION_MERGED,
    OPTION_MIRROR,
    OPTION_OFFLINE,
    OPTION_PLATFORM,
    CachePtr,
    ImagePtr,
    ProgressCallback,
    ReportPtr,
    call,
    encode,
    lib,
    new,
    text,
)
from .errors import ClosedError, InvalidArgumentError
from .results import (
    CacheStatus,
    Counters,
    Image,
    ImagePins,
    ImageStatus,
    Layer,
    LayerStatus,
    Outcome,
    Progress,
    PruneReport,
    Resolved,
)

# oci_cache_outcome -> the name Image.cache and Layer.cache use.
_OUTCOMES = {0: "hit", 1: "miss", 2: "mutable", 3: "disabled"}

_CLOSED_MESSAGE = "the cache handle is closed"

# How long the exit-time close waits for cancelled fetches of daemon threads to return.
_EXIT_WAIT_SECONDS = 5.0

_PathLike = Union[str, os.PathLike[str]]

_Fields = TypeVar("_Fields")


class CancelToken:
    """A token that cancels the fetches it is given to.

    `cancel()` may be called from any thread, any number of times; a fetch holding the token
    then raises `CancelledError` promptly. A triggered token stays triggered: a later fetch
    with it is cancelled at once.
    """

    def __init__(self) -> None:
        pointer = new(lib.oci_cache_cancel_new)
        self._pointer = pointer
        self._cancelled = False
        # Fetches keep their own reference to the token, so freeing it with this object is safe.
        self._free = weakref.finalize(self, lib.oci_cache_cancel_free, pointer)
        self._free.atexit = False

    def cancel(self) -> None:
        """Cancel the fetches that hold this token. Safe from any thread."""
        self._cancelled = True
        lib.oci_cache_cancel_trigger(self._pointer)

    @property
    def cancelled(self) -> bool:
        """True once `cancel()` was called."""
        return self._cancelled

    def __repr__(self) -> str:
        return f"CancelToken(cancelled={self._cancelled})"


class _OpenHandle:
    """An `oci_cache*` and the calls running on it.

    The C ABI forbids closing a handle while a call uses it, so every call goes through `use()`
    and `close()` waits until none is running. It holds no reference to the `Cache`, so that it
    can close the handle when the `Cache` is garbage-collected or the interpreter exits.
    """

    def __init__(self, pointer: Any, log_registration: int) -> None:
        self._pointer = pointer
        self._log_registration = log_registration
        self._running = 0
        self._running_tokens: list[CancelToken] = []
        self._closed = False
        self._idle = threading.Condition()

    @property
    def closed(self) -> bool:
        return self._closed

    @contextmanager
    def use(self, cancel: Optional[CancelToken] = None) -> Iterator[Any]:
        """The C handle, for one call that `cancel` can stop; raises `ClosedError` once
        `close()` began."""
        with self._idle:
            if self._closed:
                raise ClosedError(_CLOSED_MESSAGE)
            self._running += 1
            if cancel is not None:
                self._running_tokens.append(cancel)
        try:
            yield self._pointer
        finally:
            with self._idle:
                self._running -= 1
                if cancel is not None:
                    self._running_tokens.remove(cancel)
                self._idle.notify_all()

    def close(self) -> None:
        """Refuse new calls, wait for running ones, then close the C handle. Idempotent."""
        with self._idle:
            if self._closed:
                return
            self._closed = True
            self._idle.wait_for(lambda: self._running == 0)
        self._release()

    def finalize(self) -> None:
        """Close when the `Cache` is collected or the interpreter exits.

        At exit, daemon threads may still be fetching. Once the interpreter finalises, a log
        event from such a fetch would enter it from a library thread, which kills the process,
        so their fetches are cancelled and given a moment to return before the handle closes.
        If one does not return, the handle is left open rather than freed under it.
        """
        with self._idle:
            if self._closed:
                return
            self._closed = True
            for token in self._running_tokens:
                token.cancel()
            idle = self._idle.wait_for(lambda: self._running == 0, timeout=_EXIT_WAIT_SECONDS)
        if idle:
            self._release()
        else:
            _logging.unregister(self._log_registration)

    def _release(self) -> None:
        pointer, self._pointer = self._pointer, None
        if pointer:
            lib.oci_cache_close(pointer)
        # After the close, so that events logged while closing still arrive.
        _logging.unregister(self._log_registration)


class Cache:
    """A cache directory, opened with options; the entry point of the library.

    `dir` is created if missing. `platform` (`os/architecture[/variant]`) is chosen from image
    indexes instead of the host's; `insecure_registries` lists `host[:port]` registries reached
    over plain HTTP (loopback registries always are); `max_concurrent_layers` (1 to 64, default
    4) bounds the layers of one image downloaded at once.

    Credentials come from the environment's Docker config (the content of `DOCKER_AUTH_CONFIG`,
    else `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`) unless `docker_config` is
    False; `auth_file` names a Docker config file to read instead (read even when
    `docker_config` is False). `credentials` maps a registry (`host[:port]`, `docker.io` for
    Docker Hub) to a `(username, password)` pair (the password may be an access token), and
    `registry_tokens` maps a registry to a token sent as a bearer token; both take precedence
    over a Docker config's and go to no other host. An image the registry gave only for
    credentials is recorded as private in the cache directory: a later cache hit on it, by any
    handle, first proves access with that handle's credentials (`UnauthorizedError` if
    refused). `ca_files` are PEM files of certificate authorities trusted besides the system's.
    `mirrors` maps a registry to the URLs of its mirrors, tried in order before it (one that
    fails is skipped); a URL ending with `,digest-only` is never asked to resolve a tag.

    With `offline=True` no request is sent at all: a cached image is served (one under a mutable
    tag such as `latest` from the digest the tag last resolved to, with a warning logged) and
    anything else raises `NotCachedError`. `max_size` is a budget of bytes for the cached
    layers: after a fetch that downloaded something, the least recently used layers that no
    fetch or unreleased `Image` (of any process) uses are pruned until the layers fit.

    The library's log events go to `logger` (default: the `oci_cache` logger) at the levels
    that logger enables when the cache opens; each record carries `oci_cache_target` (the Rust
    module) and `oci_cache_fields` (the event's fields, a dict).

    A cache may be used from many threads at once. Close it with `close()`, or use it as a
    context manager. With `CI_STEPS_OCI_CACHE=false` in the environment the directory is not
    touched and every fetch downloads into a new directory (`Image.uncached_root`).
    """

    def __init__(
        self,
        dir: Union[str, os.PathLike[str]],
        *,
        platform: Optional[str] = None,
        insecure_registries: Iterable[str] = (),
        max_concurrent_layers: Optional[int] = None,
        logger: Optional[logging.Logger] = None,
        credentials: Optional[Mapping[str, tuple[str, str]]] = None,
        registry_tokens: Optional[Mapping[str, str]] = None,
        auth_file: Optional[_PathLike] = None,
        ca_files: Sequence[_PathLike] = (),
        mirrors: Optional[Mapping[str, Sequence[str]]] = None,
        docker_config: bool = True,
        offline: bool = False,
        max_size: Optional[int] = None,
    ) -> None:
        if isinstance(insecure_registries, (str, bytes)):
            raise TypeError("insecure_registries is a list of host[:port], not one string")
        if isinstance(ca_files, (str, bytes, os.PathLike)):
            raise TypeError("ca_files is a list of paths, not one path")
        if logger is None:
            logger = logging.getLogger(_logging.DEFAULT_LOGGER_NAME)
        dir_bytes = encode(dir, "dir")

        options = new(lib.oci_cache_options_new)
        log_registration = _logging.register(logger)
        pointer = CachePtr()
        try:
            if platform is not None:
                _set_string(options, OPTION_PLATFORM, platform, "platform")
            for registry in insecure_registries:
                _set_string(options, OPTION_INSECURE_REGISTRY, registry, "insecure_registries")
            if max_concurrent_layers is not None:
                count = _unsigned(max_concurrent_layers, "max_concurrent_layers")
                call(lib.oci_cache_options_set_uint, options, OPTION_MAX_CONCURRENT_LAYERS, count)
            _set_credentials(options, credentials or {}, registry_tokens or {})
            if auth_file is not None:
                _set_string(options, OPTION_AUTH_FILE, auth_file, "auth_file")
            for ca_file in ca_files:
                _set_string(options, OPTION_CA_FILE, ca_file, "ca_files")
            _set_mirrors(options, mirrors or {})
            if not docker_config:
                call(lib.oci_cache_options_set_uint, options, OPTION_DOCKER_CONFIG, 0)
            if offline:
                call(lib.oci_cache_options_set_uint, options, OPTION_OFFLINE, 1)
            if max_size is not None:
                budget = _unsigned(max_size, "max_size")
                call(lib.oci_cache_options_set_uint, options, OPTION_MAX_SIZE_BYTES, budget)

            level = _logging.library_level(logger)
            userdata = ctypes.c_void_p(log_registration)
            call(
                lib.oci_cache_options_set_log_callback,
                options,
                _logging.CALLBACK,
                userdata,
                level,
            )

            call(lib.oci_cache_open, dir_bytes, options, ctypes.byref(pointer))
        except BaseException:
            _logging.unregister(log_registration)
            raise
        finally:
            lib.oci_cache_options_free(options)

        self._dir = Path(os.fspath(dir))
        self._logger = logger
        self._handle = _OpenHandle(pointer, log_registration)
        self._finalizer = weakref.finalize(self, self._handle.finalize)

    @property
    def dir(self) -> Path:
        """The cache directory, as given."""
        return self._dir

    @property
    def closed(self) -> bool:
        """True once `close()` was called."""
        return self._handle.closed

    def close(self) -> None:
        """Close the cache. Waits for calls running on other threads to return first; later
        calls raise `ClosedError`. Calling it again does nothing. Results already returned
        stay valid. Not to be called from a handler of this cache's own log records: a fetch
        that is logging would wait for that handler, and the handler for the fetch."""
        self._handle.close()
        self._finalizer.detach()

    def __enter__(self) -> Cache:
        return self

    def __exit__(
        self,
        kind: Optional[type[BaseException]],
        value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"Cache({str(self._dir)!r}, {state})"

    def fetch(
        self,
        reference: str,
        platform: Optional[str] = None,
        *,
        cancel: Optional[CancelToken] = None,
        merged: bool = False,
        progress: Optional[Callable[[Progress], None]] = None,
    ) -> Image:
        """Fetch `reference` through the cache and return where its layers are extracted.

        A full version tag (`1.2.3`) or a digest is served from the cache with no request once
        cached; another tag (`latest`, `1.2`) costs one manifest request. `platform` overrides
        the cache's platform for this fetch. `cancel` lets another thread stop the fetch
        (`CancelledError`). `merged=True` also builds `Image.merged_path`. Blocks the calling
        thread (other Python threads keep running); raises an `OciCacheError` subclass on
        failure. The image pins its layers until `Image.release()`.

        `progress` is called with a `Progress` for each layer: once for a cached layer
        (`done == total`), and for a download at its start, at most once per MiB and at its
        end. It runs on the library's threads, for several layers at once: it must be quick,
        thread-safe, and must not use this cache. An exception it raises is logged to the
        cache's logger and goes no further; it is not called after `fetch` returned.
        """
        reference_bytes = encode(reference, "reference")
        # A token of our own when the caller gave none: closing at exit cancels through it.
        if cancel is None:
            cancel = CancelToken()
        # Referenced until this call returns: the library calls it until the fetch returned.
        callback = None if progress is None else _progress_callback(progress, self._logger)
        options = new(lib.oci_cache_fetch_options_new)
        image = ImagePtr()
        try:
            _set_fetch_options(options, platform, merged, callback, cancel)
            with self._handle.use(cancel) as cache:
                call(lib.oci_cache_fetch, cache, reference_bytes, options, ctypes.byref(image))
            return _read_image(image)
        except BaseException:
            lib.oci_cache_image_free(image)
            raise
        finally:
            lib.oci_cache_fetch_options_free(options)

    @overload
    def status(self, reference: str) -> ImageStatus: ...

    @overload
    def status(self, reference: None = None) -> CacheStatus: ...

    def status(self, reference: Optional[str] = None) -> Union[ImageStatus, CacheStatus]:
        """What the cache holds, without network: of `reference` (an `ImageStatus`), or of the
        whole cache when `reference` is None (a `CacheStatus`)."""
        reference_bytes = None if reference is None else encode(reference, "reference")
        fields = self._report(lib.oci_cache_status, reference_bytes)

        if reference is None:
            return CacheStatus(
                dir=Path(fields["dir"]),
                disabled=fields["disabled"],
                size_bytes=fields["size_bytes"],
                layers=fields["layers"],
                images=fields["images"],
                session=_from_fields(Counters, fields["session"]),
                total=_from_fields(Counters, fields["total"]),
            )
        return ImageStatus(
            reference=fields["reference"],
            cached=fields["cached"],
            manifest_digest=fields["manifest_digest"],
            layers=tuple(
                LayerStatus(
                    digest=layer["digest"], present=layer["present"], path=Path(layer["path"])
                )
                for layer in fields["layers"]
            ),
        )

    def prune(
        self,
        max_size: Optional[int] = None,
        unused_for: Union[float, datetime.timedelta, None] = None,
        all: bool = False,
    ) -> PruneReport:
        """Remove cached layers, least recently used first, with the image records and merged
        directories that needed them, and report what was done.

        `max_size` removes layers until the layers fit in that many bytes; `unused_for`
        (seconds, or a `timedelta`; rounded up to whole seconds) removes the layers unused for
        longer than that (a layer's last use is recorded at most hourly); `all` removes every
        layer. At least one must ask for something (`InvalidArgumentError`). A layer that a
        running fetch or an unreleased `Image` of any process uses is never removed: it is
        counted in `PruneReport.in_use`.
        """
        size = 0 if max_size is None else _unsigned(max_size, "max_size")
        seconds = _whole_seconds(unused_for, "unused_for")
        fields = self._report(lib.oci_cache_prune, size, seconds, bool(all))
        return _from_fields(PruneReport, fields)

    def resolve(self, reference: str) -> Resolved:
        """The digest `reference` points at now, for a lock file: one HEAD request at the
        registry (none for a reference pinned by digest); nothing is downloaded or cached.
        `Resolved.pinned` is the line to record, and a reference `fetch` serves by digest."""
        fields = self._report(lib.oci_cache_resolve, encode(reference, "reference"))
        return _from_fields(Resolved, fields)

    def _report(self, function: Callable[..., int], *args: Any) -> Any:
        """Call `function(cache, *args, &report, &error)` and return the JSON of the report it
        made, which is freed."""
        report = ReportPtr()
        try:
            with self._handle.use() as cache:
                call(function, cache, *args, ctypes.byref(report))
            return json.loads(text(lib.oci_cache_report_json(report)))
        finally:
            lib.oci_cache_report_free(report)


def _set_string(options: Any, option: int, value: Any, name: str) -> None:
    """Set the string option `option` to `value`, the argument called `name`."""
    call(lib.oci_cache_options_set_string, options, option, encode(value, name))


def _set_credentials(
    options: Any, credentials: Mapping[str, tuple[str, str]], registry_tokens: Mapping[str, str]
) -> None:
    """Give the library each registry's user name and password, or its token."""
    both = set(credentials) & set(registry_tokens)
    if both:
        raise InvalidArgumentError(
            f"invalid argument credentials: {sorted(both)} also have a registry token; "
            "give each registry one or the other"
        )

    for registry, pair in credentials.items():
        if isinstance(pair, (str, bytes)) or len(pair) != 2:
            raise InvalidArgumentError(
                f"invalid argument credentials: the value for {registry!r} is not a "
                "(username, password) pair"
            )
        username, password = pair
        call(
            lib.oci_cache_options_set_credentials,
            options,
            encode(registry, "credentials"),
            encode(username, f"username of {registry}"),
            encode(password, f"password of {registry}"),
        )

    for registry, token in registry_tokens.items():
        call(
            lib.oci_cache_options_set_registry_token,
            options,
            encode(registry, "registry_tokens"),
            encode(token, f"registry token of {registry}"),
        )


def _set_mirrors(options: Any, mirrors: Mapping[str, Sequence[str]]) -> None:
    """Give the library each registry's mirrors as `REGISTRY=URL[,digest-only]`, in order."""
    for registry, urls in mirrors.items():
        if isinstance(urls, (str, bytes)):
            raise TypeError(f"mirrors[{registry!r}] is a list of URLs, not one string")
        for url in urls:
            spec = encode(registry, "mirrors") + b"=" + encode(url, f"mirror of {registry}")
            call(lib.oci_cache_options_set_string, options, OPTION_MIRROR, spec)


def _set_fetch_options(
    options: Any, platform: Optional[str], merged: bool, callback: Any, cancel: CancelToken
) -> None:
    """Set the options of one fetch; `callback` is a `ProgressCallback` or None."""
    if platform is not None:
        value = encode(platform, "platform")
        call(lib.oci_cache_fetch_options_set_string, options, OPTION_PLATFORM, value)
    if merged:
        call(lib.oci_cache_fetch_options_set_uint, options, OPTION_MERGED, 1)
    if callback is not None:
        call(lib.oci_cache_fetch_options_set_progress, options, callback, None)
    call(lib.oci_cache_fetch_options_set_cancel, options, cancel._pointer)


def _progress_callback(progress: Callable[[Progress], None], logger: logging.Logger) -> Any:
    """`progress` as a C progress callback. It runs on the library's threads, where an
    exception cannot reach the fetch: one that `progress` raises is logged to `logger`."""

    def deliver(_userdata: Optional[int], digest: Optional[bytes], done: int, total: int) -> None:
        layer = text(digest)
        try:
            progress(Progress(digest=layer, done=done, total=total))
        except BaseException:  # noqa: BLE001 - nothing may propagate into C
            logger.exception(
                "progress callback raised", extra={"oci_cache_fields": {"digest": layer}}
            )

    return ProgressCallback(deliver)


def _read_image(image: Any) -> Image:
    """Copy a fetched image out of its handle, which the image then owns for its pins."""
    layers = tuple(
        Layer(
            digest=text(lib.oci_cache_image_layer_digest(image, index)),
            media_type=text(lib.oci_cache_image_layer_media_type(image, index)),
            size=lib.oci_cache_image_layer_size(image, index),
            path=Path(text(lib.oci_cache_image_layer_path(image, index))),
            cache=_outcome(lib.oci_cache_image_layer_cache_outcome(image, index)),
        )
        for index in range(lib.oci_cache_image_layer_count(image))
    )

    # The C ABI has no accessor for the uncached root; the JSON form carries it.
    uncached_root = json.loads(text(lib.oci_cache_image_json(image))).get("uncached_root")
    merged_path = lib.oci_cache_image_merged_path(image)
    return Image(
        reference=text(lib.oci_cache_image_reference(image)),
        manifest_digest=text(lib.oci_cache_image_manifest_digest(image)),
        platform=text(lib.oci_cache_image_platform(image)),
        cache=_outcome(lib.oci_cache_image_cache_outcome(image)),
        layers=layers,
        uncached_root=None if uncached_root is None else Path(uncached_root),
        merged_path=None if merged_path is None else Path(text(merged_path)),
        _pins=ImagePins(functools.partial(lib.oci_cache_image_free, image)),
    )


def _from_fields(kind: type[_Fields], fields: Mapping[str, Any]) -> _Fields:
    """The dataclass `kind` made of the entries of `fields` it has; a newer library may send
    more."""
    names = (field.name for field in dataclasses.fields(kind))  # type: ignore[arg-type]
    return kind(**{name: fields[name] for name in names})


def _outcome(code: int) -> Outcome:
    # A newer library may append outcomes; show them rather than fail the fetch.
    return _OUTCOMES.get(code, f"unknown({code})")  # type: ignore[return-value]


def _whole_seconds(duration: Union[float, datetime.timedelta, None], name: str) -> int:
    """`duration` (seconds or a `timedelta`; None for 0) in whole seconds, rounded up so that a
    fraction of a second is not taken for no limit."""
    if duration is None:
        return 0
    if isinstance(duration, datetime.timedelta):
        duration = duration.total_seconds()
    if isinstance(duration, bool) or not isinstance(duration, (int, float)):
        raise InvalidArgumentError(
            f"invalid argument {name}: expected seconds or a timedelta, got {type(duration)}"
        )
    if not math.isfinite(duration):
        raise InvalidArgumentError(f"invalid argument {name}: {duration} is not finite")
    return _unsigned(math.ceil(duration), name)


def _unsigned(value: Any, name: str) -> int:
    """`value` as an integer that fits a uint64; ctypes would wrap a negative one silently."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"invalid argument {name}: expected int, got {type(value)}")
    if not 0 <= value < 2**64:
        raise InvalidArgumentError(f"invalid argument {name}: {value} is out of range")
    return value
