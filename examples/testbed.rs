//! A test bed for the demo and the bindings' tests: a real registry on loopback, and sample
//! step images pushed to it.
//!
//! - `testbed serve [--basic-auth USER:PASSWORD]`: start docker-registry on a free loopback
//!   port, print one JSON line `{"host": "127.0.0.1:PORT", "log": "/path/registry.log"}`, and
//!   keep it running until standard input closes. With `--basic-auth`, a second registry on the
//!   same storage asks for those credentials (htpasswd, plain HTTP), and the line also has
//!   `secured_host` and `secured_log`: push to `host`, fetch from `secured_host`.
//! - `testbed push-sample --registry HOST --repository REPO --tag TAG [--large-mib N]`: push a
//!   sample step image (an index with the host's platform and a `generic` entry; zstd and gzip
//!   layers, plus an uncompressed layer of N MiB of random files when asked), print one JSON
//!   line describing it.
//! - `testbed push-large --registry HOST --repository REPO --tag TAG --mib N --compression C`:
//!   push a benchmark image of three layers of files of many sizes, print one JSON line.
//! - `testbed demo`: the README's demo: a registry, a sample image, and the `oci-cache` CLI
//!   fetching it cold and warm, with the registry's request counts.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::Read;
use std::process::Command;

use clap::{Parser, Subcommand};
use serde_json::json;
use support::{Compression, Entry, Layer, Registry, Remote};

#[derive(Parser)]
#[command(about = "A registry and sample images for the demo and the bindings' tests")]
struct Cli {
    #[command(subcommand)]
    command: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Run a registry until standard input closes.
    Serve {
        /// Also run a registry on the same storage that asks for these Basic credentials.
        #[arg(long, value_name = "USER:PASSWORD", value_parser = parse_user_password)]
        basic_auth: Option<(String, String)>,
    },
    /// Push a sample step image.
    PushSample {
        /// The registry's host:port.
        #[arg(long)]
        registry: String,
        /// The repository to push to.
        #[arg(long)]
        repository: String,
        /// The tag to push (more than one: repeat).
        #[arg(long, required = true)]
        tag: Vec<String>,
        /// Add an uncompressed layer of this many MiB of random files.
        #[arg(long, default_value_t = 0)]
        large_mib: usize,
        /// Vary the content so that two pushes differ.
        #[arg(long, default_value = "hello")]
        message: String,
    },
    /// Push a large image for benchmarks: three layers of files of many sizes, all compressed
    /// with one algorithm.
    PushLarge {
        /// The registry's host:port.
        #[arg(long)]
        registry: String,
        /// The repository to push to.
        #[arg(long)]
        repository: String,
        /// The tag to push.
        #[arg(long)]
        tag: String,
        /// About how many MiB of files, in all.
        #[arg(long)]
        mib: usize,
        /// `gzip`, `zstd` or `none`.
        #[arg(long)]
        compression: String,
    },
    /// Run the demo with the CLI at PATH.
    Demo {
        /// The oci-cache binary.
        #[arg(long, default_value = "target/debug/oci-cache")]
        cli: String,
    },
}

fn main() {
    match Cli::parse().command {
        Action::Serve { basic_auth } => serve(basic_auth),
        Action::PushSample {
            registry,
            repository,
            tag,
            large_mib,
            message,
        } => {
            let remote = Remote { host: registry };
            let sample = push_sample(&remote, &repository, &tag, large_mib, &message);
            println!("{sample}");
        }
        Action::PushLarge {
            registry,
            repository,
            tag,
            mib,
            compression,
        } => {
            let remote = Remote { host: registry };
            println!(
                "{}",
                push_large(&remote, &repository, &tag, mib, &compression)
            );
        }
        Action::Demo { cli } => demo(&cli),
    }
}

/// Run a plain registry, and with `basic_auth` a secured one on its storage, until standard
/// input closes.
fn serve(basic_auth: Option<(String, String)>) {
    let registry = Registry::start();
    let mut started = json!({ "host": registry.host(), "log": registry.log_path() });

    // Dropping the directory deletes the htpasswd file: keep it until the registries stop.
    let htpasswd_dir = tempfile::tempdir().expect("a temporary directory for htpasswd");
    let secured = basic_auth.map(|(user, password)| {
        let users = [(user.as_str(), password.as_str())];
        Registry::start_with(support::Setup {
            storage: Some(registry.storage_root()),
            htpasswd: Some(support::secure::htpasswd(htpasswd_dir.path(), &users)),
            ..Default::default()
        })
    });
    if let Some(secured) = &secured {
        started["secured_host"] = json!(secured.host());
        started["secured_log"] = json!(secured.log_path());
    }
    println!("{started}");

    // Keep serving until the parent closes our standard input (or dies).
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}

/// `USER:PASSWORD`, split at the first colon (a user name has none; a password may).
fn parse_user_password(value: &str) -> Result<(String, String), String> {
    match value.split_once(':') {
        Some((user, password)) if !user.is_empty() => Ok((user.into(), password.into())),
        _ => Err(format!("{value:?} is not USER:PASSWORD")),
    }
}

