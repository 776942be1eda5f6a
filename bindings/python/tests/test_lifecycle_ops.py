"""The lifecycle of cached images: served offline, merged into one directory, pruned (never
while an `Image` pins them), counted, and reported on as they download."""

from __future__ import annotations

import datetime
import gc
import logging
import os
import stat
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import pytest
from conftest import Registry, Sample

from oci_cache import (
    Cache,
    Counters,
    Image,
    InvalidArgumentError,
    NotCachedError,
    Progress,
    PruneReport,
)

MONTH = 30 * 24 * 3600

#: The sample image's files and the modes they are stored with: no write bit.
MERGED_FILES = {"step.yml": 0o444, "run.sh": 0o555, "bin/greet": 0o555}


def test_offline_cache_serves_cached_tags_with_no_request(cache_dir, sample, registry, repository):
    references = [sample.reference("1.0.0"), sample.reference("latest")]
    with Cache(cache_dir) as online:
        fetched = [online.fetch(reference) for reference in references]

    before = len(registry.requests_for(repository))
    with Cache(cache_dir, offline=True) as offline:
        served = [offline.fetch(reference) for reference in references]

    assert registry.requests_for(repository)[before:] == []
    assert [image.manifest_digest for image in served] == [
        image.manifest_digest for image in fetched
    ]
    assert [image.layers[1].path for image in served] == [image.layers[1].path for image in fetched]
    assert all((image.layers[1].path / "step.yml").is_file() for image in served)


def test_offline_fetch_of_an_uncached_tag_raises_not_cached(cache_dir, registry, repository):
    pushed = registry.push_sample(repository, tags=("1.0.0", "2.0.0"))
    with Cache(cache_dir) as online:
        online.fetch(pushed.reference("1.0.0"))

    before = len(registry.requests_for(repository))
    with Cache(cache_dir, offline=True) as offline, pytest.raises(NotCachedError):
        offline.fetch(pushed.reference("2.0.0"))

    assert registry.requests_for(repository)[before:] == []


def test_merged_directory_holds_the_image_files_read_only(cache, sample):
    with cache.fetch(sample.reference("1.0.0"), merged=True) as image:
        merged = image.merged_path

        assert merged is not None and merged.is_dir()
        modes = {name: stat.S_IMODE((merged / name).stat().st_mode) for name in MERGED_FILES}
        assert modes == MERGED_FILES
        assert os.readlink(merged / "bin" / "hello") == "greet"


def test_fetch_without_merged_has_no_merged_path(cache, sample):
    image = cache.fetch(sample.reference("1.0.0"))

    assert image.merged_path is None


def test_prune_to_a_size_removes_the_least_recently_used_image(cache, cache_dir, two_samples):
    kept, stale = fetch_and_release(cache, two_samples)
    # Used last by the fetches, but long ago by its use records.
    unused_since(cache_dir, stale, MONTH)
    stale_size, budget = layers_size(stale), layers_size(kept)

    report = cache.prune(max_size=budget)

    assert report == PruneReport(
        removed_layers=len(stale.layers),
        removed_bytes=stale_size,
        removed_images=1,
        in_use=0,
        size_before=stale_size + budget,
        size_after=budget,
    )
    assert not any(layer.path.exists() for layer in stale.layers)
    assert all(layer.path.is_dir() for layer in kept.layers)


def test_prune_unused_for_removes_only_layers_unused_that_long(cache, cache_dir, two_samples):
    kept, stale = fetch_and_release(cache, two_samples)
    unused_since(cache_dir, stale, 3 * 3600)

    report = cache.prune(unused_for=datetime.timedelta(hours=1))

    assert (report.removed_layers, report.removed_images) == (len(stale.layers), 1)
    assert not any(layer.path.exists() for layer in stale.layers)
    assert all(layer.path.is_dir() for layer in kept.layers)


def test_prune_keeps_the_layers_of_an_image_until_it_is_released(cache, sample):
    image = cache.fetch(sample.reference("1.0.0"))

    pinned = cache.prune(all=True)
    assert (pinned.removed_layers, pinned.in_use) == (0, len(image.layers))
    assert all(layer.path.is_dir() for layer in image.layers)

    release_from_many_threads(image, 4)
    released = cache.prune(all=True)
    assert (released.removed_layers, released.in_use) == (len(image.layers), 0)
    assert not any(layer.path.exists() for layer in image.layers)


def test_leaving_an_image_context_releases_it(cache, sample):
    with cache.fetch(sample.reference("1.0.0")) as image:
        assert cache.prune(all=True).in_use == len(image.layers)

    assert cache.prune(all=True).removed_layers == len(image.layers)


def test_an_image_collected_unreleased_is_released(cache, sample):
    # Only the layers outlive the image.
    layers = cache.fetch(sample.reference("1.0.0")).layers
    gc.collect()

    report = cache.prune(all=True)

    assert report.removed_layers == len(layers)
    assert not any(layer.path.exists() for layer in layers)


def test_prune_that_asks_for_nothing_raises_invalid_argument(cache):
    with pytest.raises(InvalidArgumentError):
        cache.prune()


def test_prune_of_a_negative_age_raises_invalid_argument(cache):
    with pytest.raises(InvalidArgumentError, match="unused_for"):
        cache.prune(unused_for=-1.0)


def test_max_size_prunes_released_layers_after_a_download_but_not_the_fetched_image(
    cache_dir, two_samples
):
    first, second = two_samples
    with Cache(cache_dir) as unbounded:
        released = unbounded.fetch(first)
        released.release()

    # A budget no image fits in: everything goes but what the fetch itself pins.
    with Cache(cache_dir, max_size=1) as budgeted:
        image = budgeted.fetch(second)

    assert not any(layer.path.exists() for layer in released.layers)
    assert all(layer.path.is_dir() for layer in image.layers)
    assert (image.layers[1].path / "step.yml").is_file()


