//! The cache's lifecycle: merged directories, offline use.

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;

use oci_cache::{Cache, CacheOptions, ErrorCode, FetchOptions, ImageOutcome};
use support::{Compression, Entry, Layer, Registry};

fn options() -> CacheOptions {
    CacheOptions {
        docker_config: false,
        ..CacheOptions::default()
    }
}

fn offline() -> CacheOptions {
    CacheOptions {
        offline: true,
        ..options()
    }
}

fn merged() -> FetchOptions {
    FetchOptions {
        merged: true,
        ..FetchOptions::default()
    }
}

/// Three layers that exercise every merge rule: files replaced, a whiteout, an opaque
/// directory, a directory over a link of a lower layer, and a link over a directory.
fn layered_image() -> Vec<Layer> {
    let base = Layer::build(
        &[
            Entry::dir("etc/"),
            Entry::file("etc/os-release", "base\n"),
            Entry::file("etc/removed", "gone in layer 2\n"),
            Entry::dir("opt/"),
            Entry::file("opt/old-a", "hidden by the opaque marker\n"),
            Entry::dir("opt/sub/"),
            Entry::file("opt/sub/old-b", "hidden too\n"),
            Entry::Symlink {
                path: "lib".into(),
                target: "usr/lib".into(),
            },
            Entry::dir("var/"),
            Entry::file("var/data", "a directory that becomes a link\n"),
            Entry::File {
                path: "bin/tool".into(),
                contents: b"#!/bin/sh\necho base\n".to_vec(),
                mode: 0o755,
            },
        ],
        Compression::Gzip,
        support::OCI_LAYER_GZIP,
    );
    let middle = Layer::build(
        &[
            Entry::dir("etc/"),
            Entry::file("etc/.wh.removed", ""),
            Entry::file("etc/os-release", "middle\n"),
            Entry::dir("opt/"),
            Entry::file("opt/.wh..wh..opq", ""),
            Entry::file("opt/new", "after the opaque marker\n"),
            Entry::dir("lib/"),
            Entry::file("lib/libx.so", "a directory over the base's link\n"),
        ],
        Compression::Zstd,
        support::OCI_LAYER_ZSTD,
    );
    let top = Layer::build(
        &[
            Entry::Symlink {
                path: "var".into(),
                target: "tmp".into(),
            },
            Entry::File {
                path: "bin/tool".into(),
                contents: b"#!/bin/sh\necho top\n".to_vec(),
                mode: 0o755,
            },
            Entry::Hardlink {
                path: "bin/tool-again".into(),
                target: "bin/tool".into(),
            },
        ],
        Compression::None,
        support::OCI_LAYER_TAR,
    );
    vec![base, middle, top]
}

/// What GNU tar gives when the layers are extracted in order over one directory, whiteouts
/// applied as the OCI image spec says: before a layer is extracted, an opaque marker empties
/// its directory and a whiteout removes its name; the markers themselves are not kept.
fn gnu_tar_merge(layers: &[Layer], dest: &Path) {
    for layer in layers {
        for name in tar_names(&layer.tar) {
            let name = name.trim_start_matches("./").trim_end_matches('/');
            let (dir, base) = match name.rsplit_once('/') {
                Some((dir, base)) => (dest.join(dir), base),
                None => (dest.to_path_buf(), name),
            };
            if base == ".wh..wh..opq" {
                for child in fs::read_dir(&dir).into_iter().flatten().flatten() {
                    remove(&child.path());
                }
            } else if let Some(hidden) = base.strip_prefix(".wh.") {
                remove(&dir.join(hidden));
            }
        }
        // A link of a lower layer where this one has a directory: tar would follow it.
        for name in tar_names(&layer.tar) {
            let path = dest.join(name.trim_start_matches("./").trim_end_matches('/'));
            if name.ends_with('/') && fs::symlink_metadata(&path).is_ok_and(|m| !m.is_dir()) {
                remove(&path);
            }
        }
        let status = Command::new("tar")
            .args([
                "-x",
                "-f",
                "-",
                "--no-same-owner",
                "--exclude=.wh.*",
                "--recursive-unlink",
            ])
            .arg("-C")
            .arg(dest)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(&layer.tar)?;
                child.wait()
            })
            .unwrap();
        assert!(status.success(), "GNU tar failed");
    }
}

