"""What the cache returns: fetched images, statuses, prune reports and progress, as frozen
dataclasses.

Every value is copied out of the library's handles, so these objects stay valid after the
cache is closed. An `Image` also keeps the library's image until `release()`: its locks keep
the image's layers from being pruned.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Callable, Literal, Optional

#: How an image or a layer was served: `"hit"` (from the cache, for an image with no request),
#: `"miss"` (downloaded now), `"mutable"` (an image under a mutable tag: one manifest request,
#: cached layers reused) or `"disabled"` (caching is off: downloaded outside the cache).
Outcome = Literal["hit", "miss", "mutable", "disabled"]


@dataclass(frozen=True)
class Layer:
    """One layer of a fetched image, extracted in its own directory."""

    #: The blob digest, `sha256:<hex>`.
    digest: str
    #: The blob media type.
    media_type: str
    #: The blob size in bytes.
    size: int
    #: The absolute path of the extracted layer directory.
    path: Path
    #: How the layer was served: `"hit"`, `"miss"` or `"disabled"`.
    cache: Outcome


class ImagePins:
    """The library's image that a fetched `Image` keeps: its shared locks on the image's layers
    keep every prune, of any process, from removing them.

    `free` frees the library's image; it is called once, by `release()` or when the last
    `Image` holding these pins is garbage-collected, whichever comes first.
    """

    def __init__(self, free: Callable[[], None]) -> None:
        self._free = weakref.finalize(self, free)
        # A process that exits drops its locks anyway: no call into the library at exit.
        self._free.atexit = False

    def release(self) -> None:
        """Free the library's image unless that was done already. Safe from any thread."""
        self._free()


@dataclass(frozen=True)
class Image:
    """A fetched image: its layers, base first, each extracted in its own directory.

    The image pins its layers: until `release()`, no prune (`Cache.prune`, or the `max_size`
    budget, in this process or another on the same directory) removes its layer directories or
    its merged directory. Release it once done with the files, or use it as a context manager;
    an image that is garbage-collected unreleased is released then.
    """

    #: The normalised reference, `registry/repository:tag` (or `@digest`).
    reference: str
    #: The digest of the image manifest; for an index, of the chosen platform's manifest.
    manifest_digest: str
    #: The image's platform, `os/architecture[/variant]`: the chosen index entry's, or for a
    #: plain manifest the one its image config names; `""` when neither names one.
    platform: str
    #: How the image was served: `"hit"`, `"miss"`, `"mutable"` or `"disabled"`.
    cache: Outcome
    #: The layers, base first.
    layers: tuple[Layer, ...]
    #: With caching disabled (`CI_STEPS_OCI_CACHE=false`): the directory holding this fetch's
    #: layers, which the caller owns and removes when done. None otherwise.
    uncached_root: Optional[Path] = None
    #: With `fetch(..., merged=True)`: one directory of the layers applied in order, whiteouts
    #: honoured, made of hard links to the layers' read-only files. None otherwise.
    merged_path: Optional[Path] = None
    #: The pins of the layers, shared by copies of this image; None for an image made by hand.
    _pins: Optional[ImagePins] = field(default=None, repr=False, compare=False)

    def release(self) -> None:
        """Let prunes remove the image's layers again, once no other image uses them.

        The fields stay readable, but the directories they name may go. Calling it again, or
        from several threads, is harmless.
        """
        if self._pins is not None:
            self._pins.release()

    def __enter__(self) -> Image:
        return self

    def __exit__(
        self,
        kind: Optional[type[BaseException]],
        value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.release()


@dataclass(frozen=True)
class LayerStatus:
    """Whether one layer of a reference is in the cache."""

    #: The blob digest.
    digest: str
    #: True when the layer is extracted in the cache.
    present: bool
    #: Where the extracted layer is, or would be.
    path: Path


@dataclass(frozen=True)
class ImageStatus:
    """What the cache holds of one reference, answered without network."""

    #: The normalised reference.
    reference: str
    #: True when the manifest and every layer are cached.
    cached: bool
    #: The manifest digest, when the manifest is cached.
    manifest_digest: Optional[str]
    #: The manifest's layers and whether each is present; empty when the manifest is not cached.
    layers: tuple[LayerStatus, ...]


@dataclass(frozen=True)
class CacheStatus:
    """The cache directory as a whole, answered without network."""

    #: The cache directory.
    dir: Path
    #: True when caching is disabled by `CI_STEPS_OCI_CACHE`.
    disabled: bool
    #: Total bytes of the files under the cache directory.
    size_bytes: int
    #: Number of extracted layers.
    layers: int
    #: Number of images recorded, by manifest digest.
    images: int
    #: The fetches of this handle since it opened.
    session: Counters
    #: The fetches of every handle on this directory, this one included, since it was made. A
    #: handle adds its counts when it closes, and every minute or so while it fetches.
    total: Counters


@dataclass(frozen=True)
class Counters:
    """Layers served from the cache and downloaded, and their blob bytes."""

    #: Layers served from the cache.
    hits: int
    #: Layers downloaded.
    misses: int
    #: Blob bytes downloaded for the misses.
    bytes_downloaded: int
    #: Blob bytes the hits did not download.
    bytes_saved: int


@dataclass(frozen=True)
class PruneReport:
    """What `Cache.prune` did."""

    #: Layers removed.
    removed_layers: int
    #: Bytes of the files of the removed layers.
    removed_bytes: int
    #: Image records (and their merged directories) removed because a layer of theirs was.
    removed_images: int
    #: Layers that were to go but stayed: a fetch or an unreleased image used them.
    in_use: int
    #: Bytes of the cache's layers before the prune.
    size_before: int
    #: Bytes of the cache's layers after the prune.
    size_after: int


@dataclass(frozen=True)
class Resolved:
    """A reference and the digest it points at now (see `Cache.resolve`)."""

    #: The reference as given.
    reference: str
    #: ``registry/repository[:tag]@digest``, normalised: a line for a lock file.
    pinned: str
    #: The digest of the manifest or index the reference points at.
    digest: str


@dataclass(frozen=True)
class Progress:
    """How far one layer of a fetch is (see `Cache.fetch`'s `progress`)."""

    #: The layer's blob digest.
    digest: str
    #: Bytes of the blob that are there: all of them for a cached layer.
    done: int
    #: The blob's size in bytes.
    total: int
