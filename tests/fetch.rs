//! The fetch and its caching policy, against a real registry (Debian's docker-registry).
//!
//! Each test pushes its own images to its own repository and counts the requests the registry
//! served for that repository in its access log.

mod support;

use std::path::Path;
use std::sync::{Arc, Mutex};

use oci_cache::{
    Cache, CacheOptions, ErrorCode, FetchOptions, ImageOutcome, LayerOutcome, LogTarget, Platform,
};
use support::{Compression, Entry, Layer, Pushed, Registry, Request};

/// A small step image: a step.yml, an executable script, a symlink, in a zstd step layer,
/// plus a gzip base layer.
fn step_layers(name: &str) -> Vec<Layer> {
    let base = Layer::build(
        &[
            Entry::dir("usr/"),
            Entry::dir("usr/bin/"),
            Entry::File {
                path: "usr/bin/tool".into(),
                contents: format!("#!/bin/sh\necho {name}\n").into(),
                mode: 0o755,
            },
            Entry::Symlink {
                path: "usr/bin/alias".into(),
                target: "tool".into(),
            },
            Entry::Symlink {
                path: "etc-link".into(),
                target: "/etc/hostname".into(),
            },
        ],
        Compression::Gzip,
        support::OCI_LAYER_GZIP,
    );
    let step = Layer::build(
        &[
            Entry::file("./step.yml", format!("spec: {{}}\n---\nrun: {name}\n")),
            Entry::File {
                path: "/scripts/run.sh".into(),
                contents: b"#!/bin/sh\nexit 0\n".to_vec(),
                mode: 0o755,
            },
            Entry::Hardlink {
                path: "scripts/again.sh".into(),
                target: "scripts/run.sh".into(),
            },
        ],
        Compression::Zstd,
        support::STEP_LAYER_ZSTD,
    );
    vec![base, step]
}

fn open(dir: &Path) -> Cache {
    Cache::open(dir, CacheOptions::default()).expect("cache opens")
}

fn fetch(cache: &Cache, reference: &str) -> oci_cache::Image {
    cache
        .fetch(reference, &FetchOptions::default())
        .unwrap_or_else(|e| panic!("fetch {reference}: {e}"))
}

fn fetch_for(
    cache: &Cache,
    reference: &str,
    platform: &str,
) -> oci_cache::Result<oci_cache::Image> {
    let options = FetchOptions {
        platform: Some(Platform::parse(platform).unwrap()),
        ..Default::default()
    };
    cache.fetch(reference, &options)
}

/// Requests for `repository` served after the first `skip`.
fn new_requests(registry: &Registry, repository: &str, skip: usize) -> Vec<Request> {
    registry
        .requests_for(repository)
        .into_iter()
        .skip(skip)
        .collect()
}

fn assert_layers_match_gnu_tar(image: &oci_cache::Image, layers: &[Layer]) {
    assert_eq!(image.layers.len(), layers.len());
    for (fetched, built) in image.layers.iter().zip(layers) {
        assert_eq!(fetched.digest, built.digest);
        let expected = tempfile::tempdir().unwrap();
        support::gnu_tar_extract(&built.tar, expected.path());
        support::assert_same_tree(expected.path(), &fetched.path);
    }
}

#[test]
fn cold_fetch_of_multi_platform_step_image_matches_gnu_tar() {
    let registry = Registry::start();
    let amd64_layers = step_layers("amd64");
    let arm64_layers = step_layers("arm64");
    let amd64 = registry.push_image("steps/multi", None, &amd64_layers, None, false);
    let arm64 = registry.push_image("steps/multi", None, &arm64_layers, None, false);
    let generic = registry.push_image("steps/multi", None, &step_layers("generic"), None, false);
    registry.push_index(
        "steps/multi",
        "1.0.0",
        &[
            (arm64, ("linux", "arm64", Some("v8"))),
            (amd64.clone(), ("linux", "amd64", None)),
            (generic, ("generic", "unknown", None)),
        ],
        false,
    );
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path());

    let reference = format!("{}/steps/multi:1.0.0", registry.host());
    let image = fetch_for(&cache, &reference, "linux/amd64").unwrap();

    assert_eq!(image.cache, ImageOutcome::Miss);
    assert_eq!(image.manifest_digest, amd64.digest);
    assert_eq!(image.platform.as_ref().unwrap().to_string(), "linux/amd64");
    assert!(image.layers.iter().all(|l| l.cache == LayerOutcome::Miss));
    assert_layers_match_gnu_tar(&image, &amd64_layers);
    let arm = fetch_for(&cache, &reference, "linux/arm64").unwrap();
    assert_layers_match_gnu_tar(&arm, &arm64_layers);
}

