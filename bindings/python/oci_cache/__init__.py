"""oci-cache: fetch OCI images through a local cache, for CI step runners.

Python bindings of the `liboci_cache.so` C library (standard library only, through ctypes)::

    from oci_cache import Cache

    with Cache("/var/cache/steps") as cache:
        with cache.fetch("registry.example/steps/hello:1.0.0") as image:
            for layer in image.layers:
                print(layer.digest, layer.cache, layer.path)

See `oci_cache._lib` for where the library is looked up.
"""

from __future__ import annotations

from ._lib import ABI_VERSION, LIBRARY_PATH, LibraryNotFoundError, lib, text
from .cache import Cache, CancelToken
from .errors import (
    CacheIOError,
    CancelledError,
    ClosedError,
    IntegrityError,
    InternalError,
    InvalidArgumentError,
    InvalidReferenceError,
    NetworkError,
    NoMatchingPlatformError,
    NotCachedError,
    NotFoundError,
    OciCacheError,
    RegistryError,
    UnauthorizedError,
    UnsafeLayerError,
    UnsupportedError,
)
from .results import (
    CacheStatus,
    Counters,
    Image,
    ImageStatus,
    Layer,
    LayerStatus,
    Outcome,
    Progress,
    PruneReport,
    Resolved,
)

__version__ = "0.1.0"

__all__ = [
    "ABI_VERSION",
    "LIBRARY_PATH",
    "Cache",
    "CacheIOError",
    "CacheStatus",
    "CancelToken",
    "CancelledError",
    "ClosedError",
    "Counters",
    "Image",
    "ImageStatus",
    "IntegrityError",
    "InternalError",
    "InvalidArgumentError",
    "InvalidReferenceError",
    "Layer",
    "LayerStatus",
    "LibraryNotFoundError",
    "NetworkError",
    "NoMatchingPlatformError",
    "NotCachedError",
    "NotFoundError",
    "OciCacheError",
    "Outcome",
    "Progress",
    "PruneReport",
    "Resolved",
    "RegistryError",
    "UnauthorizedError",
    "UnsafeLayerError",
    "UnsupportedError",
    "library_version",
]


def library_version() -> str:
    """The version of the loaded `liboci_cache.so` (`"0.1.0"`); see `LIBRARY_PATH` for which
    file was loaded."""
    return text(lib.oci_cache_version())
