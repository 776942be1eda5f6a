//! Pushing blobs, images and indexes to the test registry with the distribution protocol.

use serde_json::{json, Value};

use super::http::{self, Response};
use super::image::*;

/// A platform as (os, architecture, variant), e.g. ("linux", "arm64", Some("v8")).
pub type Platform<'a> = (&'a str, &'a str, Option<&'a str>);

/// A manifest (image manifest or index) stored in the registry.
#[derive(Debug, Clone, PartialEq)]
pub struct Pushed {
    /// "sha256:<hex>" of `manifest`.
    pub digest: String,
    /// The exact bytes pushed.
    pub manifest: Vec<u8>,
    /// The manifest's media type, also sent as its Content-Type.
    pub media_type: String,
    /// `manifest.len()`.
    pub size: u64,
}

/// A registry reached over plain HTTP at `host`, for pushing: a [`super::Registry`] this
/// process started, or one another process runs (the demo and the bindings' tests).
#[derive(Debug, Clone)]
pub struct Remote {
    /// `host:port`.
    pub host: String,
}

impl Remote {
    /// The registry's `host:port`.
    pub fn host(&self) -> String {
        self.host.clone()
    }

    /// Pushes an image: its layers, its config, then its manifest, tagged `tag` if given and
    /// otherwise pushed by digest.
    ///
    /// With `platform` the config names os, architecture and variant and lists the layers'
    /// diff_ids; without it the config is the empty `{}` that step images use. `docker` selects
    /// Docker schema 2 media types for the manifest and config instead of OCI ones; the layers
    /// keep the media types they were built with.
    pub fn push_image(
        &self,
        repository: &str,
        tag: Option<&str>,
        layers: &[Layer],
        platform: Option<Platform>,
        docker: bool,
    ) -> Pushed {
        for layer in layers {
            self.push_blob(repository, &layer.bytes);
        }

        let config = image_config(layers, platform);
        let config_digest = self.push_blob(repository, &config);

        let (manifest_type, config_type) = match docker {
            true => (DOCKER_MANIFEST, DOCKER_CONFIG),
            false => (OCI_MANIFEST, OCI_CONFIG),
        };
        let layer_descriptors: Vec<Value> = layers
            .iter()
            .map(|layer| descriptor(&layer.media_type, &layer.digest, layer.size()))
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": descriptor(config_type, &config_digest, config.len() as u64),
            "layers": layer_descriptors,
        });
        self.push_manifest(repository, tag, manifest_type, &to_bytes(&manifest))
    }

    /// Pushes an index (a Docker manifest list when `docker`) of already-pushed manifests with
    /// their platforms, tagged `tag`. Returns the index digest.
    pub fn push_index(
        &self,
        repository: &str,
        tag: &str,
        entries: &[(Pushed, Platform)],
        docker: bool,
    ) -> String {
        let index_type = if docker {
            DOCKER_MANIFEST_LIST
        } else {
            OCI_INDEX
        };
        let manifests: Vec<Value> = entries
            .iter()
            .map(|(pushed, platform)| {
                let mut entry = descriptor(&pushed.media_type, &pushed.digest, pushed.size);
                entry["platform"] = platform_json(*platform);
                entry
            })
            .collect();
        let index = json!({
            "schemaVersion": 2,
            "mediaType": index_type,
            "manifests": manifests,
        });
        self.push_manifest(repository, Some(tag), index_type, &to_bytes(&index))
            .digest
    }

    /// Points `tag` at an already-pushed manifest by pushing the same bytes again.
    pub fn tag(&self, repository: &str, pushed: &Pushed, tag: &str) {
        self.push_manifest(repository, Some(tag), &pushed.media_type, &pushed.manifest);
    }

    /// Pushes `manifest` as given, under `tag` or else by its digest.
    pub fn push_manifest(
        &self,
        repository: &str,
        tag: Option<&str>,
        media_type: &str,
        manifest: &[u8],
    ) -> Pushed {
        let digest = sha256_digest(manifest);
        let reference = tag.unwrap_or(&digest);
        let what = format!("pushing manifest {repository}:{reference}");

        let target = format!("/v2/{repository}/manifests/{reference}");
        let headers = [("Content-Type", media_type)];
        let response = self.send(&what, "PUT", &target, &headers, manifest);
        expect_status(&what, &response, 201);

        Pushed {
            digest,
            manifest: manifest.to_vec(),
            media_type: media_type.to_string(),
            size: manifest.len() as u64,
        }
    }

    /// Uploads a blob in one piece (POST an upload session, then PUT the bytes with their
    /// digest, which the registry verifies). Returns the digest.
    pub fn push_blob(&self, repository: &str, bytes: &[u8]) -> String {
        let digest = sha256_digest(bytes);
        let what = format!("pushing blob {digest} to {repository}");

        let target = format!("/v2/{repository}/blobs/uploads/");
        let response = self.send(&what, "POST", &target, &[], &[]);
        expect_status(&what, &response, 202);
        let location = upload_location(&what, &response);

        let separator = if location.contains('?') { '&' } else { '?' };
        let target = format!("{location}{separator}digest={digest}");
        let headers = [("Content-Type", "application/octet-stream")];
        let response = self.send(&what, "PUT", &target, &headers, bytes);
        expect_status(&what, &response, 201);
        digest
    }

    fn send(
        &self,
        what: &str,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        http::send(&self.host(), method, target, headers, body)
            .unwrap_or_else(|err| panic!("{what}: {method} {target}: {err}"))
    }
}

/// The config blob: `{}`, or os/architecture/variant and the layers' diff_ids.
fn image_config(layers: &[Layer], platform: Option<Platform>) -> Vec<u8> {
    let Some(platform) = platform else {
        return b"{}".to_vec();
    };

    let mut config = platform_json(platform);
    let diff_ids: Vec<String> = layers.iter().map(Layer::diff_id).collect();
    config["rootfs"] = json!({ "type": "layers", "diff_ids": diff_ids });
    config["config"] = json!({});
    to_bytes(&config)
}

fn platform_json((os, architecture, variant): Platform) -> Value {
    let mut platform = json!({ "os": os, "architecture": architecture });
    if let Some(variant) = variant {
        platform["variant"] = json!(variant);
    }
    platform
}

fn descriptor(media_type: &str, digest: &str, size: u64) -> Value {
    json!({ "mediaType": media_type, "digest": digest, "size": size })
}

fn to_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("serialising JSON")
}

/// The upload URL from a Location header, as a path and query on the same host.
fn upload_location(what: &str, response: &Response) -> String {
    let location = response
        .header("Location")
        .unwrap_or_else(|| panic!("{what}: upload session answer has no Location header"));
    match location.find("://") {
        Some(scheme_end) => {
            let after_scheme = &location[scheme_end + 3..];
            let path_start = after_scheme.find('/').unwrap_or(after_scheme.len());
            after_scheme[path_start..].to_string()
        }
        None => location.to_string(),
    }
}

fn expect_status(what: &str, response: &Response, expected: u16) {
    assert_eq!(
        response.status,
        expected,
        "{what}: registry answered {} (expected {expected}): {}",
        response.status,
        String::from_utf8_lossy(&response.body)
    );
}
