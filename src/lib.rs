//! oci-cache: a caching OCI image fetcher for CI step runners.
//!
//! A fetch resolves an image reference under a caching policy (digests and full semantic
//! versions are immutable and, once cached, cost no request; other tags cost one manifest
//! request), then makes every layer present in an on-disk store, one extracted directory per
//! layer digest. The same Rust API serves the C ABI ([`ffi`]), the `oci-cache` CLI and the tests.
//!
//! ```no_run
//! use oci_cache::{Cache, CacheOptions, FetchOptions};
//!
//! let cache = Cache::open("/var/cache/oci-cache", CacheOptions::default())?;
//! let image = cache.fetch("registry.example/steps/echo:1.2.3", &FetchOptions::default())?;
//! for layer in &image.layers {
//!     println!("{} -> {}", layer.digest, layer.path.display());
//! }
//! # Ok::<(), oci_cache::Error>(())
//! ```

pub mod cache;
pub mod error;
pub mod extract;
mod fetch;
pub mod ffi;
mod lock;
pub mod logging;
pub mod manifest;
mod merge;
pub mod platform;
pub mod prune;
pub mod reference;
pub mod registry;
pub mod runtime;
pub mod store;

pub use cache::{
    Cache, CacheOptions, CacheStatus, Counters, FetchOptions, Image, ImageOutcome, ImageStatus,
    Layer, LayerOutcome, LayerStatus, LogTarget, Progress, ProgressSink, Resolved, CACHE_ENV,
};
pub use error::{Error, ErrorCode, Result};
pub use platform::Platform;
pub use prune::{PruneOptions, PruneReport};
pub use reference::{ImageReference, Mutability};
pub use registry::auth::Credential;
pub use registry::Mirror;
pub use runtime::CancelToken;
