//! The byte streams under the tar reader: the raw blob, its decompressor and the budget that
//! bounds decompressed bytes.

use std::cell::Cell;
use std::fmt::Display;
use std::io::{self, Read};

use super::{ExtractError, Limits};

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// Read size for an uncompressed blob.
const PLAIN_BUFFER_BYTES: usize = 64 * 1024;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// gzip (RFC 1952), possibly several members back to back.
    Gzip,
    /// Zstandard frames.
    Zstd,
}

impl Compression {
    /// Reads the compression from an OCI or Docker layer media type.
    ///
    /// A type ending in `+gzip` or `.gzip` is [`Compression::Gzip`], one ending in `+zstd` is
    /// [`Compression::Zstd`], one ending in `tar` is [`Compression::None`]. Vendor types count,
    /// e.g. `application/vnd.gitlab.step.layer.v1.tar+zstd`. Anything else is
    /// [`ExtractError::UnsupportedMediaType`].
    pub fn from_media_type(media_type: &str) -> Result<Compression, ExtractError> {
        if media_type.ends_with("+gzip") || media_type.ends_with(".gzip") {
            Ok(Compression::Gzip)
        } else if media_type.ends_with("+zstd") {
            Ok(Compression::Zstd)
        } else if media_type.ends_with("tar") {
            Ok(Compression::None)
        } else {
            Err(ExtractError::UnsupportedMediaType(media_type.to_string()))
        }
    }

    /// Checks the declared compression against the blob's first bytes and returns the one to use.
    pub(super) fn confirm(
        self,
        media_type: &str,
        magic: &[u8],
    ) -> Result<Compression, ExtractError> {
        let found = Compression::sniff(magic);
        if self == Compression::None && found != Compression::None {
            tracing::warn!(
                media_type,
                detected = ?found,
                "layer compression taken from magic bytes"
            );
            return Ok(found);
        }
        if self != found {
            let detail = format!(
                "expected {} magic bytes {}, found {:?}",
                self.name(),
                hex::encode(self.magic()),
                hex::encode(magic)
            );
            return Err(ExtractError::CompressionMismatch {
                media_type: media_type.to_string(),
                detail,
            });
        }
        Ok(self)
    }

    fn name(self) -> &'static str {
        match self {
            Compression::None => "tar",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    fn magic(self) -> &'static [u8] {
        match self {
            Compression::None => &[],
            Compression::Gzip => GZIP_MAGIC,
            Compression::Zstd => ZSTD_MAGIC,
        }
    }

    /// The compression the first bytes show. A zstd blob that starts with a skippable frame
    /// shows none and is refused as a mismatch; registries and image builders do not write one.
    fn sniff(magic: &[u8]) -> Compression {
        if magic.starts_with(GZIP_MAGIC) {
            Compression::Gzip
        } else if magic.starts_with(ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Reads up to the length of the longest magic number; fewer bytes only at EOF.
pub(super) fn read_magic(blob: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut magic = Vec::with_capacity(ZSTD_MAGIC.len());
    blob.take(ZSTD_MAGIC.len() as u64).read_to_end(&mut magic)?;
    Ok(magic)
}

/// Wraps the raw blob in the decompressor `compression` names.
pub(super) fn decoder<'a>(
    compression: Compression,
    raw: impl Read + 'a,
) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        // tar-rs reads each header with its own 512-byte call; the decoders buffer already.
        Compression::None => Box::new(io::BufReader::with_capacity(PLAIN_BUFFER_BYTES, raw)),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(raw)?),
    })
}

/// Reads `reader` to EOF, discarding the bytes.
pub(super) fn drain(reader: &mut impl Read) -> io::Result<u64> {
    io::copy(reader, &mut io::sink())
}

/// The error for a failed read of the blob before any decoder is involved.
pub(super) fn blob_error(source: io::Error) -> ExtractError {
    ExtractError::Io {
        entry: "layer blob".to_string(),
        step: "reading",
        source,
    }
}

/// Records why the stream stopped, so that an `io::Error` surfacing through the decoder and the
/// tar reader can be told apart: the caller's blob failed, the budget ran out, or the data is bad.
#[derive(Debug, Default)]
pub(super) struct StreamFaults {
    blob_failed: Cell<bool>,
    budget_exhausted: Cell<bool>,
}

impl StreamFaults {
    /// Turns an error from the stream into the matching [`ExtractError`]; `context` says what was
    /// being read when the stream is corrupt.
    pub(super) fn classify(
        &self,
        context: impl Display,
        error: io::Error,
        limits: &Limits,
    ) -> ExtractError {
        if self.budget_exhausted.get() {
            ExtractError::LimitExceeded {
                what: "decompressed bytes",
                limit: limits.max_total_bytes,
            }
        } else if self.blob_failed.get() {
            blob_error(error)
        } else {
            ExtractError::Malformed(format!("{context}: {error}"))
        }
    }
}

/// The caller's blob, noting in [`StreamFaults`] when a read from it fails.
pub(super) struct BlobReader<'a, R> {
    inner: R,
    faults: &'a StreamFaults,
}

impl<'a, R: Read> BlobReader<'a, R> {
    pub(super) fn new(inner: R, faults: &'a StreamFaults) -> Self {
        BlobReader { inner, faults }
    }
}

impl<R: Read> Read for BlobReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if e.kind() != io::ErrorKind::Interrupted {
                self.faults.blob_failed.set(true);
            }
        })
    }
}

/// Decompressed bytes, failing once more than `limit` have been read. Counting what the decoder
/// produces, rather than what headers claim, is what stops a decompression bomb.
pub(super) struct BudgetReader<'a, R> {
    inner: R,
    remaining: u64,
    faults: &'a StreamFaults,
}

impl<'a, R: Read> BudgetReader<'a, R> {
    pub(super) fn new(inner: R, limit: u64, faults: &'a StreamFaults) -> Self {
        BudgetReader {
            inner,
            remaining: limit,
            faults,
        }
    }
}

impl<R: Read> Read for BudgetReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Ask for one byte past the budget so that a stream of exactly `limit` bytes passes.
        let want = buf.len().min(
            usize::try_from(self.remaining)
                .unwrap_or(usize::MAX)
                .saturating_add(1),
        );
        let n = self.inner.read(&mut buf[..want])?;
        match self.remaining.checked_sub(n as u64) {
            Some(left) => {
                self.remaining = left;
                Ok(n)
            }
            None => {
                self.faults.budget_exhausted.set(true);
                Err(io::Error::other(
                    "decompressed layer exceeds its byte limit",
                ))
            }
        }
    }
}
