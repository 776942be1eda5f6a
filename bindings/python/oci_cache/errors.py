"""The errors of oci-cache: one class per result code of the C ABI.

Every error the library reports carries the stable result code (`code`) and the library's
message, which says what failed, on what, and why.
"""

from __future__ import annotations

from typing import Optional


class OciCacheError(Exception):
    """An operation of the library failed.

    `code` is the C ABI's result code (`oci_cache_result`); `message` is the library's text.
    Catch a subclass to handle one kind of failure, or this class for all of them.
    """

    #: The result code of this kind of failure; 0 only on this base class.
    code: int = 0

    def __init__(self, message: str, code: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class InvalidArgumentError(OciCacheError, ValueError):
    """An argument was missing, not UTF-8, or out of range (code 1)."""

    code = 1


class InvalidReferenceError(OciCacheError, ValueError):
    """The image reference is malformed (code 2)."""

    code = 2


class NotFoundError(OciCacheError):
    """The registry has no such repository, tag, manifest or blob (code 3)."""

    code = 3


class UnauthorizedError(OciCacheError):
    """The registry refused the credentials, or asked for some (code 4)."""

    code = 4


class IntegrityError(OciCacheError):
    """Bytes did not match their digest or size (code 5)."""

    code = 5


class UnsafeLayerError(OciCacheError):
    """A layer tried to write outside its directory, or holds a forbidden entry (code 6)."""

    code = 6


class NetworkError(OciCacheError):
    """The registry could not be reached, or the connection failed (code 7)."""

    code = 7


class CacheIOError(OciCacheError):
    """A file-system operation on the cache directory failed (code 8)."""

    code = 8


class CancelledError(OciCacheError):
    """The caller cancelled the fetch through a `CancelToken` (code 9)."""

    code = 9


class UnsupportedError(OciCacheError):
    """A media type, manifest schema or option the library does not support (code 10)."""

    code = 10


class NoMatchingPlatformError(OciCacheError):
    """An index has no entry for the requested platform (code 11)."""

    code = 11


class RegistryError(OciCacheError):
    """The registry answered with something that is not valid (code 12)."""

    code = 12


class ClosedError(OciCacheError):
    """The cache was used after `Cache.close()` (code 13)."""

    code = 13


class InternalError(OciCacheError):
    """A bug in the library: it panicked, and the panic was caught at the boundary (code 14)."""

    code = 14


class NotCachedError(OciCacheError):
    """The data is not in the cache and the network may not be used (code 15)."""

    code = 15


_BY_CODE: dict[int, type[OciCacheError]] = {
    cls.code: cls
    for cls in (
        InvalidArgumentError,
        InvalidReferenceError,
        NotFoundError,
        UnauthorizedError,
        IntegrityError,
        UnsafeLayerError,
        NetworkError,
        CacheIOError,
        CancelledError,
        UnsupportedError,
        NoMatchingPlatformError,
        RegistryError,
        ClosedError,
        InternalError,
        NotCachedError,
    )
}


def error_for(code: int, message: str) -> OciCacheError:
    """The exception for result `code`: its subclass, or the base class for a code this version
    of the bindings does not know (a newer library)."""
    return _BY_CODE.get(code, OciCacheError)(message, code)
