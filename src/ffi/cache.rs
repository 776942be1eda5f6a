//! The cache handle and its two operations: `oci_cache_fetch` and `oci_cache_status`.

use std::ffi::c_char;

use super::{
    check_out, guard, oci_cache_error, oci_cache_fetch_options, oci_cache_image, oci_cache_options,
    optional, optional_str, put, release, required, required_str, ErrorCode,
};
use crate::cache::{Cache, CacheOptions, FetchOptions};

/// An open cache directory. Safe to use from many threads at once, and several handles may be
/// open on one directory. Close it with `oci_cache_close` once no call on it is running.
#[allow(non_camel_case_types)]
pub struct oci_cache {
    cache: Cache,
}

/// What the cache holds: of one reference, or of the whole cache. Free with
/// `oci_cache_report_free`.
#[allow(non_camel_case_types)]
pub struct oci_cache_report {
    cached: bool,
    json: std::ffi::CString,
}

impl oci_cache_report {
    /// A report of `value` as JSON; `cached` answers `oci_cache_report_is_cached`.
    fn of(cached: bool, value: &impl serde::Serialize) -> oci_cache_report {
        let json = serde_json::to_string(value).expect("a report serialises");
        oci_cache_report {
            cached,
            json: super::c_string(json),
        }
    }
}

/// Open the cache at `dir` (created if missing) with `options` (NULL: defaults). On success
/// `*cache_out` holds a handle the caller owns. With `CI_STEPS_OCI_CACHE=false` the directory is
/// not touched and every fetch downloads into a new directory that the caller owns.
#[no_mangle]
pub extern "C" fn oci_cache_open(
    dir: *const c_char,
    options: *const oci_cache_options,
    cache_out: *mut *mut oci_cache,
    error_out: *mut *mut oci_cache_error,
) -> ErrorCode {
    guard(error_out, || {
        check_out(cache_out, "cache_out")?;
        let dir = required_str(dir, "dir")?;
        let options = optional(options, "options")?;
        let options = options.map_or_else(CacheOptions::default, |o| o.options.clone());

        let cache = Cache::open(dir, options)?;
        put(cache_out, oci_cache { cache });
        Ok(())
    })
}

/// Close a cache handle and free it. NULL is ignored. No other call may use the handle while or
/// after it closes; results already returned (images, statuses) stay valid.
#[no_mangle]
pub extern "C" fn oci_cache_close(cache: *mut oci_cache) {
    release(cache, "cache");
}

/// Fetch `reference` through the cache, blocking the calling thread until it is complete,
/// failed, or cancelled through `options`' token. `options` may be NULL. On success
/// `*image_out` holds a result the caller owns (`oci_cache_image_free`).
#[no_mangle]
pub extern "C" fn oci_cache_fetch(
    cache: *const oci_cache,
    reference: *const c_char,
    options: *const oci_cache_fetch_options,
    image_out: *mut *mut oci_cache_image,
    error_out: *mut *mut oci_cache_error,
) -> ErrorCode {
    guard(error_out, || {
        check_out(image_out, "image_out")?;
        let cache = &required(cache, "cache")?.cache;
        let reference = required_str(reference, "reference")?;
        let options = optional(options, "options")?;
        let options = options.map_or_else(FetchOptions::default, |o| o.options.clone());

        let image = cache.fetch(reference, &options)?;
        put(image_out, oci_cache_image::new(image));
        Ok(())
    })
}

/// Report what the cache holds, without network: of `reference`, or of the whole cache when
/// `reference` is NULL. On success `*status_out` holds a status the caller owns.
#[no_mangle]
pub extern "C" fn oci_cache_status(
    cache: *const oci_cache,
    reference: *const c_char,
    status_out: *mut *mut oci_cache_report,
    error_out: *mut *mut oci_cache_error,
) -> ErrorCode {
    guard(error_out, || {
        check_out(status_out, "status_out")?;
        let cache = &required(cache, "cache")?.cache;
        let reference = optional_str(reference, "reference")?;

        let report = match reference {
            Some(reference) => {
                let status = cache.image_status(reference)?;
                oci_cache_report::of(status.cached, &status)
            }
            None => oci_cache_report::of(false, &cache.cache_status()?),
        };
        put(status_out, report);
        Ok(())
    })
}

