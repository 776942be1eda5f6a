//! Many fetchers, one cache: every blob is downloaded once across threads and processes, and a
//! killed downloader's work is taken over by a waiter.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oci_cache::{Cache, CacheOptions, FetchOptions};
use support::{Compression, Entry, Layer, Registry};

/// A multi-layer image of about `mib` MiB: random files in uncompressed, gzip and zstd layers,
/// plus a small step layer.
fn large_image(registry: &Registry, repository: &str, mib: usize) -> Vec<Layer> {
    let third = (mib << 20) / 3;
    let layers = vec![
        Layer::random(third, 1, Compression::None, support::OCI_LAYER_TAR),
        Layer::random(third, 2, Compression::Gzip, support::OCI_LAYER_GZIP),
        Layer::random(third, 3, Compression::Zstd, support::OCI_LAYER_ZSTD),
        Layer::build(
            &[Entry::file("step.yml", "run: large\n")],
            Compression::Zstd,
            support::STEP_LAYER_ZSTD,
        ),
    ];
    registry.push_image(repository, Some("1.0.0"), &layers, None, false);
    layers
}

/// How many times each blob was downloaded (GET) from `repository`.
fn blob_downloads(registry: &Registry, repository: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for request in registry.requests_for(repository) {
        if request.is_blob() && request.method == "GET" {
            let digest = request
                .path
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string();
            *counts.entry(digest).or_default() += 1;
        }
    }
    counts
}

fn assert_each_blob_downloaded_once(registry: &Registry, repository: &str, layers: &[Layer]) {
    let downloads = blob_downloads(registry, repository);
    for layer in layers {
        let count = downloads.get(&layer.digest);
        assert_eq!(count, Some(&1), "{}: {downloads:?}", layer.digest);
    }
}

fn fetch_process(cache: &Path, reference: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_oci-cache"))
        .args(["fetch", "--json", "--cache-dir"])
        .arg(cache)
        .arg(reference)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("oci-cache starts")
}

/// The layers a CLI run printed: (digest, path) pairs.
fn printed_layers(child: Child) -> Vec<(String, String)> {
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    json["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["digest"].as_str().unwrap().to_string(),
                l["path"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn assert_complete(layers: &[Layer], cache: &Path) {
    for layer in layers {
        let expected = tempfile::tempdir().unwrap();
        support::gnu_tar_extract(&layer.tar, expected.path());
        let hex = layer.digest.trim_start_matches("sha256:");
        support::assert_same_tree(expected.path(), &cache.join("layers/sha256").join(hex));
    }
    let debris: Vec<_> = std::fs::read_dir(cache.join("staging")).unwrap().collect();
    assert!(debris.is_empty(), "staging holds {debris:?}");
}

#[test]
fn threads_on_one_and_several_handles_download_each_blob_once() {
    let registry = Registry::start();
    let layers = large_image(&registry, "many/threads", 48);
    let dir = tempfile::tempdir().unwrap();
    let shared = Cache::open(dir.path(), CacheOptions::default()).unwrap();
    let reference = format!("{}/many/threads:1.0.0", registry.host());

    let results: Vec<oci_cache::Image> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (shared, reference, dir) = (&shared, &reference, dir.path());
                scope.spawn(move || {
                    // Half the threads share one handle, the others open their own.
                    let own;
                    let cache = if i % 2 == 0 {
                        shared
                    } else {
                        own = Cache::open(dir, CacheOptions::default()).unwrap();
                        &own
                    };
                    cache.fetch(reference, &FetchOptions::default()).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    assert_each_blob_downloaded_once(&registry, "many/threads", &layers);
    let first: Vec<_> = results[0]
        .layers
        .iter()
        .map(|l| (&l.digest, &l.path))
        .collect();
    for image in &results {
        let layers: Vec<_> = image.layers.iter().map(|l| (&l.digest, &l.path)).collect();
        assert_eq!(layers, first);
    }
    let misses = results
        .iter()
        .flat_map(|i| &i.layers)
        .filter(|l| l.cache == oci_cache::LayerOutcome::Miss);
    assert_eq!(
        misses.count(),
        layers.len(),
        "each layer was downloaded by exactly one thread"
    );
    assert_complete(&layers, dir.path());
}

#[test]
fn six_processes_on_a_cold_cache_download_each_blob_once() {
    let registry = Registry::start();
    let layers = large_image(&registry, "many/processes", 300);
    let dir = tempfile::tempdir().unwrap();
    let reference = format!("{}/many/processes:1.0.0", registry.host());

    let children: Vec<Child> = (0..6)
        .map(|_| fetch_process(dir.path(), &reference))
        .collect();
    let results: Vec<_> = children.into_iter().map(printed_layers).collect();

    assert_each_blob_downloaded_once(&registry, "many/processes", &layers);
    assert!(results.iter().all(|r| *r == results[0]), "{results:?}");
    assert_complete(&layers, dir.path());
}

#[test]
fn a_waiter_completes_the_download_of_a_killed_holder() {
    let registry = Registry::start();
    let layers = large_image(&registry, "many/killed", 240);
    let dir = tempfile::tempdir().unwrap();
    let reference = format!("{}/many/killed:1.0.0", registry.host());

    let mut holder = fetch_process(dir.path(), &reference);
    wait_for_staging(dir.path(), &mut holder);
    let waiter = fetch_process(dir.path(), &reference);
    std::thread::sleep(Duration::from_millis(200));
    holder.kill().unwrap();
    let killed = holder.wait().unwrap();

    assert!(
        !killed.success(),
        "the holder was killed before it finished"
    );
    let printed = printed_layers(waiter);
    assert_eq!(printed.len(), layers.len());
    assert_complete(&layers, dir.path());
    let downloads = blob_downloads(&registry, "many/killed");
    let taken_over = downloads.values().filter(|&&n| n == 2).count();
    assert!(
        taken_over > 0,
        "the waiter took over a started download: {downloads:?}"
    );
    assert!(downloads.values().all(|&n| n <= 2), "{downloads:?}");
}

/// Wait until `child` started writing a layer into the cache's staging directory.
fn wait_for_staging(cache: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let staging = std::fs::read_dir(cache.join("staging"))
            .map(|d| d.count())
            .unwrap_or(0);
        if staging > 0 {
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the holder ended before it staged anything"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("the holder never started a download");
}