#[test]
fn generic_entry_is_chosen_when_no_platform_matches() {
    let registry = Registry::start();
    let arm64 = registry.push_image("steps/generic", None, &step_layers("arm64"), None, false);
    let generic_layers = step_layers("generic");
    let generic = registry.push_image("steps/generic", None, &generic_layers, None, false);
    registry.push_index(
        "steps/generic",
        "2.0.0",
        &[
            (arm64, ("linux", "arm64", None)),
            (generic.clone(), ("generic", "unknown", None)),
        ],
        false,
    );
    let dir = tempfile::tempdir().unwrap();

    let reference = format!("{}/steps/generic:2.0.0", registry.host());
    let image = fetch_for(&open(dir.path()), &reference, "linux/amd64").unwrap();

    assert_eq!(image.manifest_digest, generic.digest);
    assert_layers_match_gnu_tar(&image, &generic_layers);
}

#[test]
fn index_without_matching_platform_names_what_it_offers() {
    let registry = Registry::start();
    let arm64 = registry.push_image("steps/arm-only", None, &step_layers("arm64"), None, false);
    registry.push_index(
        "steps/arm-only",
        "1.0.0",
        &[(arm64, ("linux", "arm64", None))],
        false,
    );
    let dir = tempfile::tempdir().unwrap();

    let reference = format!("{}/steps/arm-only:1.0.0", registry.host());
    let error = fetch_for(&open(dir.path()), &reference, "linux/amd64").unwrap_err();

    assert_eq!(error.code(), ErrorCode::NoMatchingPlatform);
    assert!(error.to_string().contains("linux/arm64"), "{error}");
}

/// Push a plain image under `tag`, fetch it cold, and return what a warm fetch then requests.
fn warm_requests(
    repository: &str,
    tag: &str,
) -> (oci_cache::Image, Vec<Request>, tempfile::TempDir) {
    let registry = Registry::start();
    registry.push_image(repository, Some(tag), &step_layers(tag), None, false);
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path());
    let reference = format!("{}/{repository}:{tag}", registry.host());

    let cold = fetch(&cache, &reference);
    assert_eq!(
        cold.cache,
        if tag == "latest" {
            ImageOutcome::Mutable
        } else {
            ImageOutcome::Miss
        }
    );
    let before = registry.requests_for(repository).len();

    let warm = fetch(&open(dir.path()), &reference);
    (warm, new_requests(&registry, repository, before), dir)
}

#[test]
fn warm_semver_fetch_sends_no_request() {
    let (image, requests, _dir) = warm_requests("steps/semver", "1.2.3");

    assert_eq!(requests, vec![]);
    assert_eq!(image.cache, ImageOutcome::Hit);
    assert!(image.layers.iter().all(|l| l.cache == LayerOutcome::Hit));
    assert!(image.layers[1].path.join("step.yml").is_file());
}

#[test]
fn warm_prerelease_fetch_sends_no_request() {
    let (image, requests, _dir) = warm_requests("steps/prerelease", "1.2.3-rc.1");

    assert_eq!(requests, vec![]);
    assert_eq!(image.cache, ImageOutcome::Hit);
}

#[test]
fn warm_mutable_fetch_sends_one_manifest_request_and_no_blob_request() {
    let (image, requests, _dir) = warm_requests("steps/mutable", "latest");

    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].method, "HEAD");
    assert!(requests[0].is_manifest());
    assert_eq!(image.cache, ImageOutcome::Mutable);
    assert!(image.layers.iter().all(|l| l.cache == LayerOutcome::Hit));
}

#[test]
fn warm_digest_fetch_sends_no_request() {
    let registry = Registry::start();
    let pushed = registry.push_image("steps/digest", None, &step_layers("digest"), None, false);
    let dir = tempfile::tempdir().unwrap();
    let reference = format!("{}/steps/digest@{}", registry.host(), pushed.digest);
    fetch(&open(dir.path()), &reference);
    let before = registry.requests_for("steps/digest").len();

    let image = fetch(&open(dir.path()), &reference);

    assert_eq!(new_requests(&registry, "steps/digest", before), vec![]);
    assert_eq!(image.cache, ImageOutcome::Hit);
    assert_eq!(image.manifest_digest, pushed.digest);
}

