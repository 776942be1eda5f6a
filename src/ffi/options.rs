//! Option handles: `oci_cache_options` for opening a cache, `oci_cache_fetch_options` for one
//! fetch, and `oci_cache_cancel` tokens.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use super::{
    guard, oci_cache_error, optional_str, required, required_mut, required_str, ErrorCode,
};
use crate::cache::{CacheOptions, FetchOptions, LogTarget};
use crate::error::Error;
use crate::logging::LogRecord;
use crate::platform::Platform;
use crate::runtime::CancelToken;

/// Option codes for `oci_cache_options_set_string` and `oci_cache_options_set_uint`. Append-only.
#[repr(u32)]
#[allow(non_camel_case_types)]
pub enum oci_cache_option {
    /// String `os/architecture[/variant]`: the platform chosen from indexes (default: the host's).
    Platform = 1,
    /// String `host[:port]`: a registry reached over plain HTTP. Repeatable.
    InsecureRegistry = 2,
    /// Unsigned: how many layers of one image download at once (default 4, from 1 to 64).
    MaxConcurrentLayers = 3,
    /// Unsigned, milliseconds: how long a registry connection may send nothing before the
    /// request fails and is retried (default 60000, from 1 to 3600000).
    ReadTimeoutMs = 4,
    /// String, a path: a Docker config file (`config.json` format) to read credentials from, in
    /// place of `DOCKER_AUTH_CONFIG` and `~/.docker/config.json`.
    AuthFile = 5,
    /// String, a path: a PEM file of certificate authorities trusted besides the system's.
    /// Repeatable.
    CaFile = 6,
    /// String `REGISTRY=URL[,digest-only]`: a mirror of REGISTRY, tried before it, in the order
    /// given. Repeatable.
    Mirror = 7,
    /// Unsigned, 0 or 1: read credentials from `DOCKER_AUTH_CONFIG` or `~/.docker/config.json`
    /// (default 1).
    DockerConfig = 8,
    /// Unsigned, 0 or 1: no network at all (default 0). Cached images are served (a mutable tag
    /// from the digest it last resolved to, with a WARN); anything else is
    /// `OCI_CACHE_RESULT_NOT_CACHED`.
    Offline = 9,
    /// Unsigned, 0 or 1, for one fetch (`oci_cache_fetch_options_set_uint`): also build the
    /// image's merged directory (`oci_cache_image_merged_path`) (default 0).
    Merged = 10,
    /// Unsigned, bytes: a size budget; after a fetch that downloaded something, least recently
    /// used layers no result uses are pruned until the layers fit (default 0: no budget).
    MaxSizeBytes = 11,
}

/// Log levels of the log callback.
#[repr(u32)]
#[allow(non_camel_case_types)]
pub enum oci_cache_log_level {
    /// Errors: the library gave up on something.
    Error = 1,
    /// Warnings: the user's intent was overridden (caching disabled, ...).
    Warn = 2,
    /// One line per completed fetch.
    Info = 3,
    /// Every cache decision.
    Debug = 4,
    /// Everything, including the HTTP stack's details.
    Trace = 5,
}

/// A log callback: `level` is an `oci_cache_log_level`; `target` names the module that logged;
/// `fields` is a JSON object of the event's fields. The strings are valid only during the call.
/// It is called from the library's threads and must not call back into the library.
#[allow(non_camel_case_types)]
pub type oci_cache_log_callback = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        level: u32,
        target: *const c_char,
        message: *const c_char,
        fields: *const c_char,
    ),
>;

/// A progress callback: `digest` names a layer (valid only during the call), `done` of its
/// `total` blob bytes are there. Called once for a cached layer (`done == total`) and as a
/// download goes (at most once per MiB, and at its end), from the library's threads, several
/// layers at once; it must return quickly and must not call back into the library.
#[allow(non_camel_case_types)]
pub type oci_cache_progress_callback = Option<
    unsafe extern "C" fn(userdata: *mut c_void, digest: *const c_char, done: u64, total: u64),
>;

/// Options for `oci_cache_open`. Create with `oci_cache_options_new`, free with
/// `oci_cache_options_free`. Not safe to change from two threads at once.
#[allow(non_camel_case_types)]
pub struct oci_cache_options {
    pub(crate) options: CacheOptions,
}

/// Options for one `oci_cache_fetch`. Create with `oci_cache_fetch_options_new`, free with
/// `oci_cache_fetch_options_free`.
#[allow(non_camel_case_types)]
pub struct oci_cache_fetch_options {
    pub(crate) options: FetchOptions,
}

/// A cancellation token. Any thread may trigger it while a fetch that holds it runs; the fetch
/// then returns `OCI_CACHE_RESULT_CANCELLED` promptly. Free with `oci_cache_cancel_free` after
/// the fetches that hold it returned.
#[allow(non_camel_case_types)]
pub struct oci_cache_cancel {
    pub(crate) token: CancelToken,
}