/// The layers of the sample step image; `large_mib` adds an uncompressed random layer.
fn sample_layers(message: &str, large_mib: usize) -> Vec<Layer> {
    let script = format!("#!/bin/sh\necho '{message}'\n");
    let step_yml = "spec:\n  inputs: {}\n---\nexec:\n  command: [./run.sh]\n";
    let mut layers = vec![
        Layer::build(
            &[
                Entry::dir("bin/"),
                Entry::File {
                    path: "bin/greet".into(),
                    contents: script.clone().into(),
                    mode: 0o755,
                },
                Entry::Symlink {
                    path: "bin/hello".into(),
                    target: "greet".into(),
                },
            ],
            Compression::Gzip,
            support::OCI_LAYER_GZIP,
        ),
        Layer::build(
            &[
                Entry::file("step.yml", step_yml),
                Entry::File {
                    path: "run.sh".into(),
                    contents: script.into(),
                    mode: 0o755,
                },
            ],
            Compression::Zstd,
            support::STEP_LAYER_ZSTD,
        ),
    ];
    if large_mib > 0 {
        layers.push(Layer::random(
            large_mib << 20,
            42,
            Compression::None,
            support::OCI_LAYER_TAR,
        ));
    }
    layers
}

/// Push the sample as an index of the host's platform and `generic`, under each tag.
fn push_sample(
    remote: &Remote,
    repository: &str,
    tags: &[String],
    large_mib: usize,
    message: &str,
) -> serde_json::Value {
    let layers = sample_layers(message, large_mib);
    let host = oci_cache::Platform::host();
    let image = remote.push_image(repository, None, &layers, None, false);
    let generic = remote.push_image(repository, None, &layers[..2], None, false);
    let entries = [
        (
            image.clone(),
            (
                host.os.as_str(),
                host.architecture.as_str(),
                host.variant.as_deref(),
            ),
        ),
        (generic, ("generic", "unknown", None)),
    ];

    let mut index_digest = String::new();
    for tag in tags {
        index_digest = remote.push_index(repository, tag, &entries, false);
    }
    let layers: Vec<_> = layers
        .iter()
        .map(|l| json!({ "digest": l.digest, "size": l.size() }))
        .collect();
    json!({
        "repository": format!("{}/{repository}", remote.host),
        "tags": tags,
        "index_digest": index_digest,
        "manifest_digest": image.digest,
        "layers": layers,
    })
}

/// Push three layers of about `mib / 3` MiB each, as a plain manifest under `tag`.
fn push_large(
    remote: &Remote,
    repository: &str,
    tag: &str,
    mib: usize,
    compression: &str,
) -> serde_json::Value {
    let (compression, media_type) = match compression {
        "gzip" => (Compression::Gzip, support::OCI_LAYER_GZIP),
        "zstd" => (Compression::Zstd, support::OCI_LAYER_ZSTD),
        "none" => (Compression::None, support::OCI_LAYER_TAR),
        other => panic!("unknown compression {other:?}: use gzip, zstd or none"),
    };
    let third = (mib << 20) / 3;
    let layers: Vec<Layer> = (0..3)
        .map(|seed| Layer::mixed(third, seed, compression, media_type))
        .collect();

    // A full image config (rootfs.diff_ids), as umoci needs to unpack it.
    let platform = oci_cache::Platform::host();
    let platform = (
        platform.os.as_str(),
        platform.architecture.as_str(),
        platform.variant.as_deref(),
    );
    let pushed = remote.push_image(repository, Some(tag), &layers, Some(platform), false);
    let layers: Vec<_> = layers
        .iter()
        .map(|l| json!({ "digest": l.digest, "size": l.size(), "tar_size": l.tar.len() }))
        .collect();
    let reference = format!("{}/{repository}:{tag}", remote.host);
    json!({ "reference": reference, "manifest_digest": pushed.digest, "layers": layers })
}

fn demo(cli: &str) {
    let registry = Registry::start();
    let repository = "steps/hello";
    push_sample(
        &registry,
        repository,
        &["1.0.0".into(), "latest".into()],
        0,
        "hello from a cached step",
    );
    let cache = tempfile::tempdir().expect("a temporary cache directory");
    println!(
        "registry on {} (docker-registry), cache in {}\n",
        registry.host(),
        cache.path().display()
    );

    for (what, tag) in [("cold", "1.0.0"), ("warm", "1.0.0"), ("warm", "latest")] {
        let reference = format!("{}/{repository}:{tag}", registry.host());
        let before = registry.requests_for(repository).len();
        println!("=== {what} fetch of {reference}");
        let status = Command::new(cli)
            .args(["fetch", "-v", "--cache-dir"])
            .arg(cache.path())
            .arg(&reference)
            .status()
            .unwrap_or_else(|e| panic!("running {cli}: {e}"));
        assert!(status.success(), "{cli} failed: {status}");

        let requests = &registry.requests_for(repository)[before..];
        let listed: Vec<String> = requests
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        println!(
            "--- the registry served {} request(s): {listed:?}\n",
            requests.len()
        );
    }
}
