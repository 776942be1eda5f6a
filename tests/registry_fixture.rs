//! The shared fixtures themselves: a real registry that accepts our pushes and logs requests,
//! layers that GNU tar reads, and the tree comparison.

mod support;

use std::fs;
use std::io::Read;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::process::Command;

use support::http::{self, Response};
use support::*;

const ACCEPT_ALL_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";

/// A step image's content: a step definition, an executable script, and links.
fn step_entries() -> Vec<Entry> {
    vec![
        Entry::dir("bin/"),
        Entry::file("step.yml", "spec:\n---\nrun: bin/run.sh\n"),
        Entry::File {
            path: "bin/run.sh".into(),
            contents: b"#!/bin/sh\necho hello\n".to_vec(),
            mode: 0o755,
        },
        Entry::Symlink {
            path: "run".into(),
            target: "bin/run.sh".into(),
        },
        Entry::Hardlink {
            path: "bin/run-again.sh".into(),
            target: "bin/run.sh".into(),
        },
    ]
}

fn two_step_layers() -> Vec<Layer> {
    let docs = [Entry::file("README.md", "# echo step\n")];
    vec![
        Layer::build(&step_entries(), Compression::Zstd, STEP_LAYER_ZSTD),
        Layer::build(&docs, Compression::Zstd, STEP_LAYER_ZSTD),
    ]
}

fn get_manifest(registry: &Registry, repository: &str, reference: &str) -> Response {
    let target = format!("/v2/{repository}/manifests/{reference}");
    let response = http::get(
        &registry.host(),
        &target,
        &[("Accept", ACCEPT_ALL_MANIFESTS)],
    )
    .unwrap_or_else(|err| panic!("GET {target}: {err}"));
    assert_eq!(response.status, 200, "GET {target}");
    response
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("creating a temporary directory")
}

#[test]
fn started_registry_has_answered_the_readiness_probe() {
    let registry = Registry::start();

    let requests = registry.requests();

    let probe = Request {
        method: "GET".into(),
        path: "/v2/".into(),
        status: 200,
    };
    assert!(requests.contains(&probe), "requests: {requests:?}");
}

#[test]
fn pushes_are_logged_under_their_repository_only() {
    let registry = Registry::start();
    let layers = two_step_layers();

    let image = registry.push_image("steps/echo", Some("1.0.0"), &layers, None, false);
    let platform = ("generic", "amd64", None);
    registry.push_index("steps/echo", "1", &[(image, platform)], false);
    registry.push_image("steps/other", Some("1.0.0"), &layers[..1], None, false);

    let requests = registry.requests_for("steps/echo");
    let upload_sessions = requests
        .iter()
        .filter(|r| r.method == "POST" && r.is_upload())
        .count();
    let manifest_puts: Vec<&str> = requests
        .iter()
        .filter(|r| r.method == "PUT" && r.is_manifest())
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(upload_sessions, 3, "two layers and a config: {requests:?}");
    assert_eq!(
        manifest_puts,
        [
            "/v2/steps/echo/manifests/1.0.0",
            "/v2/steps/echo/manifests/1"
        ]
    );
    assert!(requests.iter().all(|r| (200..300).contains(&r.status)));
    assert!(requests.iter().all(|r| !r.is_blob()), "no blob was fetched");
}

#[test]
fn pushed_manifest_and_blob_are_served_back_byte_for_byte() {
    let registry = Registry::start();
    let layers = two_step_layers();
    let image = registry.push_image("steps/echo", Some("1.0.0"), &layers, None, false);

    let manifest = get_manifest(&registry, "steps/echo", "1.0.0");
    let blob_target = format!("/v2/steps/echo/blobs/{}", layers[0].digest);
    let blob = http::get(&registry.host(), &blob_target, &[]).expect("GET blob");

    assert_eq!(manifest.body, image.manifest);
    assert_eq!(
        manifest.header("Docker-Content-Digest"),
        Some(&*image.digest)
    );
    assert_eq!(blob.body, layers[0].bytes);
    let stored = fs::read(registry.blob_data_path(&layers[0].digest)).expect("stored blob");
    assert_eq!(stored, layers[0].bytes);

    let fetches: Vec<Request> = registry
        .requests_for("steps/echo")
        .into_iter()
        .filter(|r| r.method == "GET")
        .collect();
    assert_eq!(fetches.len(), 2, "{fetches:?}");
    assert!(
        fetches[0].is_manifest() && fetches[1].is_blob(),
        "{fetches:?}"
    );
}

#[test]
fn docker_manifest_list_keeps_platform_variants() {
    let registry = Registry::start();
    let layers = [Layer::build(
        &step_entries(),
        Compression::Gzip,
        DOCKER_LAYER_GZIP,
    )];
    let amd64 = ("linux", "amd64", None);
    let arm64 = ("linux", "arm64", Some("v8"));

    let for_amd64 = registry.push_image("tools/x", None, &layers, Some(amd64), true);
    let for_arm64 = registry.push_image("tools/x", None, &layers, Some(arm64), true);
    let entries = [(for_amd64, amd64), (for_arm64.clone(), arm64)];
    let list_digest = registry.push_index("tools/x", "latest", &entries, true);

    let list = get_manifest(&registry, "tools/x", "latest");
    assert_eq!(list.header("Docker-Content-Digest"), Some(&*list_digest));
    assert_eq!(list.header("Content-Type"), Some(DOCKER_MANIFEST_LIST));
    let list: serde_json::Value = serde_json::from_slice(&list.body).expect("list is JSON");
    assert_eq!(list["manifests"][1]["digest"], *for_arm64.digest);
    assert_eq!(list["manifests"][1]["platform"]["variant"], "v8");
}

