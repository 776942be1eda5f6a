//! Layer extraction: turns one layer blob into a directory tree below a staging directory.
//!
//! The caller hands us the raw blob, its media type and an empty private staging directory
//! (`root`); it renames the directory into place on success and deletes it on error.
//!
//! # Extraction profile
//!
//! Every file-system operation goes through a [`cap_std::fs::Dir`] handle and names a single
//! component, so nothing is ever resolved against the process working directory.
//!
//! - **Stream.** The media type chooses the decompressor, and the magic bytes must agree: a blob
//!   declared gzip or zstd that is not is refused; a blob declared plain tar that carries gzip or
//!   zstd magic is decompressed. Every decompressed byte (headers included) counts against
//!   [`Limits::max_total_bytes`]. After the end-of-archive marker the rest of the decompressed
//!   stream and of the raw blob is read to EOF, so a hashing reader sees every byte and the
//!   decoder checks its trailer.
//! - **Names.** Leading `/` and `./` are stripped and `.` components dropped; an empty name (the
//!   root itself) is skipped. A `..` component, or a NUL byte in a name or a link target, refuses
//!   the whole layer. Names are bounded in bytes and depth.
//! - **Parents** are opened one component at a time from `root` without following symlinks;
//!   missing ones are created with mode 0755. A parent that is a symlink or not a directory
//!   refuses the layer. No directory handle is kept from one entry to the next.
//! - **Regular files** replace whatever was at their name (a directory tree is removed, a symlink
//!   is unlinked, never written through), are created exclusively without following symlinks, get
//!   `mode & 0o777` (setuid, setgid and sticky dropped) and, best effort, the header's mtime.
//!   Whiteouts (`.wh.*`) are ordinary files here; a later merge step interprets them.
//! - **Directories** are kept if one exists, otherwise created (a symlink or file at the name is
//!   replaced, never chmod-ed through); their mode is `(mode & 0o777) | 0o700` so the cache can
//!   always remove them. Directory mtimes are not applied.
//! - **Symlinks** keep their target text exactly, absolute or relative, even when it points
//!   outside: the target is never followed during extraction.
//! - **Hard links** may only name a regular file extracted earlier in the same layer (name
//!   normalised like entry names); anything else refuses the layer.
//! - **Devices and FIFOs** (and unknown entry types) are skipped with a warning and counted in
//!   [`ExtractStats::skipped`].
//! - **Sparse files** (GNU type `S` or PAX `GNU.sparse.*` records) refuse the layer: step images
//!   never contain them and their maps are a known source of parser bugs.
//! - **Extension headers.** PAX `x` records and GNU long names are read by this module, with
//!   their size checked before any byte is buffered; PAX global headers are ignored. A PAX `size`
//!   that disagrees with the header's size refuses the layer, since parsers that disagree on it
//!   see different archives.
//! - Ownership and extended attributes are not applied (we run unprivileged).

mod decompress;
mod entry_path;
mod member;
mod nofollow;
mod unpack;

#[cfg(test)]
mod tests;

use std::io::Read;

use cap_std::fs::Dir;

pub use decompress::Compression;

/// Bounds on what one layer may contain. Real step images stay far below every default.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Tar members, extension headers not counted. Default: 1,000,000.
    pub max_entries: u64,
    /// Decompressed bytes of the tar stream, headers and padding included. Default: 64 GiB.
    pub max_total_bytes: u64,
    /// Bytes of an entry name or link name as written in the archive. Default: 4096.
    pub max_path_bytes: usize,
    /// Components of an entry name after normalisation. Default: 256.
    pub max_depth: usize,
    /// Bytes of one PAX extended header (`x` or `g`). Default: 1 MiB.
    pub max_pax_header_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 1_000_000,
            max_total_bytes: 64 << 30,
            max_path_bytes: 4096,
            max_depth: 256,
            max_pax_header_bytes: 1 << 20,
        }
    }
}

/// What extraction produced.
#[derive(Debug, Default, Clone)]
pub struct ExtractStats {
    /// Tar members processed, extension headers not counted.
    pub entries: u64,
    /// Regular files written (hard links not counted).
    pub files: u64,
    /// Bytes of regular-file contents written.
    pub bytes: u64,
    /// Members not extracted: devices, FIFOs, unknown types, a non-directory named like the root.
    pub skipped: u64,
}

/// Why a layer could not be extracted.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The media type names no compression we handle.
    #[error("unsupported layer media type {0:?}")]
    UnsupportedMediaType(String),

    /// The media type promises a compression the blob's magic bytes do not show.
    #[error("layer media type {media_type} does not match the blob: {detail}")]
    CompressionMismatch {
        /// The media type as given.
        media_type: String,
        /// What was expected and what was found.
        detail: String,
    },

    /// An entry would escape the root, or is of a kind the profile forbids.
    #[error("refusing layer entry {entry}: {reason}")]
    Unsafe {
        /// The entry's name (normalised where possible).
        entry: String,
        /// Why the entry was refused.
        reason: String,
    },

    /// The layer passes one of the [`Limits`].
    #[error("layer exceeds the limit of {limit} {what}")]
    LimitExceeded {
        /// Which limit, e.g. `"entries"` or `"decompressed bytes"`.
        what: &'static str,
        /// The limit's value.
        limit: u64,
    },

    /// The tar or decompression stream is corrupt; the text includes the decoder's cause.
    #[error("malformed layer: {0}")]
    Malformed(String),

    /// A file-system operation, or reading the blob itself, failed.
    #[error("{step} {entry}: {source}")]
    Io {
        /// The entry being extracted, or `layer blob` when reading the blob failed.
        entry: String,
        /// What was being done, e.g. `"creating file"`.
        step: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Decompresses `blob` and extracts its tar stream into `root`, following the profile described
/// in the module documentation.
///
/// `media_type` chooses the decompressor (see [`Compression::from_media_type`]); the blob's magic
/// bytes must agree. The blob is read to EOF on success, even past the tar end-of-archive marker,
/// so a caller that hashes it sees every byte. `root` should be an empty private directory; on
/// error it may hold a partial tree, which the caller deletes.
pub fn extract_layer(
    blob: impl Read,
    media_type: &str,
    root: &Dir,
    limits: &Limits,
) -> Result<ExtractStats, ExtractError> {
    let declared = Compression::from_media_type(media_type)?;
    let faults = decompress::StreamFaults::default();
    let mut blob = decompress::BlobReader::new(blob, &faults);

    let magic = decompress::read_magic(&mut blob).map_err(decompress::blob_error)?;
    let compression = declared.confirm(media_type, &magic)?;
    let mut raw = magic.as_slice().chain(&mut blob);

    let stats = {
        let decoded = decompress::decoder(compression, &mut raw)
            .map_err(|e| faults.classify("starting the decompressor", e, limits))?;
        let stream = decompress::BudgetReader::new(decoded, limits.max_total_bytes, &faults);
        unpack::Unpacker::new(root, limits, &faults).run(stream)?
    };

    // A decoder may stop at the end of its own framing; the caller's hash needs the rest too.
    decompress::drain(&mut raw)
        .map_err(|e| faults.classify("reading past the compressed stream", e, limits))?;

    tracing::debug!(
        media_type,
        compression = ?compression,
        entries = stats.entries,
        files = stats.files,
        bytes = stats.bytes,
        skipped = stats.skipped,
        "layer extracted"
    );
    Ok(stats)
}
