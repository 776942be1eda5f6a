//! Generates the C header with cbindgen.
//!
//! Every build writes a fresh header to `$OUT_DIR/oci_cache.h`. The committed copy,
//! `include/oci_cache.h`, is rewritten only when it is missing or `OCI_CACHE_UPDATE_HEADER=1`
//! is set, so that the test `tests/header.rs` can fail when the committed copy is stale.

use std::path::PathBuf;

fn main() {
    let crate_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let committed = crate_dir.join("include").join("oci_cache.h");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=OCI_CACHE_UPDATE_HEADER");

    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is valid");
    let bindings = match cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
    {
        Ok(bindings) => bindings,
        Err(error) => panic!("generating the C header: {error}"),
    };

    bindings.write_to_file(out_dir.join("oci_cache.h"));
    if !committed.exists() || std::env::var_os("OCI_CACHE_UPDATE_HEADER").is_some_and(|v| v == "1")
    {
        bindings.write_to_file(&committed);
    }
}