fn tar_names(tar: &[u8]) -> Vec<String> {
    let mut child = Command::new("tar")
        .args(["-t", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(tar).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn remove(path: &Path) {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path).unwrap(),
        Ok(_) => fs::remove_file(path).unwrap(),
        Err(_) => {}
    }
}

#[test]
fn the_merged_directory_equals_gnu_tar_with_whiteouts_applied() {
    let registry = Registry::start();
    let layers = layered_image();
    registry.push_image("steps/layered", Some("1.0.0"), &layers, None, false);
    let reference = format!("{}/steps/layered:1.0.0", registry.host());
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path().join("cache"), options()).unwrap();

    let image = cache.fetch(&reference, &merged()).unwrap();

    let merged_path = image.merged_path.clone().expect("a merged directory");
    assert!(merged_path.starts_with(dir.path().join("cache")));
    let expected = dir.path().join("gnu");
    fs::create_dir(&expected).unwrap();
    gnu_tar_merge(&layers, &expected);
    support::assert_same_tree(&expected, &merged_path);
    assert!(!merged_path.join("etc/removed").exists());
    assert!(!merged_path.join("opt/old-a").exists());
    assert_eq!(
        fs::read_to_string(merged_path.join("etc/os-release")).unwrap(),
        "middle\n"
    );

    // Made of hard links to the layers' read-only files.
    use std::os::unix::fs::MetadataExt;
    let tool = fs::metadata(merged_path.join("bin/tool")).unwrap();
    let top_tool = fs::metadata(image.layers[2].path.join("bin/tool")).unwrap();
    assert_eq!((tool.dev(), tool.ino()), (top_tool.dev(), top_tool.ino()));
    assert_eq!(tool.mode() & 0o777, 0o555);

    // Cached by manifest digest: the next fetch gives the same directory, unchanged.
    let again = cache.fetch(&reference, &merged()).unwrap();
    assert_eq!(again.merged_path, Some(merged_path));
    assert_eq!(again.cache, ImageOutcome::Hit);
}

#[test]
fn the_cli_prints_the_merged_path() {
    let registry = Registry::start();
    let layers = layered_image();
    registry.push_image("steps/layered", Some("1.0.0"), &layers, None, false);
    let reference = format!("{}/steps/layered:1.0.0", registry.host());
    let dir = tempfile::tempdir().unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_oci-cache"))
        .args(["fetch", "--json", "--merged", "--cache-dir"])
        .arg(dir.path())
        .arg(&reference)
        .env("HOME", dir.path())
        .output()
        .unwrap();

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let merged = json["merged_path"].as_str().expect("merged_path");
    assert!(Path::new(merged).is_absolute());
    assert!(Path::new(merged).join("opt/new").is_file());
}

#[test]
fn offline_serves_cached_images_with_no_request_and_fails_cleanly_otherwise() {
    let registry = Registry::start();
    let layer = Layer::random(64 << 10, 21, Compression::Gzip, support::OCI_LAYER_GZIP);
    let pushed = registry.push_image(
        "steps/app",
        Some("1.0.0"),
        std::slice::from_ref(&layer),
        None,
        false,
    );
    registry.tag("steps/app", &pushed, "latest");
    let host = registry.host();
    let dir = tempfile::tempdir().unwrap();
    let online = Cache::open(dir.path(), options()).unwrap();
    for tag in ["1.0.0", "latest"] {
        online
            .fetch(&format!("{host}/steps/app:{tag}"), &FetchOptions::default())
            .unwrap();
    }
    let before = registry.requests().len();
    let cache = Cache::open(dir.path(), offline()).unwrap();

    for reference in [
        format!("{host}/steps/app:1.0.0"),
        format!("{host}/steps/app:latest"),
        format!("{host}/steps/app@{}", pushed.digest),
        format!("{host}/steps/app:1.0.0@{}", pushed.digest),
    ] {
        let image = cache.fetch(&reference, &FetchOptions::default()).unwrap();
        assert_eq!(image.manifest_digest, pushed.digest, "{reference}");
        assert!(image.layers[0].path.is_dir());
    }
    for reference in [
        format!("{host}/steps/app:2.0.0"),
        format!("{host}/steps/other:latest"),
    ] {
        let error = cache
            .fetch(&reference, &FetchOptions::default())
            .unwrap_err();
        assert_eq!(error.code(), ErrorCode::NotCached, "{error}");
        assert!(error.to_string().contains("offline"), "{error}");
    }
    assert_eq!(registry.requests().len(), before, "no request at all");
}