def test_session_counters_count_a_miss_and_a_hit(cache, sample):
    cache.fetch(sample.reference("1.0.0"))
    cache.fetch(sample.reference("1.0.0"))

    layers, size = len(sample.layers), blob_bytes(sample)
    want = Counters(hits=layers, misses=layers, bytes_downloaded=size, bytes_saved=size)
    status = cache.status()
    assert (status.session, status.total) == (want, want)


def test_total_counters_include_a_closed_cache(cache_dir, sample):
    with Cache(cache_dir) as earlier:
        earlier.fetch(sample.reference("1.0.0"))
        earlier.fetch(sample.reference("1.0.0"))

    with Cache(cache_dir) as later:
        later.fetch(sample.reference("1.0.0"))
        status = later.status()

    layers, size = len(sample.layers), blob_bytes(sample)
    assert status.session == Counters(hits=layers, misses=0, bytes_downloaded=0, bytes_saved=size)
    assert status.total == Counters(
        hits=2 * layers, misses=layers, bytes_downloaded=size, bytes_saved=2 * size
    )


def test_progress_of_a_download_rises_to_each_layers_total(cache, registry, repository):
    large = registry.push_sample(repository, tags=("1.0.0",), large_mib=8)
    reports = ProgressLog()

    with cache.fetch(large.reference("1.0.0"), progress=reports.add) as image:
        by_layer = reports.by_layer(image)

    for layer in image.layers:
        dones = [report.done for report in by_layer[layer.digest]]
        assert dones == sorted(set(dones)), f"layer {layer.digest} went back: {dones}"
        assert dones[-1] == layer.size
    # A report per MiB or so.
    assert len(by_layer[image.layers[2].digest]) >= 4


def test_progress_of_a_cached_fetch_reports_each_layer_complete(cache, sample):
    cache.fetch(sample.reference("1.0.0")).release()
    reports = ProgressLog()

    with cache.fetch(sample.reference("1.0.0"), progress=reports.add) as image:
        by_layer = reports.by_layer(image)

    assert {digest: [(r.done, r.total) for r in found] for digest, found in by_layer.items()} == {
        layer.digest: [(layer.size, layer.size)] for layer in image.layers
    }
    assert len(reports.all) == len(image.layers)


def test_an_exception_in_the_progress_callback_is_logged_not_raised(cache, sample, caplog):
    def fail(report: Progress) -> None:
        raise RuntimeError(f"no room for {report.digest}")

    with caplog.at_level(logging.ERROR, logger="oci_cache"):
        image = cache.fetch(sample.reference("1.0.0"), progress=fail)

    failures = [r for r in caplog.records if r.getMessage() == "progress callback raised"]
    assert {r.oci_cache_fields["digest"] for r in failures} == {
        layer.digest for layer in image.layers
    }
    assert all(r.exc_info and r.exc_info[0] is RuntimeError for r in failures)


class ProgressLog:
    """Progress reports, which arrive on several library threads at once."""

    def __init__(self) -> None:
        self.all: list[Progress] = []
        self._lock = threading.Lock()

    def add(self, report: Progress) -> None:
        with self._lock:
            self.all.append(report)

    def by_layer(self, image: Image) -> dict[str, list[Progress]]:
        """The reports of each layer of `image`, in order; every report's total must be the
        layer's size."""
        with self._lock:
            reports = list(self.all)
        by_layer: dict[str, list[Progress]] = {layer.digest: [] for layer in image.layers}
        for report in reports:
            by_layer[report.digest].append(report)
        sizes = {layer.digest: layer.size for layer in image.layers}
        assert all(report.total == sizes[report.digest] for report in reports), reports
        return by_layer


@pytest.fixture
def two_samples(registry: Registry, repository: str) -> tuple[str, str]:
    """Two sample images with no layer in common in this test's repository: the references of
    1.0.0 and 2.0.0."""
    first = registry.push_sample(repository, tags=("1.0.0",), message="first")
    second = registry.push_sample(repository, tags=("2.0.0",), message="second")
    return first.reference("1.0.0"), second.reference("2.0.0")


def fetch_and_release(cache: Cache, references: Iterable[str]) -> list[Image]:
    """Fetch each reference in turn and release the images, so that prunes may take them."""
    images = [cache.fetch(reference) for reference in references]
    for image in images:
        image.release()
    return images


def unused_since(cache_dir: Path, image: Image, seconds: float) -> None:
    """Record the last use of `image`'s layers as `seconds` ago."""
    then = time.time() - seconds
    for layer in image.layers:
        use = cache_dir / "uses" / "sha256" / layer.digest.removeprefix("sha256:")
        os.utime(use, (then, then))


def layers_size(image: Image) -> int:
    """The size of the files of `image`'s layer directories, as prunes count it."""
    size = 0
    for layer in image.layers:
        for parent, _, names in os.walk(layer.path):
            for name in names:
                status = os.lstat(os.path.join(parent, name))
                if stat.S_ISREG(status.st_mode):
                    size += status.st_size
    return size


def release_from_many_threads(image: Image, count: int) -> None:
    """Release `image` from `count` threads at once."""
    threads = [threading.Thread(target=image.release) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def blob_bytes(sample: Sample) -> int:
    """The blob bytes of the host's image of `sample`."""
    return sum(layer["size"] for layer in sample.layers)
