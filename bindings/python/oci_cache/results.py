"""What the cache returns: fetched images and statuses, as frozen dataclasses.

Every value is copied out of the library's handles, so these objects stay valid after the
cache is closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

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


@dataclass(frozen=True)
class Image:
    """A fetched image: its layers, base first, each extracted in its own directory."""

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
    #: Number of tags recorded.
    images: int