/// Bytes of the files under `dir`.
fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let meta = fs::symlink_metadata(entry.path()).unwrap();
        total += match meta.is_dir() {
            true => dir_size(&entry.path()),
            false if meta.is_file() => meta.len(),
            false => 0,
        };
    }
    total
}

/// Say that the layer `digest` was last used `days` ago.
fn set_last_use(cache_dir: &Path, digest: &str, days: u64) {
    let hex = digest.trim_start_matches("sha256:");
    let when = std::time::SystemTime::now() - std::time::Duration::from_secs(days * 86400);
    let file = fs::File::options()
        .write(true)
        .open(cache_dir.join("uses/sha256").join(hex))
        .unwrap();
    file.set_modified(when).unwrap();
}

/// Three one-layer images, fetched, last used 3, 2 and 1 days ago; their layers' digests.
fn three_aged_images(registry: &Registry, cache_dir: &Path) -> Vec<(String, String)> {
    let cache = Cache::open(cache_dir, options()).unwrap();
    let mut images = Vec::new();
    for (n, days) in [(1u64, 3u64), (2, 2), (3, 1)] {
        let layer = Layer::random(
            200 << 10,
            40 + n,
            Compression::Gzip,
            support::OCI_LAYER_GZIP,
        );
        let repository = format!("steps/aged-{n}");
        registry.push_image(
            &repository,
            Some("1.0.0"),
            std::slice::from_ref(&layer),
            None,
            false,
        );
        let reference = format!("{}/{repository}:1.0.0", registry.host());
        let image = cache.fetch(&reference, &FetchOptions::default()).unwrap();
        set_last_use(cache_dir, &image.layers[0].digest, days);
        images.push((reference, image.layers[0].digest.clone()));
    }
    images
}

fn layer_dir(cache_dir: &Path, digest: &str) -> std::path::PathBuf {
    cache_dir
        .join("layers/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

#[test]
fn prune_to_a_size_removes_the_least_recently_used_layers_first() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let images = three_aged_images(&registry, dir.path());
    let sizes: Vec<u64> = images
        .iter()
        .map(|(_, d)| dir_size(&layer_dir(dir.path(), d)))
        .collect();
    let budget = sizes[1] + sizes[2] + 1;
    let cache = Cache::open(dir.path(), options()).unwrap();
    assert_eq!(cache.cache_status().unwrap().images, 3);

    let report = cache
        .prune(&oci_cache::PruneOptions {
            max_size: Some(budget),
            ..Default::default()
        })
        .unwrap();

    assert_eq!(report.removed_layers, 1, "{report:?}");
    assert!(report.size_after <= budget, "{report:?}");
    assert!(
        !layer_dir(dir.path(), &images[0].1).exists(),
        "the oldest went"
    );
    assert!(layer_dir(dir.path(), &images[1].1).is_dir());
    assert!(layer_dir(dir.path(), &images[2].1).is_dir());
    assert_eq!(report.removed_images, 1);
    assert_eq!(cache.cache_status().unwrap().images, 2);
    let again = cache.fetch(&images[0].0, &FetchOptions::default()).unwrap();
    assert_eq!(again.layers[0].cache, oci_cache::LayerOutcome::Miss);
}

#[test]
fn prune_never_removes_a_layer_that_a_result_holds() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let images = three_aged_images(&registry, dir.path());
    let cache = Cache::open(dir.path(), options()).unwrap();
    let held = cache.fetch(&images[0].0, &FetchOptions::default()).unwrap();

    let all = oci_cache::PruneOptions {
        all: true,
        ..Default::default()
    };
    let report = cache.prune(&all).unwrap();

    assert_eq!((report.removed_layers, report.in_use), (2, 1), "{report:?}");
    assert!(held.layers[0].path.is_dir());
    drop(held);
    let report = cache.prune(&all).unwrap();
    assert_eq!((report.removed_layers, report.in_use), (1, 0), "{report:?}");
    assert_eq!(cache.cache_status().unwrap().layers, 0);
}

