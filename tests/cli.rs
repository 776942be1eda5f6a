//! The `oci-cache` command line, run as a process against a real registry.

mod support;

use std::process::{Command, Output};

use support::{Compression, Entry, Layer, Registry};

fn oci_cache(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oci-cache"))
        .args(args)
        .output()
        .expect("oci-cache runs")
}

fn push_sample(registry: &Registry, repository: &str, tag: &str) -> Vec<Layer> {
    let layers = vec![Layer::build(
        &[Entry::file("step.yml", "run: true\n"), Entry::dir("bin/")],
        Compression::Zstd,
        support::STEP_LAYER_ZSTD,
    )];
    registry.push_image(repository, Some(tag), &layers, None, false);
    layers
}

#[test]
fn fetch_json_prints_one_object_with_absolute_paths() {
    let registry = Registry::start();
    let layers = push_sample(&registry, "cli/json", "1.0.0");
    let dir = tempfile::tempdir().unwrap();
    let reference = format!("{}/cli/json:1.0.0", registry.host());
    let cache_dir = dir.path().to_str().unwrap();

    let cold = oci_cache(&["fetch", "--cache-dir", cache_dir, "--json", &reference]);
    let warm = oci_cache(&["fetch", "--cache-dir", cache_dir, "--json", &reference]);

    assert!(
        cold.status.success(),
        "{}",
        String::from_utf8_lossy(&cold.stderr)
    );
    let cold: serde_json::Value =
        serde_json::from_slice(&cold.stdout).expect("stdout is one JSON object");
    let warm: serde_json::Value =
        serde_json::from_slice(&warm.stdout).expect("stdout is one JSON object");
    assert_eq!(cold["image_cache"], "miss");
    assert_eq!(warm["image_cache"], "hit");
    assert_eq!(cold["reference"], reference);
    assert!(cold["manifest_digest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    let layer = &warm["layers"][0];
    assert_eq!(layer["digest"], layers[0].digest);
    assert_eq!(layer["media_type"], support::STEP_LAYER_ZSTD);
    assert_eq!(layer["size"], layers[0].size());
    assert_eq!(layer["cache"], "hit");
    let path = std::path::Path::new(layer["path"].as_str().unwrap());
    assert!(path.is_absolute() && path.join("step.yml").is_file());
}

#[test]
fn verbose_fetch_logs_decisions_to_stderr_only() {
    let registry = Registry::start();
    push_sample(&registry, "cli/verbose", "latest");
    let dir = tempfile::tempdir().unwrap();
    let reference = format!("{}/cli/verbose:latest", registry.host());

    let output = oci_cache(&[
        "fetch",
        "-v",
        "--json",
        "--cache-dir",
        dir.path().to_str().unwrap(),
        &reference,
    ]);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("image cache bypassed: tag is mutable"),
        "{stderr}"
    );
    assert!(stderr.contains("layer cache"), "{stderr}");
    serde_json::from_slice::<serde_json::Value>(&output.stdout)
        .expect("stdout is only the JSON object");
}

#[test]
fn failure_exits_non_zero_with_a_short_error() {
    let dir = tempfile::tempdir().unwrap();

    let output = oci_cache(&[
        "fetch",
        "--cache-dir",
        dir.path().to_str().unwrap(),
        "Bad/Reference",
    ]);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.starts_with("oci-cache: error: invalid reference"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn status_json_reports_cached_and_size_bytes() {
    let registry = Registry::start();
    push_sample(&registry, "cli/status", "2.0.0");
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().to_str().unwrap();
    let reference = format!("{}/cli/status:2.0.0", registry.host());
    let parse =
        |output: Output| serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap();

    let before = parse(oci_cache(&[
        "status",
        "--cache-dir",
        cache_dir,
        "--json",
        &reference,
    ]));
    assert!(oci_cache(&["fetch", "--cache-dir", cache_dir, &reference])
        .status
        .success());
    let after = parse(oci_cache(&[
        "status",
        "--cache-dir",
        cache_dir,
        "--json",
        &reference,
    ]));
    let whole = parse(oci_cache(&["status", "--cache-dir", cache_dir, "--json"]));

    assert_eq!(before["cached"], false);
    assert_eq!(after["cached"], true);
    assert!(whole["size_bytes"].as_u64().unwrap() > 0);
    assert_eq!(whole["layers"], 1);
}

#[test]
fn default_cache_dir_follows_xdg_cache_home() {
    let registry = Registry::start();
    push_sample(&registry, "cli/xdg", "1.0.0");
    let xdg = tempfile::tempdir().unwrap();
    let reference = format!("{}/cli/xdg:1.0.0", registry.host());

    let output = Command::new(env!("CARGO_BIN_EXE_oci-cache"))
        .args(["fetch", "--json", &reference])
        .env("XDG_CACHE_HOME", xdg.path())
        .output()
        .unwrap();

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        xdg.path()
            .join("oci-cache/layers/sha256")
            .read_dir()
            .unwrap()
            .count()
            == 1
    );
}