#[test]
fn tag_repoints_a_tag_to_another_manifest() {
    let registry = Registry::start();
    let layers = two_step_layers();
    let first = registry.push_image("steps/echo", Some("1.0.0"), &layers[..1], None, false);
    let second = registry.push_image("steps/echo", Some("1.0.1"), &layers, None, false);

    registry.tag("steps/echo", &first, "1");
    registry.tag("steps/echo", &second, "1");

    let moved = get_manifest(&registry, "steps/echo", "1");
    assert_eq!(moved.header("Docker-Content-Digest"), Some(&*second.digest));
}

#[test]
fn skopeo_copies_a_pushed_index_with_all_its_images() {
    let registry = Registry::start();
    let layers = two_step_layers();
    let image = registry.push_image("steps/echo", None, &layers, None, false);
    let index = registry.push_index(
        "steps/echo",
        "1.0.0",
        &[(image, ("generic", "amd64", None))],
        false,
    );
    let layout = tempdir();

    let source = format!("docker://{}/steps/echo:1.0.0", registry.host());
    let destination = format!("oci:{}:copy", layout.path().display());
    let copy = Command::new("skopeo")
        .args([
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
        ])
        .args([&source, &destination])
        .output()
        .expect("running skopeo");

    let stderr = String::from_utf8_lossy(&copy.stderr);
    assert!(copy.status.success(), "skopeo copy failed: {stderr}");
    let layout_index = fs::read_to_string(layout.path().join("index.json")).expect("index.json");
    assert!(layout_index.contains(&index), "{layout_index}");
}

#[test]
fn compressed_layers_decompress_to_their_tar_and_match_their_digest() {
    let entries = step_entries();

    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let layer = Layer::build(&entries, compression, OCI_LAYER_TAR);

        let tar = match compression {
            Compression::None => layer.bytes.clone(),
            Compression::Gzip => gunzip(&layer.bytes),
            Compression::Zstd => zstd::decode_all(&layer.bytes[..]).expect("zstd layer"),
        };
        assert_eq!(tar, layer.tar, "{compression:?}");
        assert_eq!(layer.digest, sha256_digest(&layer.bytes), "{compression:?}");
    }
}

#[test]
fn layer_extracted_twice_by_gnu_tar_gives_the_same_tree() {
    let layer = Layer::build(&step_entries(), Compression::Zstd, STEP_LAYER_ZSTD);
    let (first, second) = (tempdir(), tempdir());

    gnu_tar_extract(&layer.tar, first.path());
    gnu_tar_extract(&layer.tar, second.path());

    assert_same_tree(first.path(), second.path());
    let script = first.path().join("bin/run.sh");
    assert_eq!(
        fs::read_link(first.path().join("run")).unwrap(),
        Path::new("bin/run.sh")
    );
    assert_eq!(
        fs::read(first.path().join("bin/run-again.sh")).unwrap(),
        fs::read(&script).unwrap()
    );
    assert_eq!(exec_bits(&script), 0o111);
}

#[test]
fn assert_same_tree_names_the_first_difference() {
    let (first, second) = (tempdir(), tempdir());
    for dir in [first.path(), second.path()] {
        fs::write(dir.join("same"), "same").unwrap();
    }
    fs::write(first.path().join("changed"), "one").unwrap();
    fs::write(second.path().join("changed"), "two").unwrap();

    let failure = panic::catch_unwind(AssertUnwindSafe(|| {
        assert_same_tree(first.path(), second.path())
    }))
    .expect_err("the trees differ");

    let message = failure
        .downcast_ref::<String>()
        .expect("a formatted panic message");
    assert!(
        message.contains("changed: contents differ at byte 0"),
        "{message}"
    );
}

#[test]
fn names_are_written_verbatim_even_when_long() {
    let long_path = format!("./deep/{}", "d/".repeat(60)) + "file";
    let long_target = "../".repeat(40) + "target";
    let entries = [
        Entry::file("./dot-prefixed", "x"),
        Entry::file(&long_path, "deep"),
        Entry::Symlink {
            path: "escape".into(),
            target: long_target.clone(),
        },
    ];

    let layer = Layer::build(&entries, Compression::None, OCI_LAYER_TAR);

    let mut archive = tar::Archive::new(&layer.tar[..]);
    let names: Vec<(Vec<u8>, Option<Vec<u8>>)> = archive
        .entries()
        .expect("reading the layer tar")
        .map(|entry| {
            let entry = entry.expect("a tar entry");
            let link = entry.link_name_bytes().map(|link| link.into_owned());
            (entry.path_bytes().into_owned(), link)
        })
        .collect();
    assert_eq!(names[0].0, b"./dot-prefixed");
    assert_eq!(names[1].0, long_path.as_bytes());
    assert_eq!(names[2].1.as_deref(), Some(long_target.as_bytes()));
}

#[test]
fn random_layer_depends_only_on_its_seed() {
    let size = 3 * 1024 * 1024 + 123;

    let layer = Layer::random(size, 7, Compression::Zstd, OCI_LAYER_ZSTD);
    let again = Layer::random(size, 7, Compression::Zstd, OCI_LAYER_ZSTD);
    let other = Layer::random(size, 8, Compression::Zstd, OCI_LAYER_ZSTD);

    assert_eq!(layer.digest, again.digest);
    assert_ne!(layer.digest, other.digest);
    assert!(layer.bytes.len() >= size, "random data should not compress");
    assert!(layer.tar.len() < size + 64 * 1024, "tar overhead is small");
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut tar)
        .expect("gzip layer");
    tar
}

fn exec_bits(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o111
}
