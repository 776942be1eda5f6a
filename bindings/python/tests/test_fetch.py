"""Fetching through the cache: what lands on disk, and what the registry is asked."""

from __future__ import annotations

import os
import shutil
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from oci_cache import Cache, Image

# Where the sample image's files are: layer 0 holds bin/, layer 1 step.yml and run.sh.
BIN_LAYER, STEP_LAYER = 0, 1


def layer_digests(image: Image) -> list[str]:
    return [layer.digest for layer in image.layers]


def test_cold_fetch_downloads_and_extracts_every_layer(cache, sample):
    image = cache.fetch(sample.reference("1.0.0"))

    assert image.cache == "miss"
    assert [layer.cache for layer in image.layers] == ["miss", "miss"]
    assert image.reference == sample.reference("1.0.0")
    assert image.manifest_digest == sample.manifest_digest
    assert layer_digests(image) == [layer["digest"] for layer in sample.layers]
    assert [layer.size for layer in image.layers] == [layer["size"] for layer in sample.layers]
    assert image.platform and not image.platform.startswith("generic")

    step = image.layers[STEP_LAYER].path
    assert step.is_absolute()
    assert "exec:" in (step / "step.yml").read_text()
    assert os.stat(step / "run.sh").st_mode & stat.S_IXUSR
    assert (step / "run.sh").read_text().startswith("#!/bin/sh")

    bin_dir = image.layers[BIN_LAYER].path / "bin"
    assert (bin_dir / "hello").is_symlink()
    assert os.readlink(bin_dir / "hello") == "greet"
    # Cached files are read-only: exec bits kept, write bits dropped.
    assert stat.S_IMODE(os.stat(bin_dir / "greet").st_mode) == 0o555


def test_warm_semver_fetch_sends_no_request(cache, sample, registry, repository):
    cold = cache.fetch(sample.reference("1.0.0"))
    before = len(registry.requests_for(repository))

    warm = cache.fetch(sample.reference("1.0.0"))

    assert registry.requests_for(repository)[before:] == []
    assert warm.cache == "hit"
    assert [layer.cache for layer in warm.layers] == ["hit", "hit"]
    assert layer_digests(warm) == layer_digests(cold)
    assert [layer.path for layer in warm.layers] == [layer.path for layer in cold.layers]
    assert (warm.layers[STEP_LAYER].path / "step.yml").is_file()


def test_warm_fetch_from_a_new_handle_sends_no_request(cache_dir, sample, registry, repository):
    with Cache(cache_dir) as first:
        first.fetch(sample.reference("1.0.0"))
    before = len(registry.requests_for(repository))

    with Cache(cache_dir) as second:
        warm = second.fetch(sample.reference("1.0.0"))

    assert registry.requests_for(repository)[before:] == []
    assert warm.cache == "hit"


def test_warm_latest_fetch_sends_one_head(cache, sample, registry, repository):
    cache.fetch(sample.reference("latest"))
    before = len(registry.requests_for(repository))

    warm = cache.fetch(sample.reference("latest"))

    requests = registry.requests_for(repository)[before:]
    assert [(r.method, r.path) for r in requests] == [
        ("HEAD", f"/v2/{repository}/manifests/latest")
    ]
    assert warm.cache == "mutable"
    assert [layer.cache for layer in warm.layers] == ["hit", "hit"]


def test_eight_threads_fetching_at_once_get_the_same_image(cache, sample):
    reference = sample.reference("1.0.0")

    with ThreadPoolExecutor(max_workers=8) as pool:
        images = list(pool.map(lambda _: cache.fetch(reference), range(8)))

    # Who downloaded and who waited differs from run to run; what they got does not.
    def without_outcomes(image: Image):
        return (
            image.reference,
            image.manifest_digest,
            image.platform,
            [(layer.digest, layer.media_type, layer.size, layer.path) for layer in image.layers],
        )

    assert all(without_outcomes(image) == without_outcomes(images[0]) for image in images)
    assert all(image.cache in ("hit", "miss") for image in images)
    assert (images[0].layers[STEP_LAYER].path / "step.yml").is_file()
    assert (images[0].layers[BIN_LAYER].path / "bin" / "hello").is_symlink()


def test_platform_argument_chooses_the_index_entry(cache, registry, repository):
    # With a large layer the host's entry has three layers and the generic entry two.
    sample = registry.push_sample(repository, tags=["1.0.0"], large_mib=1)

    generic = cache.fetch(sample.reference("1.0.0"), platform="generic/unknown")
    host = cache.fetch(sample.reference("1.0.0"))

    assert generic.platform == "generic/unknown"
    assert len(generic.layers) == 2
    assert generic.manifest_digest != sample.manifest_digest
    assert host.manifest_digest == sample.manifest_digest
    assert len(host.layers) == 3


def test_results_outlive_the_cache(cache_dir, sample):
    with Cache(cache_dir) as cache:
        image = cache.fetch(sample.reference("1.0.0"))

    assert isinstance(image.layers[STEP_LAYER].path, Path)
    assert (image.layers[STEP_LAYER].path / "run.sh").is_file()


def test_disabled_cache_downloads_into_a_directory_the_caller_owns(cache_dir, sample, monkeypatch):
    monkeypatch.setenv("CI_STEPS_OCI_CACHE", "false")

    with Cache(cache_dir) as cache:
        image = cache.fetch(sample.reference("1.0.0"))
        status = cache.status()

    assert image.cache == "disabled"
    assert [layer.cache for layer in image.layers] == ["disabled", "disabled"]
    assert image.uncached_root is not None
    assert all(image.uncached_root in layer.path.parents for layer in image.layers)
    assert (image.layers[STEP_LAYER].path / "step.yml").is_file()
    assert status.disabled
    assert not cache_dir.exists()
    shutil.rmtree(image.uncached_root)
