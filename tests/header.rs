//! The committed C header must be what cbindgen generates from the current sources.

#[test]
fn committed_header_matches_a_fresh_generation() {
    let fresh = std::fs::read_to_string(concat!(env!("OUT_DIR"), "/oci_cache.h"))
        .expect("build.rs wrote a header");
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/oci_cache.h"))
            .expect("include/oci_cache.h is committed");
    assert!(
        fresh == committed,
        "include/oci_cache.h is stale: run `OCI_CACHE_UPDATE_HEADER=1 cargo build` and commit it"
    );
}
