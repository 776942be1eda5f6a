//! Manifests and indexes: parsing never panics, and an accepted document names only valid
//! digests (they become paths and URLs) and no negative sizes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use oci_cache::manifest::{Descriptor, Manifest};
use oci_cache::reference::parse_digest;

fuzz_target!(|bytes: &[u8]| {
    let Ok(manifest) = Manifest::parse(bytes, None) else {
        return;
    };

    let descriptors: Vec<&Descriptor> = match &manifest {
        Manifest::Image(image) => std::iter::once(&image.config)
            .chain(&image.layers)
            .collect(),
        Manifest::Index(index) => index.manifests.iter().collect(),
    };
    for descriptor in descriptors {
        if let Err(reason) = parse_digest(&descriptor.digest) {
            panic!(
                "accepted a descriptor with digest {:?}: {reason}",
                descriptor.digest
            );
        }
        assert!(
            descriptor.size >= 0,
            "accepted a negative size: {descriptor:?}"
        );
    }
});
