//! oci-cache: a caching OCI image fetcher for CI step runners.
//!
//! (skeleton; filled in module by module)

pub mod extract;