/// A new set of cache options with the defaults. The caller owns it.
#[no_mangle]
pub extern "C" fn oci_cache_options_new() -> *mut oci_cache_options {
    super::export(oci_cache_options {
        options: CacheOptions::default(),
    })
}

/// Free cache options. NULL is ignored.
#[no_mangle]
pub extern "C" fn oci_cache_options_free(options: *mut oci_cache_options) {
    super::release(options, "options");
}

/// Set a string option (`OCI_CACHE_OPTION_PLATFORM`, `OCI_CACHE_OPTION_INSECURE_REGISTRY`,
/// `OCI_CACHE_OPTION_AUTH_FILE`, `OCI_CACHE_OPTION_CA_FILE`, `OCI_CACHE_OPTION_MIRROR`).
/// An unknown code, or a code that takes a number, is `OCI_CACHE_RESULT_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn oci_cache_options_set_string(
    options: *mut oci_cache_options,
    option: u32,
    value: *const c_char,
    error_out: *mut *mut oci_cache_error,
) -> ErrorCode {
    guard(error_out, || {
        let options = &mut required_mut(options, "options")?.options;
        let value = required_str(value, "value")?;

        match option {
            PLATFORM => options.platform = Some(parse_platform(value)?),
            INSECURE_REGISTRY => options.insecure_registries.push(value.to_string()),
            AUTH_FILE => options.auth_file = Some(value.into()),
            CA_FILE => options.ca_files.push(value.into()),
            MIRROR => {
                let (registry, mirror) =
                    crate::Mirror::parse_spec(value).map_err(|reason| Error::InvalidArgument {
                        name: "value",
                        reason,
                    })?;
                options.mirrors.entry(registry).or_default().push(mirror);
            }
            other => return Err(unknown_option(other, "a string")),
        }
        Ok(())
    })
}

/// Set a numeric option (`OCI_CACHE_OPTION_MAX_CONCURRENT_LAYERS`,
/// `OCI_CACHE_OPTION_READ_TIMEOUT_MS`, `OCI_CACHE_OPTION_DOCKER_CONFIG`,
/// `OCI_CACHE_OPTION_OFFLINE`, `OCI_CACHE_OPTION_MAX_SIZE_BYTES`).
#[no_mangle]
pub extern "C" fn oci_cache_options_set_uint(
    options: *mut oci_cache_options,
    option: u32,
    value: u64,
    error_out: *mut *mut oci_cache_error,
) -> ErrorCode {
    guard(error_out, || {
        let options = &mut required_mut(options, "options")?.options;

        match option {
            MAX_CONCURRENT_LAYERS if (1..=64).contains(&value) => {
                options.max_concurrent_layers = value as usize
            }
            MAX_CONCURRENT_LAYERS => {
                return Err(Error::InvalidArgument {
                    name: "value",
                    reason: format!("max concurrent layers must be from 1 to 64, not {value}"),
                })
            }
            READ_TIMEOUT_MS if (1..=3_600_000).contains(&value) => {
                options.read_timeout = std::time::Duration::from_millis(value)
            }
            READ_TIMEOUT_MS => {
                return Err(Error::InvalidArgument {
                    name: "value",
                    reason: format!("read timeout must be from 1 to 3600000 ms, not {value}"),
                })
            }
            DOCKER_CONFIG => options.docker_config = switch(value, "the Docker config switch")?,
            OFFLINE => options.offline = switch(value, "the offline switch")?,
            MAX_SIZE_BYTES => options.max_size = (value > 0).then_some(value),
            other => return Err(unknown_option(other, "a number")),
        }
        Ok(())
    })
}

/// Use `username` and `password` (or an access token as the password) for `registry`
/// (`host[:port]`, `docker.io` for Docker Hub), for Basic auth or with its token server. They
/// take precedence over a Docker config's, and are sent to no other host.
#[no_mangle]
pub extern "C" fn oci_cache_options_set_credentials(
    options: *mut oci_cache_options,
    registry: *const c_char,
    username: *const c_char,
    password: *const c_char,
    error_out: *mut *mut oci_cache_error,
) -> ErrorCode {
    guard(error_out, || {
        let options = &mut required_mut(options, "options")?.options;
        let registry = required_str(registry, "registry")?;
        let credential = crate::Credential::Basic {
            username: required_str(username, "username")?.to_string(),
            password: required_str(password, "password")?.to_string(),
        };

        options.credentials.insert(registry.to_string(), credential);
        Ok(())
    })
}

