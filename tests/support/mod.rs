//! Shared fixtures for the integration tests.
//!
//! Every test runs against a real registry: [`Registry::start`] launches Debian's
//! `docker-registry` (CNCF Distribution 2.8) on a free loopback port with its own storage, and
//! the test pushes the images it needs with [`Registry::push_image`] and
//! [`Registry::push_index`]. The registry's access log tells a test which requests were made
//! ([`Registry::requests_for`]). Layers are built in memory with [`Layer::build`] and
//! [`Layer::random`]; [`gnu_tar_extract`] and [`assert_same_tree`] compare an extraction with
//! GNU tar's.
//!
//! Install the programs these fixtures run with `scripts/install-test-deps`.

// Not every test uses every fixture.
#![allow(dead_code, unused_imports)]

pub mod hostile;
pub mod http;
pub mod image;
pub mod push;
pub mod registry;
pub mod secure;
pub mod tree;

pub use hostile::{HostileRegistry, Reply, SeenRequest};
pub use image::*;
pub use push::{Platform, Pushed, Remote};
pub use registry::{Registry, Request, Setup, TokenAuth};
pub use tree::{assert_same_tree, gnu_tar_extract, gnu_tar_try_extract};
