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