/// Use the registry token `token` for `registry`, sent as it is (`Authorization: Bearer`). It
/// takes precedence over a Docker config's, and is sent to no other host.
#[no_mangle]
pub extern "C" fn oci_cache_options_set_registry_token(
    options: *mut oci_cache_options,
    registry: *const c_char,
    token: *const c_char,
    error_out: *mut *mut oci_cache_error,
) -> ErrorCode {
    guard(error_out, || {
        let options = &mut required_mut(options, "options")?.options;
        let registry = required_str(registry, "registry")?;
        let token = crate::Credential::Bearer(required_str(token, "token")?.to_string());

        options.credentials.insert(registry.to_string(), token);
        Ok(())
    })
}

/// Send the cache's log events at `level` and above to `callback`, with `userdata` as its first
/// argument. `userdata` is passed from the library's threads: the host makes it safe for that.
/// Once `oci_cache_close` of the cache opened with these options returned, the callback is never
/// called again for it, so the host may free `userdata` then. A NULL `callback` removes the
/// callback (and `level` is not checked).
#[no_mangle]
pub extern "C" fn oci_cache_options_set_log_callback(
    options: *mut oci_cache_options,
    callback: oci_cache_log_callback,
    userdata: *mut c_void,
    level: u32,
    error_out: *mut *mut oci_cache_error,
) -> ErrorCode {
    guard(error_out, || {
        let options = &mut required_mut(options, "options")?.options;
        let Some(callback) = callback else {
            options.log = None;
            return Ok(());
        };
        let level = log_level(level)?;
        let userdata = Userdata(userdata);
        let callback = Arc::new(move |record: &LogRecord<'_>| {
            let (target, message, fields) = (
                super::c_string(record.target),
                super::c_string(record.message),
                super::c_string(record.fields),
            );
            let level = level_code(record.level);
            // SAFETY: the host registered this function and vouched for `userdata`; the strings
            // live until the call returns.
            unsafe {
                callback(
                    userdata.get(),
                    level,
                    target.as_ptr(),
                    message.as_ptr(),
                    fields.as_ptr(),
                )
            };
        });
        options.log = Some(LogTarget { level, callback });
        Ok(())
    })
}

/// New fetch options with the defaults. The caller owns them.
#[no_mangle]
pub extern "C" fn oci_cache_fetch_options_new() -> *mut oci_cache_fetch_options {
    super::export(oci_cache_fetch_options {
        options: FetchOptions::default(),
    })
}

/// Free fetch options. NULL is ignored.
#[no_mangle]
pub extern "C" fn oci_cache_fetch_options_free(options: *mut oci_cache_fetch_options) {
    super::release(options, "fetch options");
}

/// Set a string option of one fetch (`OCI_CACHE_OPTION_PLATFORM`); a NULL `value` clears it
/// (the cache's platform applies again).
#[no_mangle]
pub extern "C" fn oci_cache_fetch_options_set_string(
    options: *mut oci_cache_fetch_options,
    option: u32,
    value: *const c_char,
    error_out: *mut *mut oci_cache_error,
) -> ErrorCode {
    guard(error_out, || {
        let options = &mut required_mut(options, "options")?.options;
        let value = optional_str(value, "value")?;

        match (option, value) {
            (PLATFORM, Some(value)) => options.platform = Some(parse_platform(value)?),
            (PLATFORM, None) => options.platform = None,
            (other, _) => return Err(unknown_option(other, "a per-fetch string")),
        }
        Ok(())
    })
}

/// Set a numeric option of one fetch (`OCI_CACHE_OPTION_MERGED`).
#[no_mangle]
pub extern "C" fn oci_cache_fetch_options_set_uint(
    options: *mut oci_cache_fetch_options,
    option: u32,
    value: u64,
    error_out: *mut *mut oci_cache_error,
) -> ErrorCode {
    guard(error_out, || {
        let options = &mut required_mut(options, "options")?.options;

        match option {
            MERGED => options.merged = switch(value, "the merged switch")?,
            other => return Err(unknown_option(other, "a per-fetch number")),
        }
        Ok(())
    })
}

/// Report the progress of fetches made with these options to `callback`, with `userdata` as its
/// first argument, until they return (the host keeps `userdata` valid that long). A NULL
/// `callback` removes it.
#[no_mangle]
pub extern "C" fn oci_cache_fetch_options_set_progress(
    options: *mut oci_cache_fetch_options,
    callback: oci_cache_progress_callback,
    userdata: *mut c_void,
    error_out: *mut *mut oci_cache_error,
) -> ErrorCode {
    guard(error_out, || {
        let options = &mut required_mut(options, "options")?.options;
        let Some(callback) = callback else {
            options.progress = None;
            return Ok(());
        };
        let userdata = Userdata(userdata);
        let sink = move |progress: &crate::cache::Progress<'_>| {
            let digest = super::c_string(progress.digest);
            // SAFETY: the host registered this function and vouched for `userdata`; the digest
            // lives until the call returns.
            unsafe {
                callback(
                    userdata.get(),
                    digest.as_ptr(),
                    progress.done,
                    progress.total,
                )
            };
        };
        options.progress = Some(crate::cache::ProgressSink(Arc::new(sink)));
        Ok(())
    })
}

