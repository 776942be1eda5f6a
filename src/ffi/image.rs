//! The result of a fetch, read through accessors (no struct layout is shared with C).

use std::ffi::{c_char, CString};

use super::{c_string, required};
use crate::cache::{Image, ImageOutcome, LayerOutcome};

/// How an image or layer was served. Append-only.
#[repr(u32)]
#[allow(non_camel_case_types, dead_code)]
pub enum oci_cache_outcome {
    /// Served from the cache (an image: with no request).
    Hit = 0,
    /// Downloaded now (an image: something had to be fetched).
    Miss = 1,
    /// An image under a mutable tag: one manifest request, cached layers reused.
    Mutable = 2,
    /// Caching disabled: downloaded into a directory outside the cache.
    Disabled = 3,
    /// Returned for a NULL handle or an index out of range.
    Invalid = 255,
}

/// A fetched image. Free with `oci_cache_image_free`; the strings its accessors return are
/// borrowed from it.
#[allow(non_camel_case_types)]
pub struct oci_cache_image {
    reference: CString,
    manifest_digest: CString,
    platform: CString,
    json: CString,
    merged_path: Option<CString>,
    outcome: ImageOutcome,
    /// The layers' pins: until this handle is freed, no prune removes them.
    _pins: std::sync::Arc<Vec<crate::lock::LayerPin>>,
    layers: Vec<LayerStrings>,
}

struct LayerStrings {
    digest: CString,
    media_type: CString,
    size: u64,
    path: CString,
    outcome: LayerOutcome,
}

impl oci_cache_image {
    pub(crate) fn new(image: Image) -> oci_cache_image {
        let json = crate::cache::image_json(&image).to_string();
        oci_cache_image {
            reference: c_string(&image.reference),
            manifest_digest: c_string(&image.manifest_digest),
            platform: c_string(
                image
                    .platform
                    .as_ref()
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
            ),
            json: c_string(json),
            merged_path: image
                .merged_path
                .as_ref()
                .map(|path| c_string(path.display().to_string())),
            outcome: image.cache,
            _pins: image.pins.clone(),
            layers: image
                .layers
                .iter()
                .map(|layer| LayerStrings {
                    digest: c_string(&layer.digest),
                    media_type: c_string(&layer.media_type),
                    size: layer.size,
                    path: c_string(layer.path.display().to_string()),
                    outcome: layer.cache,
                })
                .collect(),
        }
    }

    fn layer<'a>(image: *const oci_cache_image, index: usize) -> Option<&'a LayerStrings> {
        let image: &'a oci_cache_image = required(image, "image").ok()?;
        image.layers.get(index)
    }
}

/// The normalised reference (`registry/repository:tag`); NULL for NULL.
#[no_mangle]
pub extern "C" fn oci_cache_image_reference(image: *const oci_cache_image) -> *const c_char {
    required(image, "image").map_or(std::ptr::null(), |i| i.reference.as_ptr())
}

/// The manifest digest (for an index: of the chosen platform's manifest); NULL for NULL.
#[no_mangle]
pub extern "C" fn oci_cache_image_manifest_digest(image: *const oci_cache_image) -> *const c_char {
    required(image, "image").map_or(std::ptr::null(), |i| i.manifest_digest.as_ptr())
}

/// The image's platform (`os/architecture[/variant]`): the chosen index entry's, or for a plain
/// manifest the one its image config names; `""` when neither names one; NULL for NULL.
#[no_mangle]
pub extern "C" fn oci_cache_image_platform(image: *const oci_cache_image) -> *const c_char {
    required(image, "image").map_or(std::ptr::null(), |i| i.platform.as_ptr())
}

/// The merged directory (the layers applied in order, whiteouts honoured), when the fetch asked
/// for it with `OCI_CACHE_OPTION_MERGED`; NULL otherwise and for NULL.
#[no_mangle]
pub extern "C" fn oci_cache_image_merged_path(image: *const oci_cache_image) -> *const c_char {
    let image = required(image, "image").ok();
    image
        .and_then(|i| i.merged_path.as_ref())
        .map_or(std::ptr::null(), |path| path.as_ptr())
}

/// How the image was served (`oci_cache_outcome`); `OCI_CACHE_OUTCOME_INVALID` for NULL.
#[no_mangle]
pub extern "C" fn oci_cache_image_cache_outcome(image: *const oci_cache_image) -> u32 {
    required(image, "image").map_or(oci_cache_outcome::Invalid as u32, |i| match i.outcome {
        ImageOutcome::Hit => oci_cache_outcome::Hit as u32,
        ImageOutcome::Miss => oci_cache_outcome::Miss as u32,
        ImageOutcome::Mutable => oci_cache_outcome::Mutable as u32,
        ImageOutcome::Disabled => oci_cache_outcome::Disabled as u32,
    })
}

/// The number of layers; 0 for NULL.
#[no_mangle]
pub extern "C" fn oci_cache_image_layer_count(image: *const oci_cache_image) -> usize {
    required(image, "image").map_or(0, |i| i.layers.len())
}

/// The digest of layer `index` (base first); NULL for NULL or an index out of range.
#[no_mangle]
pub extern "C" fn oci_cache_image_layer_digest(
    image: *const oci_cache_image,
    index: usize,
) -> *const c_char {
    oci_cache_image::layer(image, index).map_or(std::ptr::null(), |l| l.digest.as_ptr())
}

/// The media type of layer `index`; NULL for NULL or an index out of range.
#[no_mangle]
pub extern "C" fn oci_cache_image_layer_media_type(
    image: *const oci_cache_image,
    index: usize,
) -> *const c_char {
    oci_cache_image::layer(image, index).map_or(std::ptr::null(), |l| l.media_type.as_ptr())
}

/// The blob size of layer `index` in bytes; 0 for NULL or an index out of range.
#[no_mangle]
pub extern "C" fn oci_cache_image_layer_size(image: *const oci_cache_image, index: usize) -> u64 {
    oci_cache_image::layer(image, index).map_or(0, |l| l.size)
}

/// The absolute path of layer `index`'s extracted directory; NULL for NULL or out of range.
#[no_mangle]
pub extern "C" fn oci_cache_image_layer_path(
    image: *const oci_cache_image,
    index: usize,
) -> *const c_char {
    oci_cache_image::layer(image, index).map_or(std::ptr::null(), |l| l.path.as_ptr())
}

/// How layer `index` was served (`oci_cache_outcome`); `OCI_CACHE_OUTCOME_INVALID` for NULL or
/// an index out of range.
#[no_mangle]
pub extern "C" fn oci_cache_image_layer_cache_outcome(
    image: *const oci_cache_image,
    index: usize,
) -> u32 {
    oci_cache_image::layer(image, index).map_or(oci_cache_outcome::Invalid as u32, |l| {
        match l.outcome {
            LayerOutcome::Hit => oci_cache_outcome::Hit as u32,
            LayerOutcome::Miss => oci_cache_outcome::Miss as u32,
            LayerOutcome::Disabled => oci_cache_outcome::Disabled as u32,
        }
    })
}

/// The whole result as the JSON object the CLI prints with `--json`; NULL for NULL.
#[no_mangle]
pub extern "C" fn oci_cache_image_json(image: *const oci_cache_image) -> *const c_char {
    required(image, "image").map_or(std::ptr::null(), |i| i.json.as_ptr())
}

/// Free an image. NULL is ignored.
#[no_mangle]
pub extern "C" fn oci_cache_image_free(image: *mut oci_cache_image) {
    super::release(image, "image");
}