#[test]
fn the_cli_prunes_to_a_size_and_reports_in_json() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let images = three_aged_images(&registry, dir.path());

    let output = Command::new(env!("CARGO_BIN_EXE_oci-cache"))
        .args(["prune", "--json", "--max-size", "1B", "--cache-dir"])
        .arg(dir.path())
        .output()
        .unwrap();

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["removed_layers"], 3, "{report}");
    assert_eq!(report["size_after"], 0, "{report}");
    assert!(images
        .iter()
        .all(|(_, d)| !layer_dir(dir.path(), d).exists()));

    let refused = Command::new(env!("CARGO_BIN_EXE_oci-cache"))
        .args(["prune", "--max-size", "12 parsecs", "--cache-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!refused.status.success());
}

#[test]
fn prune_during_a_fetch_keeps_what_the_fetch_serves_and_the_fetch_completes() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let aged = three_aged_images(&registry, dir.path());

    // An image whose first layer is cached and whose second downloads slowly: the registry of
    // the tests' own stalls it half-way for a second, then the client resumes it.
    let cached = Layer::random(128 << 10, 51, Compression::Gzip, support::OCI_LAYER_GZIP);
    let slow = Layer::random(2 << 20, 52, Compression::None, support::OCI_LAYER_TAR);
    let warm =
        support::HostileRegistry::serve_image("1.0.0", std::slice::from_ref(&cached), |_, _| {
            support::Reply::Normal
        });
    let cache = Cache::open(dir.path(), options()).unwrap();
    drop(cache.fetch(
        &format!("{}/steps/warm:1.0.0", warm.host()),
        &FetchOptions::default(),
    ));
    let (slow_digest, half) = (slow.digest.clone(), slow.bytes.len() / 2);
    let hostile = support::HostileRegistry::serve_image(
        "1.0.0",
        &[cached.clone(), slow.clone()],
        move |request, n| match request.path.ends_with(&slow_digest) && n == 0 {
            true => support::Reply::StallAfter(half, std::time::Duration::from_secs(1)),
            false => support::Reply::Normal,
        },
    );
    let reference = format!("{}/steps/both:1.0.0", hostile.host());

    let fetcher = {
        let cache = cache.clone();
        std::thread::spawn(move || cache.fetch(&reference, &FetchOptions::default()))
    };
    let started = std::time::Instant::now();
    while !hostile
        .requests()
        .iter()
        .any(|r| r.path.ends_with(&slow.digest))
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "no download"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let report = cache
        .prune(&oci_cache::PruneOptions {
            max_size: Some(0),
            ..Default::default()
        })
        .unwrap();
    let image = fetcher.join().unwrap().unwrap();

    assert_eq!(report.removed_layers, aged.len(), "{report:?}");
    assert_eq!(
        report.in_use, 1,
        "the cached layer the fetch serves: {report:?}"
    );
    for (fetched, layer) in image.layers.iter().zip([&cached, &slow]) {
        let expected = tempfile::tempdir().unwrap();
        support::gnu_tar_extract(&layer.tar, expected.path());
        support::assert_same_tree(expected.path(), &fetched.path);
    }
}

#[test]
fn status_counts_hits_misses_and_bytes_for_the_handle_and_in_total() {
    let registry = Registry::start();
    let layer = Layer::random(64 << 10, 61, Compression::Gzip, support::OCI_LAYER_GZIP);
    registry.push_image(
        "steps/counted",
        Some("1.0.0"),
        std::slice::from_ref(&layer),
        None,
        false,
    );
    let reference = format!("{}/steps/counted:1.0.0", registry.host());
    let dir = tempfile::tempdir().unwrap();
    let size = layer.bytes.len() as u64;

    {
        let first = Cache::open(dir.path(), options()).unwrap();
        first.fetch(&reference, &FetchOptions::default()).unwrap();
    }
    let second = Cache::open(dir.path(), options()).unwrap();
    second.fetch(&reference, &FetchOptions::default()).unwrap();
    second.fetch(&reference, &FetchOptions::default()).unwrap();
    let status = second.cache_status().unwrap();

    let session = oci_cache::Counters {
        hits: 2,
        misses: 0,
        bytes_downloaded: 0,
        bytes_saved: 2 * size,
    };
    assert_eq!(status.session, session);
    let total = oci_cache::Counters {
        hits: 2,
        misses: 1,
        bytes_downloaded: size,
        bytes_saved: 2 * size,
    };
    assert_eq!(status.total, total);
    assert_eq!((status.layers, status.images), (1, 1));
}