#[test]
fn repointed_mutable_tag_downloads_only_the_new_layer() {
    let registry = Registry::start();
    let old = step_layers("old");
    let new = vec![old[0].clone(), step_layers("new").remove(1)];
    registry.push_image("steps/moving", Some("3"), &old, None, false);
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path());
    let reference = format!("{}/steps/moving:3", registry.host());
    fetch(&cache, &reference);

    let pushed = registry.push_image("steps/moving", Some("3"), &new, None, false);
    let before = registry.requests_for("steps/moving").len();
    let image = fetch(&cache, &reference);

    let requests = new_requests(&registry, "steps/moving", before);
    let blobs: Vec<&Request> = requests.iter().filter(|r| r.is_blob()).collect();
    assert_eq!(blobs.len(), 1, "{requests:?}");
    assert!(blobs[0].path.ends_with(&new[1].digest));
    assert_eq!(
        requests.iter().filter(|r| r.is_manifest()).count(),
        2,
        "HEAD, then GET by digest"
    );
    assert_eq!(image.manifest_digest, pushed.digest);
    assert_eq!(image.layers[0].cache, LayerOutcome::Hit);
    assert_eq!(image.layers[1].cache, LayerOutcome::Miss);
    assert_layers_match_gnu_tar(&image, &new);
}

#[test]
fn uncompressed_and_docker_gzip_layers_under_docker_schema_2() {
    let registry = Registry::start();
    let layers = vec![
        Layer::build(
            &[Entry::file("plain.txt", "plain")],
            Compression::None,
            support::OCI_LAYER_TAR,
        ),
        Layer::build(
            &[Entry::file("docker.txt", "docker")],
            Compression::Gzip,
            support::DOCKER_LAYER_GZIP,
        ),
        // Labelled plain tar but zstd on the wire: the magic bytes decide.
        Layer::build(
            &[Entry::file("magic.txt", "magic")],
            Compression::Zstd,
            support::OCI_LAYER_TAR,
        ),
    ];
    let amd64 = registry.push_image(
        "steps/docker",
        None,
        &layers,
        Some(("linux", "amd64", None)),
        true,
    );
    registry.push_index(
        "steps/docker",
        "1.0.0",
        &[(amd64, ("linux", "amd64", None))],
        true,
    );
    let dir = tempfile::tempdir().unwrap();

    let reference = format!("{}/steps/docker:1.0.0", registry.host());
    let image = fetch_for(&open(dir.path()), &reference, "linux/amd64").unwrap();

    assert_layers_match_gnu_tar(&image, &layers);
}

#[test]
fn plain_manifest_takes_its_platform_from_the_image_config() {
    let registry = Registry::start();
    let layers = step_layers("plain");
    let platform = ("linux", "arm64", Some("v8"));
    registry.push_image("steps/plain", Some("1.0.0"), &layers, Some(platform), false);
    let dir = tempfile::tempdir().unwrap();
    let reference = format!("{}/steps/plain:1.0.0", registry.host());

    let cold = fetch(&open(dir.path()), &reference);
    let before = registry.requests_for("steps/plain").len();
    let warm = fetch(&open(dir.path()), &reference);

    assert_eq!(cold.platform.unwrap().to_string(), "linux/arm64/v8");
    assert_eq!(warm.platform.unwrap().to_string(), "linux/arm64/v8");
    assert_eq!(new_requests(&registry, "steps/plain", before), vec![]);
}

