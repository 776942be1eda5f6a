//! Image references: parsing never panics, and a parsed reference prints as text that parses
//! back to the same reference (the tag record and the log lines rely on that).

#![no_main]

use libfuzzer_sys::fuzz_target;
use oci_cache::ImageReference;

fuzz_target!(|text: &str| {
    let Ok(reference) = ImageReference::parse(text) else {
        return;
    };

    let printed = reference.to_string();
    let reparsed = ImageReference::parse(&printed)
        .unwrap_or_else(|e| panic!("{text:?} parsed, but its printed form {printed:?} not: {e}"));
    assert_eq!(
        reparsed, reference,
        "{text:?} printed as {printed:?} parses to another reference"
    );
    assert_eq!(reparsed.mutability(), reference.mutability());
});