/// Remove cached layers, never one that a fetch or a result of any process uses: least recently
/// used first until the layers fit in `max_size_bytes` (0: no size limit), those unused for more
/// than `unused_for_seconds` (0: no age limit), or all of them with `all`. At least one of the
/// three must ask for something. On success `*report_out` holds a report the caller owns, whose
/// JSON has `removed_layers`, `removed_bytes`, `removed_images`, `in_use`, `size_before` and
/// `size_after`.
#[no_mangle]
pub extern "C" fn oci_cache_prune(
    cache: *const oci_cache,
    max_size_bytes: u64,
    unused_for_seconds: u64,
    all: bool,
    report_out: *mut *mut oci_cache_report,
    error_out: *mut *mut oci_cache_error,
) -> ErrorCode {
    guard(error_out, || {
        check_out(report_out, "report_out")?;
        let cache = &required(cache, "cache")?.cache;
        if max_size_bytes == 0 && unused_for_seconds == 0 && !all {
            return Err(crate::Error::InvalidArgument {
                name: "max_size_bytes",
                reason: "nothing to prune: give a size, an age, or all".into(),
            });
        }
        let options = crate::PruneOptions {
            max_size: (max_size_bytes > 0).then_some(max_size_bytes),
            unused_for: (unused_for_seconds > 0)
                .then(|| std::time::Duration::from_secs(unused_for_seconds)),
            all,
        };

        let report = cache.prune(&options)?;
        put(report_out, oci_cache_report::of(false, &report));
        Ok(())
    })
}

/// Resolve `reference` to the digest it points at now, for a lock file: one HEAD at the
/// registry (none for a reference pinned by digest), nothing downloaded. On success
/// `*report_out` holds a report the caller owns, whose JSON has `reference` (as given),
/// `pinned` (`registry/repository[:tag]@digest`) and `digest`.
#[no_mangle]
pub extern "C" fn oci_cache_resolve(
    cache: *const oci_cache,
    reference: *const c_char,
    report_out: *mut *mut oci_cache_report,
    error_out: *mut *mut oci_cache_error,
) -> ErrorCode {
    guard(error_out, || {
        check_out(report_out, "report_out")?;
        let cache = &required(cache, "cache")?.cache;
        let reference = required_str(reference, "reference")?;

        let resolved = cache.resolve(reference)?;
        put(report_out, oci_cache_report::of(false, &resolved));
        Ok(())
    })
}

/// For a reference's status: true when its manifest and every layer are cached. False for the
/// cache's status and for NULL.
#[no_mangle]
pub extern "C" fn oci_cache_report_is_cached(status: *const oci_cache_report) -> bool {
    required(status, "status").is_ok_and(|s| s.cached)
}

/// The status as a JSON object, borrowed until `oci_cache_report_free`; NULL for NULL. A
/// reference's status has `reference`, `cached`, `manifest_digest` and `layers` (`digest`,
/// `present`, `path`); the cache's has `dir`, `disabled`, `size_bytes`, `layers`, `images`,
/// and `session` and `total` counters (`hits`, `misses`, `bytes_downloaded`, `bytes_saved`:
/// of this handle since it opened, and of every handle since the cache was made).
#[no_mangle]
pub extern "C" fn oci_cache_report_json(status: *const oci_cache_report) -> *const c_char {
    required(status, "status").map_or(std::ptr::null(), |s| s.json.as_ptr())
}

/// Free a status. NULL is ignored.
#[no_mangle]
pub extern "C" fn oci_cache_report_free(status: *mut oci_cache_report) {
    release(status, "status");
}