#[test]
fn corrupted_blob_fails_with_integrity_error_and_leaves_nothing() {
    let registry = Registry::start();
    let layers = step_layers("corrupt");
    registry.push_image("steps/corrupt", Some("1.0.0"), &layers, None, false);
    let blob = registry.blob_data_path(&layers[1].digest);
    let mut bytes = std::fs::read(&blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    let dir = tempfile::tempdir().unwrap();

    let reference = format!("{}/steps/corrupt:1.0.0", registry.host());
    let error = open(dir.path())
        .fetch(&reference, &FetchOptions::default())
        .unwrap_err();

    assert_eq!(error.code(), ErrorCode::Integrity, "{error}");
    assert!(error.to_string().contains(&layers[1].digest), "{error}");
    let hex = layers[1].digest.trim_start_matches("sha256:");
    assert!(!dir.path().join("layers/sha256").join(hex).exists());
    assert_eq!(
        std::fs::read_dir(dir.path().join("staging"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn invalid_references_are_rejected_before_any_request() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path());
    let before = registry.requests().len();

    for text in ["", "Upper/case", "x:", "x@sha256:123", "a//b", "x:-tag"] {
        let error = cache
            .fetch(
                &format!("{}/{text}", registry.host()),
                &FetchOptions::default(),
            )
            .unwrap_err();
        assert_eq!(error.code(), ErrorCode::InvalidReference, "{text}: {error}");
    }

    assert_eq!(registry.requests().len(), before);
}

#[test]
fn missing_tag_is_not_found() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();

    let reference = format!("{}/steps/absent:1.0.0", registry.host());
    let error = open(dir.path())
        .fetch(&reference, &FetchOptions::default())
        .unwrap_err();

    assert_eq!(error.code(), ErrorCode::NotFound, "{error}");
}

#[test]
fn every_cache_decision_is_logged_at_debug_with_fields() {
    let registry = Registry::start();
    registry.push_image(
        "steps/logged",
        Some("1.0.0"),
        &step_layers("logged"),
        None,
        false,
    );
    let dir = tempfile::tempdir().unwrap();
    let events: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = Arc::clone(&events);
    let log = LogTarget {
        level: tracing::Level::DEBUG,
        callback: Arc::new(move |record| {
            sink.lock().unwrap().push(format!(
                "{} {} {} {}",
                record.level, record.target, record.message, record.fields
            ));
        }),
    };
    let cache = Cache::open(
        dir.path(),
        CacheOptions {
            log: Some(log),
            ..Default::default()
        },
    )
    .unwrap();

    let reference = format!("{}/steps/logged:1.0.0", registry.host());
    fetch(&cache, &reference);
    fetch(&cache, &reference);

    let events = events.lock().unwrap().join("\n");
    assert!(
        events.contains("DEBUG oci_cache::fetch manifest cache miss"),
        "{events}"
    );
    assert!(
        events.contains("DEBUG oci_cache::fetch manifest cache hit"),
        "{events}"
    );
    let request = "DEBUG oci_cache::registry registry answered";
    assert!(
        events.contains(request),
        "one event per registry request: {events}"
    );
    assert!(events.contains(r#""outcome":"miss""#), "{events}");
    assert!(events.contains(r#""outcome":"hit""#), "{events}");
    assert!(
        events.contains("INFO oci_cache::fetch fetch complete"),
        "{events}"
    );
    assert!(
        events.contains(&format!(r#""reference":"{reference}""#)),
        "{events}"
    );
}

#[test]
fn cancelled_fetch_of_a_large_layer_returns_promptly_and_leaves_no_partial_layer() {
    // The registry of the tests' own stalls the first download half-way, so that the cancel
    // always lands in the middle of the blob, however fast this machine is.
    let large = Layer::random(32 << 20, 7, Compression::None, support::OCI_LAYER_TAR);
    let (digest, half) = (large.digest.clone(), large.bytes.len() / 2);
    let registry = support::HostileRegistry::serve_image(
        "1.0.0",
        std::slice::from_ref(&large),
        move |request, n| match request.path.ends_with(&digest) && n == 0 {
            true => support::Reply::StallAfter(half, std::time::Duration::from_secs(30)),
            false => support::Reply::Normal,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path());
    let reference = format!("{}/hostile/image:1.0.0", registry.host());

    let cancel = oci_cache::CancelToken::new();
    let trigger = cancel.clone();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        trigger.cancel();
        std::time::Instant::now()
    });
    let error = cache
        .fetch(
            &reference,
            &FetchOptions {
                cancel: Some(cancel),
                ..Default::default()
            },
        )
        .unwrap_err();
    let returned = std::time::Instant::now();
    let cancelled_at = canceller.join().unwrap();

    assert_eq!(error.code(), ErrorCode::Cancelled, "{error}");
    let delay = returned.duration_since(cancelled_at);
    assert!(
        delay < std::time::Duration::from_secs(1),
        "returned {delay:?} after the cancel"
    );
    assert!(!cache.image_status(&reference).unwrap().cached);
    let image = fetch(&cache, &reference);
    assert_layers_match_gnu_tar(&image, &[large]);
}

#[test]
fn status_reports_cached_reference_without_requests() {
    let registry = Registry::start();
    let layers = step_layers("status");
    let pushed: Pushed = registry.push_image("steps/status", Some("1.0.0"), &layers, None, false);
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path());
    let reference = format!("{}/steps/status:1.0.0", registry.host());
    assert!(!cache.image_status(&reference).unwrap().cached);
    fetch(&cache, &reference);
    let before = registry.requests().len();

    let status = cache.image_status(&reference).unwrap();
    let whole = cache.cache_status().unwrap();

    assert!(status.cached);
    assert_eq!(
        status.manifest_digest.as_deref(),
        Some(pushed.digest.as_str())
    );
    assert_eq!(status.layers.len(), 2);
    assert_eq!(whole.layers, 2);
    assert_eq!(whole.images, 1);
    assert!(whole.size_bytes > 0);
    assert_eq!(registry.requests().len(), before);
}
