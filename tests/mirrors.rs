//! Mirrors and pull-through caches: the Distribution registry in proxy mode in front of an
//! origin, a mirror that is down, a mirror that serves wrong bytes, and a digest-only mirror.

mod support;

use std::path::Path;

use oci_cache::{Cache, CacheOptions, FetchOptions, Mirror};
use support::{Compression, HostileRegistry, Layer, Registry, Reply, Setup};

fn layers() -> Vec<Layer> {
    vec![
        Layer::random(256 << 10, 11, Compression::Gzip, support::OCI_LAYER_GZIP),
        Layer::random(128 << 10, 12, Compression::Zstd, support::OCI_LAYER_ZSTD),
    ]
}

fn options(origin: &Registry, mirrors: Vec<Mirror>) -> CacheOptions {
    CacheOptions {
        mirrors: [(origin.host(), mirrors)].into(),
        docker_config: false,
        ..CacheOptions::default()
    }
}

fn fetch(dir: &Path, options: CacheOptions, reference: &str) -> oci_cache::Image {
    Cache::open(dir, options)
        .unwrap()
        .fetch(reference, &FetchOptions::default())
        .unwrap()
}

fn assert_layers(image: &oci_cache::Image, layers: &[Layer]) {
    assert_eq!(image.layers.len(), layers.len());
    for (fetched, layer) in image.layers.iter().zip(layers) {
        let expected = tempfile::tempdir().unwrap();
        support::gnu_tar_extract(&layer.tar, expected.path());
        support::assert_same_tree(expected.path(), &fetched.path);
    }
}

fn blob_gets(registry: &Registry, repository: &str) -> usize {
    let requests = registry.requests_for(repository);
    requests
        .iter()
        .filter(|r| r.is_blob() && r.method == "GET")
        .count()
}

#[test]
fn a_pull_through_cache_spares_the_origin_the_second_runners_blobs() {
    let origin = Registry::start();
    let layers = layers();
    origin.push_image("steps/app", Some("1.0.0"), &layers, None, false);
    let proxy = Registry::start_with(Setup {
        proxy_of: Some(format!("http://{}", origin.host())),
        ..Setup::default()
    });
    let mirror = Mirror::new(&format!("http://{}", proxy.host()), false).unwrap();
    let reference = format!("{}/steps/app:1.0.0", origin.host());

    // The first runner's fetch fills the pull-through cache from the origin.
    let first = tempfile::tempdir().unwrap();
    let image = fetch(
        first.path(),
        options(&origin, vec![mirror.clone()]),
        &reference,
    );
    assert_layers(&image, &layers);
    // (Distribution's proxy may read a blob from its upstream more than once while it stores
    // it: only the second runner's count matters.)
    assert!(
        blob_gets(&origin, "steps/app") > layers.len(),
        "layers and config"
    );
    assert!(
        blob_gets(&proxy, "steps/app") > 0,
        "the runner went through the mirror"
    );

    // A second runner, with a cache of its own: every blob comes from the mirror.
    let origin_blobs = blob_gets(&origin, "steps/app");
    let second = tempfile::tempdir().unwrap();
    let image = fetch(second.path(), options(&origin, vec![mirror]), &reference);
    assert_layers(&image, &layers);
    assert_eq!(
        blob_gets(&origin, "steps/app"),
        origin_blobs,
        "no blob from the origin"
    );
}

#[test]
fn a_mirror_that_is_down_falls_back_to_the_origin() {
    let origin = Registry::start();
    let layers = layers();
    origin.push_image("steps/app", Some("1.0.0"), &layers, None, false);
    // A port that nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let reference = format!("{}/steps/app:1.0.0", origin.host());
    let dir = tempfile::tempdir().unwrap();

    let mirrors = vec![Mirror::new(&dead, false).unwrap()];
    let image = fetch(dir.path(), options(&origin, mirrors), &reference);

    assert_layers(&image, &layers);
    assert_eq!(blob_gets(&origin, "steps/app"), layers.len() + 1);
}

#[test]
fn a_mirror_serving_wrong_bytes_is_skipped_for_that_blob() {
    let origin = Registry::start();
    let layers = layers();
    origin.push_image("steps/app", Some("1.0.0"), &layers, None, false);
    let (bad, good) = (layers[0].digest.clone(), layers[1].digest.clone());
    // The mirror is digest-only (the manifest by tag comes from the origin), serves the first
    // layer corrupted, and the second one right.
    let served = layers.clone();
    let mirror = HostileRegistry::serve_image("unused", &served, move |request, _| {
        match request.path.contains(&bad) {
            true => Reply::Body(vec![0x1f; 4096]),
            false => Reply::Normal,
        }
    });
    let reference = format!("{}/steps/app:1.0.0", origin.host());
    let dir = tempfile::tempdir().unwrap();

    let mirrors = vec![Mirror::new(&format!("http://{}", mirror.host()), true).unwrap()];
    let image = fetch(dir.path(), options(&origin, mirrors), &reference);

    assert_layers(&image, &layers);
    let origin_blobs: Vec<String> = origin
        .requests_for("steps/app")
        .into_iter()
        .filter(|r| r.is_blob() && r.method == "GET")
        .map(|r| r.path)
        .collect();
    assert!(
        origin_blobs.iter().any(|p| p.contains(&layers[0].digest)),
        "{origin_blobs:?}"
    );
    assert!(
        !origin_blobs.iter().any(|p| p.contains(&good)),
        "{origin_blobs:?}"
    );
    let asked = mirror.requests();
    assert!(
        !asked.iter().any(|r| r.path.contains("/manifests/1.0.0")),
        "a digest-only mirror is never asked for a tag: {asked:?}"
    );
}