#[test]
fn progress_reports_each_layer_up_to_its_size_and_cached_layers_at_once() {
    let registry = Registry::start();
    let layers = vec![
        Layer::random(3 << 20, 71, Compression::None, support::OCI_LAYER_TAR),
        Layer::random(64 << 10, 72, Compression::Gzip, support::OCI_LAYER_GZIP),
    ];
    registry.push_image("steps/progress", Some("1.0.0"), &layers, None, false);
    let reference = format!("{}/steps/progress:1.0.0", registry.host());
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path(), options()).unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = {
        let seen = seen.clone();
        oci_cache::ProgressSink(std::sync::Arc::new(move |p: &oci_cache::Progress<'_>| {
            seen.lock()
                .unwrap()
                .push((p.digest.to_string(), p.done, p.total))
        }))
    };
    let with_progress = FetchOptions {
        progress: Some(sink),
        ..FetchOptions::default()
    };

    cache.fetch(&reference, &with_progress).unwrap();
    let cold = std::mem::take(&mut *seen.lock().unwrap());
    cache.fetch(&reference, &with_progress).unwrap();
    let warm = seen.lock().unwrap().clone();

    for layer in &layers {
        let size = layer.bytes.len() as u64;
        let reports: Vec<u64> = cold
            .iter()
            .filter(|(d, _, total)| *d == layer.digest && *total == size)
            .map(|(_, done, _)| *done)
            .collect();
        assert_eq!(reports.first(), Some(&0), "{reports:?}");
        assert_eq!(reports.last(), Some(&size), "{reports:?}");
        assert!(reports.windows(2).all(|w| w[0] < w[1]), "{reports:?}");
        assert_eq!(warm.iter().filter(|(d, ..)| *d == layer.digest).count(), 1);
    }
    assert!(cold.len() >= 5, "a 3 MiB layer reports each MiB: {cold:?}");
    assert!(
        warm.iter().all(|(_, done, total)| done == total),
        "{warm:?}"
    );
}

#[test]
fn the_cli_shows_progress_on_a_terminal_and_nothing_otherwise() {
    let registry = Registry::start();
    let layer = Layer::random(2 << 20, 81, Compression::None, support::OCI_LAYER_TAR);
    registry.push_image(
        "steps/bar",
        Some("1.0.0"),
        std::slice::from_ref(&layer),
        None,
        false,
    );
    let reference = format!("{}/steps/bar:1.0.0", registry.host());
    let (piped, terminal) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cli = env!("CARGO_BIN_EXE_oci-cache");

    let output = Command::new(cli)
        .args(["fetch", "--cache-dir"])
        .arg(piped.path())
        .arg(&reference)
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(!String::from_utf8_lossy(&output.stderr).contains("fetching:"));

    // `script` runs the CLI with a pseudo-terminal as its stderr.
    let command = format!(
        "{cli} fetch --cache-dir {} {reference}",
        terminal.path().display()
    );
    let output = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(
        shown.contains("fetching:") && shown.contains("1/1 layers"),
        "{shown}"
    );
}

#[test]
fn resolve_pins_references_with_one_head_each_and_pinned_references_keep_their_tag() {
    let registry = Registry::start();
    let layer = Layer::random(32 << 10, 91, Compression::Gzip, support::OCI_LAYER_GZIP);
    let pushed = registry.push_image(
        "steps/pinned",
        Some("1.0.0"),
        std::slice::from_ref(&layer),
        None,
        false,
    );
    registry.tag("steps/pinned", &pushed, "latest");
    let host = registry.host();
    let dir = tempfile::tempdir().unwrap();
    let before = registry.requests().len();

    let output = Command::new(env!("CARGO_BIN_EXE_oci-cache"))
        .args(["resolve", "--cache-dir"])
        .arg(dir.path())
        .arg(format!("{host}/steps/pinned:1.0.0"))
        .arg(format!("{host}/steps/pinned:latest"))
        .output()
        .unwrap();

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(
        lines,
        [
            format!("{host}/steps/pinned:1.0.0@{}", pushed.digest),
            format!("{host}/steps/pinned:latest@{}", pushed.digest),
        ]
    );
    let sent = &registry.requests()[before..];
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent.iter().all(|r| r.method == "HEAD"), "{sent:?}");

    let cache = Cache::open(dir.path(), options()).unwrap();
    let image = cache.fetch(&lines[1], &FetchOptions::default()).unwrap();
    assert_eq!(image.reference, lines[1], "the tag is kept in the result");
    assert_eq!(image.manifest_digest, pushed.digest);
}
