//! Manifests and indexes, in the OCI and Docker schema 2 media types.
//!
//! Only the fields the cache uses are read. Every descriptor is validated on parse: its digest
//! must be a well-formed sha256 digest (it later names a path and a URL) and its size must not be
//! negative.

use serde::{Deserialize, Serialize};

use crate::platform::Platform;
use crate::reference::parse_digest;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema 2 image manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker schema 2 manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The media types accepted when asking for a manifest.
pub const ACCEPTED: &[&str] = &[
    OCI_INDEX,
    OCI_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST,
];

/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// The largest image config read for its platform.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The largest manifest or index the cache accepts.
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// A content descriptor: what a manifest says of a blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The blob's media type.
    pub media_type: String,
    /// The blob's digest (`sha256:...`).
    pub digest: String,
    /// The blob's size in bytes.
    pub size: i64,
    /// The platform of an index entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// An image manifest: a config and ordered layers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// The media type, when the manifest names it.
    #[serde(default)]
    pub media_type: Option<String>,
    /// The image config blob.
    pub config: Descriptor,
    /// The layers, base first.
    pub layers: Vec<Descriptor>,
}

/// An index (manifest list): one manifest per platform.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// The media type, when the index names it.
    #[serde(default)]
    pub media_type: Option<String>,
    /// The entries.
    pub manifests: Vec<Descriptor>,
}

/// A parsed manifest or index.
#[derive(Debug, Clone)]
pub enum Manifest {
    /// A single-platform image manifest.
    Image(ImageManifest),
    /// A multi-platform index.
    Index(ImageIndex),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    schema_version: Option<u32>,
}

impl Manifest {
    /// Parse `bytes`, served with the `content_type` header when known. The media type inside
    /// the document wins; without one, the header decides; without both, the shape does.
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Manifest, String> {
        let probe: Probe = serde_json::from_slice(bytes)
            .map_err(|e| format!("manifest is not valid JSON: {e}"))?;
        if probe.schema_version != Some(2) {
            return Err(format!(
                "manifest schemaVersion is {:?}, only 2 is supported",
                probe.schema_version
            ));
        }

        let media_type = probe
            .media_type
            .as_deref()
            .or(content_type)
            .unwrap_or_default();
        let is_index = match media_type {
            OCI_INDEX | DOCKER_MANIFEST_LIST => true,
            OCI_MANIFEST | DOCKER_MANIFEST => false,
            "" => probe.manifests.is_some(),
            other => return Err(format!("manifest media type {other:?} is not supported")),
        };

        let manifest = if is_index {
            let index: ImageIndex = serde_json::from_slice(bytes)
                .map_err(|e| format!("index does not follow the OCI schema: {e}"))?;
            Manifest::Index(index)
        } else {
            let image: ImageManifest = serde_json::from_slice(bytes)
                .map_err(|e| format!("manifest does not follow the OCI schema: {e}"))?;
            Manifest::Image(image)
        };
        manifest.validate()?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<(), String> {
        let descriptors: Vec<&Descriptor> = match self {
            Manifest::Image(image) => std::iter::once(&image.config)
                .chain(&image.layers)
                .collect(),
            Manifest::Index(index) => index.manifests.iter().collect(),
        };
        for descriptor in descriptors {
            parse_digest(&descriptor.digest)
                .map_err(|reason| format!("a descriptor has an invalid digest: {reason}"))?;
            if descriptor.size < 0 {
                return Err(format!(
                    "descriptor {} has a negative size",
                    descriptor.digest
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn image_manifest_is_parsed_with_its_layers() {
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}",
            "config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{D}","size":2}},
            "layers":[{{"mediaType":"application/vnd.gitlab.step.layer.v1.tar+zstd",
            "digest":"{D}","size":9}}]}}"#
        );
        let Manifest::Image(image) = Manifest::parse(json.as_bytes(), None).unwrap() else {
            panic!("expected an image manifest");
        };
        assert_eq!(image.layers.len(), 1);
        assert_eq!(image.layers[0].size, 9);
    }

    #[test]
    fn docker_list_without_media_type_field_uses_the_header() {
        let json = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{DOCKER_MANIFEST}","digest":"{D}",
            "size":3,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#
        );
        let parsed = Manifest::parse(json.as_bytes(), Some(DOCKER_MANIFEST_LIST)).unwrap();
        assert!(matches!(parsed, Manifest::Index(_)));
    }

    #[test]
    fn descriptor_with_path_like_digest_is_rejected() {
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}",
            "config":{{"mediaType":"x","digest":"{D}","size":2}},
            "layers":[{{"mediaType":"x","digest":"sha256:../../x","size":9}}]}}"#
        );
        let error = Manifest::parse(json.as_bytes(), None).unwrap_err();
        assert!(error.contains("invalid digest"), "{error}");
    }

    #[test]
    fn schema_1_is_refused() {
        let error = Manifest::parse(br#"{"schemaVersion":1}"#, None).unwrap_err();
        assert!(error.contains("only 2"), "{error}");
    }
}
