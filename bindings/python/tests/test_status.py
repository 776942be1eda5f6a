"""Status reports: what the cache holds, answered without network."""

from __future__ import annotations

from oci_cache import CacheStatus, ImageStatus


def test_reference_status_before_a_fetch_is_not_cached(cache, sample, registry, repository):
    before = len(registry.requests_for(repository))

    status = cache.status(sample.reference("1.0.0"))

    assert status == ImageStatus(
        reference=sample.reference("1.0.0"), cached=False, manifest_digest=None, layers=()
    )
    assert registry.requests_for(repository)[before:] == []


def test_reference_status_after_a_fetch_lists_present_layers(cache, sample):
    image = cache.fetch(sample.reference("1.0.0"))

    status = cache.status(sample.reference("1.0.0"))

    assert status.cached is True
    assert status.manifest_digest == image.manifest_digest
    assert [(layer.digest, layer.present, layer.path) for layer in status.layers] == [
        (layer.digest, True, layer.path) for layer in image.layers
    ]


def test_cache_status_counts_layers_and_images(cache, cache_dir, sample):
    empty = cache.status()

    cache.fetch(sample.reference("1.0.0"))
    cache.fetch(sample.reference("latest"))
    filled = cache.status()

    assert isinstance(empty, CacheStatus)
    assert (empty.dir, empty.disabled, empty.layers, empty.images) == (cache_dir, False, 0, 0)
    # 1.0.0 and latest name one image: images are counted by manifest digest.
    assert (filled.layers, filled.images) == (2, 1)
    assert filled.size_bytes > empty.size_bytes