/// A 0-or-1 option's value.
fn switch(value: u64, what: &str) -> Result<bool, Error> {
    match value {
        0 | 1 => Ok(value == 1),
        _ => Err(Error::InvalidArgument {
            name: "value",
            reason: format!("{what} is 0 or 1, not {value}"),
        }),
    }
}

/// Let `cancel` cancel the fetches made with these options (NULL removes it). The options keep
/// their own reference: the token may be freed before them.
#[no_mangle]
pub extern "C" fn oci_cache_fetch_options_set_cancel(
    options: *mut oci_cache_fetch_options,
    cancel: *const oci_cache_cancel,
    error_out: *mut *mut oci_cache_error,
) -> ErrorCode {
    guard(error_out, || {
        let options = &mut required_mut(options, "options")?.options;
        options.cancel = super::optional(cancel, "cancel")?.map(|c| c.token.clone());
        Ok(())
    })
}

/// A new, untriggered cancellation token. The caller owns it.
#[no_mangle]
pub extern "C" fn oci_cache_cancel_new() -> *mut oci_cache_cancel {
    super::export(oci_cache_cancel {
        token: CancelToken::new(),
    })
}

/// Trigger `cancel`; safe from any thread, any number of times. NULL is ignored.
#[no_mangle]
pub extern "C" fn oci_cache_cancel_trigger(cancel: *const oci_cache_cancel) {
    if let Ok(cancel) = required(cancel, "cancel") {
        cancel.token.cancel();
    }
}

/// Free a cancellation token. NULL is ignored.
#[no_mangle]
pub extern "C" fn oci_cache_cancel_free(cancel: *mut oci_cache_cancel) {
    super::release(cancel, "cancel");
}

/// The host's opaque pointer, carried to the library's threads.
#[derive(Clone, Copy)]
struct Userdata(*mut c_void);

impl Userdata {
    fn get(self) -> *mut c_void {
        self.0
    }
}

// SAFETY: the host promises, by registering the callback, that `userdata` may be used from any
// thread; the library never dereferences it.
unsafe impl Send for Userdata {}
// SAFETY: as above.
unsafe impl Sync for Userdata {}

fn parse_platform(value: &str) -> Result<Platform, Error> {
    Platform::parse(value).map_err(|reason| Error::InvalidArgument {
        name: "platform",
        reason,
    })
}

fn unknown_option(code: u32, kind: &str) -> Error {
    Error::InvalidArgument {
        name: "option",
        reason: format!("option code {code} is unknown or does not take {kind}"),
    }
}

/// The C level codes and the `tracing` levels they stand for, in both directions.
const LEVELS: [(u32, tracing::Level); 5] = [
    (oci_cache_log_level::Error as u32, tracing::Level::ERROR),
    (oci_cache_log_level::Warn as u32, tracing::Level::WARN),
    (oci_cache_log_level::Info as u32, tracing::Level::INFO),
    (oci_cache_log_level::Debug as u32, tracing::Level::DEBUG),
    (oci_cache_log_level::Trace as u32, tracing::Level::TRACE),
];

fn log_level(code: u32) -> Result<tracing::Level, Error> {
    let found = LEVELS
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, level)| *level);
    found.ok_or_else(|| Error::InvalidArgument {
        name: "level",
        reason: format!("log level {code} is not from 1 (error) to 5 (trace)"),
    })
}

fn level_code(level: tracing::Level) -> u32 {
    let found = LEVELS
        .iter()
        .find(|(_, l)| *l == level)
        .map(|(code, _)| *code);
    found.expect("every tracing level has a code")
}

const PLATFORM: u32 = oci_cache_option::Platform as u32;
const INSECURE_REGISTRY: u32 = oci_cache_option::InsecureRegistry as u32;
const MAX_CONCURRENT_LAYERS: u32 = oci_cache_option::MaxConcurrentLayers as u32;
const READ_TIMEOUT_MS: u32 = oci_cache_option::ReadTimeoutMs as u32;
const AUTH_FILE: u32 = oci_cache_option::AuthFile as u32;
const CA_FILE: u32 = oci_cache_option::CaFile as u32;
const MIRROR: u32 = oci_cache_option::Mirror as u32;
const DOCKER_CONFIG: u32 = oci_cache_option::DockerConfig as u32;
const OFFLINE: u32 = oci_cache_option::Offline as u32;
const MERGED: u32 = oci_cache_option::Merged as u32;
const MAX_SIZE_BYTES: u32 = oci_cache_option::MaxSizeBytes as u32;
