"""Resolving references to digests for lock files."""

from __future__ import annotations

import pytest

from oci_cache import NotFoundError, Resolved


def test_resolve_pins_a_tag_and_the_fetch_of_the_pinned_line_keeps_the_tag(cache, sample):
    resolved = cache.resolve(sample.reference("latest"))

    pinned = f"{sample.reference('latest')}@{sample.index_digest}"
    assert resolved == Resolved(sample.reference("latest"), pinned, sample.index_digest)
    image = cache.fetch(resolved.pinned)
    assert (image.reference, image.manifest_digest) == (pinned, sample.manifest_digest)


def test_resolve_of_an_unknown_tag_raises_not_found(cache, sample):
    with pytest.raises(NotFoundError):
        cache.resolve(sample.reference("9.9.9"))
