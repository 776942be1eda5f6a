//! Process and file-system faults: fetches killed at any moment, a full disk, a read-only cache
//! directory. The cache stays consistent and says what failed.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use oci_cache::{Cache, CacheOptions, ErrorCode, FetchOptions};
use support::{Compression, Entry, Layer, Registry};

fn cli_fetch(cache: &Path, reference: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_oci-cache"))
        .args(["fetch", "--json", "--cache-dir"])
        .arg(cache)
        .arg(reference)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("oci-cache starts")
}

/// Every file under `root` with its size, skipping the (empty) lock files and the saved
/// counters (layers that a killed fetch completed count as hits for the next one).
fn inventory(root: &Path) -> BTreeMap<PathBuf, u64> {
    let mut files = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            let relative = entry.path().strip_prefix(root).unwrap().to_path_buf();
            if kind.is_dir() {
                pending.push(entry.path());
            } else if !relative.starts_with("locks") && relative != Path::new("stats.json") {
                files.insert(relative, entry.metadata().unwrap().len());
            }
        }
    }
    files
}

#[test]
fn fetches_killed_at_random_moments_leave_no_more_than_a_clean_fetch() {
    let registry = Registry::start();
    let third = 40 << 20;
    let layers = vec![
        Layer::random(third, 21, Compression::None, support::OCI_LAYER_TAR),
        Layer::random(third, 22, Compression::Gzip, support::OCI_LAYER_GZIP),
        Layer::random(third, 23, Compression::Zstd, support::OCI_LAYER_ZSTD),
    ];
    registry.push_image("faults/killed", Some("1.0.0"), &layers, None, false);
    let reference = format!("{}/faults/killed:1.0.0", registry.host());
    let (killed, clean) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());

    // Deterministic "random" moments, from the start to well into the downloads.
    let mut debris = 0;
    for delay_ms in [5u64, 120, 480, 900, 1700] {
        let mut child = cli_fetch(killed.path(), &reference);
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        debris += std::fs::read_dir(killed.path().join("staging")).map_or(0, |d| d.count());
    }
    assert!(debris > 0, "the kills interrupted downloads in progress");
    let after_kills = cli_fetch(killed.path(), &reference).wait().unwrap();
    let reference_run = cli_fetch(clean.path(), &reference).wait().unwrap();

    assert!(after_kills.success() && reference_run.success());
    for layer in &layers {
        let expected = tempfile::tempdir().unwrap();
        support::gnu_tar_extract(&layer.tar, expected.path());
        let hex = layer.digest.trim_start_matches("sha256:");
        support::assert_same_tree(
            expected.path(),
            &killed.path().join("layers/sha256").join(hex),
        );
    }
    assert_eq!(inventory(killed.path()), inventory(clean.path()));
}

/// Mount a tmpfs at `dir` with `options`; None when this process may not mount (not root).
fn mount_tmpfs(dir: &Path, options: &str) -> Option<Mounted> {
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", options, "tmpfs"])
        .arg(dir)
        .stderr(Stdio::null())
        .status()
        .ok()?;
    status.success().then(|| Mounted(dir.to_path_buf()))
}

struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn require_mount(mounted: Option<Mounted>) -> Mounted {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    match mounted {
        Some(mounted) => mounted,
        None if !root => panic!("this test mounts a tmpfs: run it as root (CI does)"),
        None => panic!("mounting a tmpfs failed although running as root"),
    }
}

#[test]
fn full_disk_gives_an_io_error_and_leaves_nothing_partial() {
    let registry = Registry::start();
    let small = Layer::build(
        &[Entry::file("step.yml", "x")],
        Compression::Zstd,
        support::STEP_LAYER_ZSTD,
    );
    let large = Layer::random(24 << 20, 31, Compression::Zstd, support::OCI_LAYER_ZSTD);
    registry.push_image(
        "faults/full",
        Some("1.0.0"),
        &[small.clone(), large.clone()],
        None,
        false,
    );
    let dir = tempfile::tempdir().unwrap();
    let _mounted = require_mount(mount_tmpfs(dir.path(), "size=8m"));
    let cache_dir = dir.path().join("cache");

    let cache = Cache::open(&cache_dir, CacheOptions::default()).unwrap();
    let reference = format!("{}/faults/full:1.0.0", registry.host());
    let error = cache
        .fetch(&reference, &FetchOptions::default())
        .unwrap_err();

    assert_eq!(error.code(), ErrorCode::Io, "{error}");
    assert!(
        error.to_string().contains("No space left on device"),
        "{error}"
    );
    assert!(
        error.to_string().contains("random/"),
        "the message names the entry: {error}"
    );
    let hex = large.digest.trim_start_matches("sha256:");
    assert!(!cache_dir.join("layers/sha256").join(hex).exists());
    let staging: Vec<_> = std::fs::read_dir(cache_dir.join("staging"))
        .unwrap()
        .collect();
    assert!(staging.is_empty(), "staging holds {staging:?}");
}

#[test]
fn read_only_cache_directory_gives_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let _mounted = require_mount(mount_tmpfs(dir.path(), "ro,size=1m"));

    let error = Cache::open(dir.path().join("cache"), CacheOptions::default())
        .err()
        .expect("open fails");

    assert_eq!(error.code(), ErrorCode::Io, "{error}");
    let message = error.to_string();
    assert!(message.contains("creating cache directory"), "{message}");
    assert!(message.contains("Read-only file system"), "{message}");
}
