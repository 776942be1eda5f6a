"""Finding and loading `liboci_cache.so`, and declaring every function of `oci_cache.h`.

The library is looked up, in order:

1. `liboci_cache.so` next to this package's files (an installed wheel ships it there);
2. the path in the environment variable `OCI_CACHE_LIBRARY`;
3. the build output of the source checkout this package sits in:
   `<repo>/target/debug/liboci_cache.so`, then `<repo>/target/release/liboci_cache.so`.

Every C function gets its `argtypes` and `restype` here, so that ctypes converts and checks
arguments instead of guessing. Strings the library returns are borrowed from their handle (or
static), so they are declared `c_char_p`: ctypes copies them into `bytes` at once, before the
handle can be freed.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping
from ctypes import POINTER, c_bool, c_char_p, c_size_t, c_uint32, c_uint64, c_void_p
from pathlib import Path
from typing import Any, Callable, Optional

from .errors import InvalidArgumentError, error_for

LIBRARY_FILE = "liboci_cache.so"
LIBRARY_ENV = "OCI_CACHE_LIBRARY"

#: The ABI version these bindings were written for (`OCI_CACHE_ABI_VERSION`).
ABI_VERSION = 1

OK = 0

# oci_cache_option
OPTION_PLATFORM = 1
OPTION_INSECURE_REGISTRY = 2
OPTION_MAX_CONCURRENT_LAYERS = 3
OPTION_AUTH_FILE = 5
OPTION_CA_FILE = 6
OPTION_MIRROR = 7
OPTION_DOCKER_CONFIG = 8
OPTION_OFFLINE = 9
OPTION_MERGED = 10
OPTION_MAX_SIZE_BYTES = 11

_PACKAGE_DIR = Path(__file__).resolve().parent
# bindings/python/oci_cache/_lib.py -> the repository root, when this is a source checkout.
_REPO_DIR = _PACKAGE_DIR.parents[2]


class LibraryNotFoundError(ImportError):
    """`liboci_cache.so` was not found, could not be loaded, or has another ABI version."""


def find_library(
    package_dir: Path = _PACKAGE_DIR,
    repo_dir: Optional[Path] = _REPO_DIR,
    environ: Mapping[str, str] = os.environ,
) -> Path:
    """The path of the library to load, by the lookup order of this module's docstring.

    An `OCI_CACHE_LIBRARY` that names no file is an error rather than a reason to fall back to
    another copy: the user asked for that file. Raises `LibraryNotFoundError`, listing each
    place tried.
    """
    tried: list[str] = []

    bundled = package_dir / LIBRARY_FILE
    if bundled.is_file():
        return bundled
    tried.append(f"{bundled} (next to the package): no such file")

    configured = environ.get(LIBRARY_ENV)
    if configured:
        path = Path(configured)
        if path.is_file():
            return path
        tried.append(f"{path} (from ${LIBRARY_ENV}): no such file")
        raise LibraryNotFoundError(_not_found_message(tried))
    tried.append(f"${LIBRARY_ENV}: not set")

    if repo_dir is not None and (repo_dir / "Cargo.toml").is_file():
        for profile in ("debug", "release"):
            built = repo_dir / "target" / profile / LIBRARY_FILE
            if built.is_file():
                return built
            tried.append(f"{built} (cargo build output): no such file")
    else:
        tried.append("the repository's target/ directory: this package is not in a checkout")

    raise LibraryNotFoundError(_not_found_message(tried))


def _not_found_message(tried: list[str]) -> str:
    places = "".join(f"\n  - {place}" for place in tried)
    return (
        f"oci-cache: cannot find {LIBRARY_FILE}; tried:{places}\n"
        f"Build it with `cargo build` in the repository, or set {LIBRARY_ENV} to its path."
    )


# Opaque handle types: ctypes then refuses to pass one kind of handle where another is expected.
class CacheHandle(ctypes.Structure):
    """`oci_cache`: an open cache."""


class CancelHandle(ctypes.Structure):
    """`oci_cache_cancel`: a cancellation token."""


class ErrorHandle(ctypes.Structure):
    """`oci_cache_error`: a result code and a message."""


class FetchOptionsHandle(ctypes.Structure):
    """`oci_cache_fetch_options`: options of one fetch."""


class ImageHandle(ctypes.Structure):
    """`oci_cache_image`: a fetched image."""


class OptionsHandle(ctypes.Structure):
    """`oci_cache_options`: options for opening a cache."""


class ReportHandle(ctypes.Structure):
    """`oci_cache_report`: a status of one reference or of the whole cache."""


CachePtr = POINTER(CacheHandle)
CancelPtr = POINTER(CancelHandle)
ErrorPtr = POINTER(ErrorHandle)
FetchOptionsPtr = POINTER(FetchOptionsHandle)
ImagePtr = POINTER(ImageHandle)
OptionsPtr = POINTER(OptionsHandle)
ReportPtr = POINTER(ReportHandle)

#: `oci_cache_log_callback`: (userdata, level, target, message, fields).
LogCallback = ctypes.CFUNCTYPE(None, c_void_p, c_uint32, c_char_p, c_char_p, c_char_p)

#: `oci_cache_progress_callback`: (userdata, digest, done, total).
ProgressCallback = ctypes.CFUNCTYPE(None, c_void_p, c_char_p, c_uint64, c_uint64)

_ERROR_OUT = POINTER(ErrorPtr)

# name -> (restype, argtypes), in the header's order.
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "oci_cache_error_code": (c_uint32, [ErrorPtr]),
    "oci_cache_error_message": (c_char_p, [ErrorPtr]),
    "oci_cache_error_free": (None, [ErrorPtr]),
    "oci_cache_result_name": (c_char_p, [c_uint32]),
    "oci_cache_abi_version": (c_uint32, []),
    "oci_cache_version": (c_char_p, []),
    "oci_cache_open": (c_uint32, [c_char_p, OptionsPtr, POINTER(CachePtr), _ERROR_OUT]),
    "oci_cache_close": (None, [CachePtr]),
    "oci_cache_fetch": (
        c_uint32,
        [CachePtr, c_char_p, FetchOptionsPtr, POINTER(ImagePtr), _ERROR_OUT],
    ),
    "oci_cache_status": (c_uint32, [CachePtr, c_char_p, POINTER(ReportPtr), _ERROR_OUT]),
    "oci_cache_prune": (
        c_uint32,
        [CachePtr, c_uint64, c_uint64, c_bool, POINTER(ReportPtr), _ERROR_OUT],
    ),
    "oci_cache_resolve": (c_uint32, [CachePtr, c_char_p, POINTER(ReportPtr), _ERROR_OUT]),
    "oci_cache_report_is_cached": (c_bool, [ReportPtr]),
    "oci_cache_report_json": (c_char_p, [ReportPtr]),
    "oci_cache_report_free": (None, [ReportPtr]),
    "oci_cache_image_reference": (c_char_p, [ImagePtr]),
    "oci_cache_image_manifest_digest": (c_char_p, [ImagePtr]),
    "oci_cache_image_platform": (c_char_p, [ImagePtr]),
    "oci_cache_image_merged_path": (c_char_p, [ImagePtr]),
    "oci_cache_image_cache_outcome": (c_uint32, [ImagePtr]),
    "oci_cache_image_layer_count": (c_size_t, [ImagePtr]),
    "oci_cache_image_layer_digest": (c_char_p, [ImagePtr, c_size_t]),
    "oci_cache_image_layer_media_type": (c_char_p, [ImagePtr, c_size_t]),
    "oci_cache_image_layer_size": (c_uint64, [ImagePtr, c_size_t]),
    "oci_cache_image_layer_path": (c_char_p, [ImagePtr, c_size_t]),
    "oci_cache_image_layer_cache_outcome": (c_uint32, [ImagePtr, c_size_t]),
    "oci_cache_image_json": (c_char_p, [ImagePtr]),
    "oci_cache_image_free": (None, [ImagePtr]),
    "oci_cache_options_new": (OptionsPtr, []),
    "oci_cache_options_free": (None, [OptionsPtr]),
    "oci_cache_options_set_string": (c_uint32, [OptionsPtr, c_uint32, c_char_p, _ERROR_OUT]),
    "oci_cache_options_set_uint": (c_uint32, [OptionsPtr, c_uint32, c_uint64, _ERROR_OUT]),
    "oci_cache_options_set_credentials": (
        c_uint32,
        [OptionsPtr, c_char_p, c_char_p, c_char_p, _ERROR_OUT],
    ),
    "oci_cache_options_set_registry_token": (
        c_uint32,
        [OptionsPtr, c_char_p, c_char_p, _ERROR_OUT],
    ),
    "oci_cache_options_set_log_callback": (
        c_uint32,
        [OptionsPtr, LogCallback, c_void_p, c_uint32, _ERROR_OUT],
    ),
    "oci_cache_fetch_options_new": (FetchOptionsPtr, []),
    "oci_cache_fetch_options_free": (None, [FetchOptionsPtr]),
    "oci_cache_fetch_options_set_string": (
        c_uint32,
        [FetchOptionsPtr, c_uint32, c_char_p, _ERROR_OUT],
    ),
    "oci_cache_fetch_options_set_uint": (
        c_uint32,
        [FetchOptionsPtr, c_uint32, c_uint64, _ERROR_OUT],
    ),
    "oci_cache_fetch_options_set_progress": (
        c_uint32,
        [FetchOptionsPtr, ProgressCallback, c_void_p, _ERROR_OUT],
    ),
    "oci_cache_fetch_options_set_cancel": (c_uint32, [FetchOptionsPtr, CancelPtr, _ERROR_OUT]),
    "oci_cache_cancel_new": (CancelPtr, []),
    "oci_cache_cancel_trigger": (None, [CancelPtr]),
    "oci_cache_cancel_free": (None, [CancelPtr]),
}

#: The names of the C functions these bindings declare.
DECLARED_FUNCTIONS = frozenset(_SIGNATURES)


def load(path: Path) -> ctypes.CDLL:
    """Load the library at `path`, declare its functions, and check its ABI version."""
    try:
        library = ctypes.CDLL(str(path))
    except OSError as error:
        raise LibraryNotFoundError(f"oci-cache: cannot load {path}: {error}") from error

    for name, (restype, argtypes) in _SIGNATURES.items():
        try:
            function = getattr(library, name)
        except AttributeError as error:
            raise LibraryNotFoundError(
                f"oci-cache: {path} has no function {name}: an older library?"
            ) from error
        function.restype = restype
        function.argtypes = argtypes

    found = library.oci_cache_abi_version()
    if found != ABI_VERSION:
        raise LibraryNotFoundError(
            f"oci-cache: {path} has ABI version {found}; these bindings need {ABI_VERSION}"
        )
    return library


LIBRARY_PATH: Path = find_library()
lib: ctypes.CDLL = load(LIBRARY_PATH)


def call(function: Callable[..., int], *args: Any) -> None:
    """Call a fallible C function with `args` and an error out-pointer appended.

    Raises the `OciCacheError` subclass of the result code, with the library's message; the
    error object is freed on every path.
    """
    error = ErrorPtr()
    try:
        code = function(*args, ctypes.byref(error))
        if code == OK:
            return
        message = text(lib.oci_cache_error_message(error)) if error else ""
        if not message:
            message = f"{function.__name__} failed: {text(lib.oci_cache_result_name(code))}"
    finally:
        lib.oci_cache_error_free(error)
    raise error_for(code, message)


def new(constructor: Callable[[], Any]) -> Any:
    """Call one of the library's `_new` functions; a NULL (allocation failure) is a
    `MemoryError`."""
    created = constructor()
    if not created:
        raise MemoryError(f"{constructor.__name__} returned NULL")
    return created


def text(value: Optional[bytes]) -> str:
    """A string the library returned, as `str` (`""` for NULL)."""
    if value is None:
        return ""
    return value.decode("utf-8", errors="replace")


def encode(value: Any, name: str) -> bytes:
    """`value` as the NUL-terminated UTF-8 the library reads.

    Raises `InvalidArgumentError` for a value that is not text, cannot be UTF-8 (lone
    surrogates), or holds a NUL byte, which C would silently cut the string at.
    """
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise InvalidArgumentError(f"invalid argument {name}: expected str, got {type(value)}")
    if "\0" in value:
        raise InvalidArgumentError(f"invalid argument {name}: contains a NUL character")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidArgumentError(f"invalid argument {name}: not valid UTF-8 ({error})") from None
