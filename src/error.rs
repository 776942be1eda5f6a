//! Errors of the cache, each saying what failed, on what, and why.
//!
//! [`Error`] is the one error type of the Rust API. Its [`ErrorCode`] is the stable, append-only
//! number that the C ABI returns and that the bindings map to their own error types.

use crate::extract::ExtractError;

/// The stable result codes of the library. Values are append-only: a code never changes meaning.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Success.
    Ok = 0,
    /// An argument was missing (NULL), not UTF-8, or out of range.
    InvalidArgument = 1,
    /// The image reference is malformed.
    InvalidReference = 2,
    /// The registry has no such repository, tag, manifest or blob.
    NotFound = 3,
    /// The registry refused the credentials, or asked for some.
    Unauthorized = 4,
    /// Bytes did not match their digest or size.
    Integrity = 5,
    /// A layer tried to write outside its directory, or holds a forbidden entry.
    UnsafeLayer = 6,
    /// The registry could not be reached, or the connection failed.
    Network = 7,
    /// A file-system operation on the cache failed.
    Io = 8,
    /// The caller cancelled the operation.
    Cancelled = 9,
    /// A media type, manifest schema or option the library does not support.
    Unsupported = 10,
    /// An index has no entry for the requested platform.
    NoMatchingPlatform = 11,
    /// The registry answered with something that is not valid (bad manifest, bad status).
    Registry = 12,
    /// The handle was closed or freed (or is not a handle of this library).
    Closed = 13,
    /// A bug: the library panicked. The panic was caught at the boundary.
    Panic = 14,
    /// The operation needs data that is not in the cache and the network may not be used.
    NotCached = 15,
}

impl ErrorCode {
    /// Every code, in order.
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::Ok,
        ErrorCode::InvalidArgument,
        ErrorCode::InvalidReference,
        ErrorCode::NotFound,
        ErrorCode::Unauthorized,
        ErrorCode::Integrity,
        ErrorCode::UnsafeLayer,
        ErrorCode::Network,
        ErrorCode::Io,
        ErrorCode::Cancelled,
        ErrorCode::Unsupported,
        ErrorCode::NoMatchingPlatform,
        ErrorCode::Registry,
        ErrorCode::Closed,
        ErrorCode::Panic,
        ErrorCode::NotCached,
    ];

    /// The code with this number, if this version knows it.
    pub fn from_u32(code: u32) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| *c as u32 == code)
    }

    /// A short lowercase name of the code, stable for logs and JSON.
    pub fn name(self) -> &'static str {
        self.c_name().to_str().expect("code names are ASCII")
    }

    /// The name as a static C string, for the C ABI.
    pub fn c_name(self) -> &'static std::ffi::CStr {
        match self {
            ErrorCode::Ok => c"ok",
            ErrorCode::InvalidArgument => c"invalid_argument",
            ErrorCode::InvalidReference => c"invalid_reference",
            ErrorCode::NotFound => c"not_found",
            ErrorCode::Unauthorized => c"unauthorized",
            ErrorCode::Integrity => c"integrity",
            ErrorCode::UnsafeLayer => c"unsafe_layer",
            ErrorCode::Network => c"network",
            ErrorCode::Io => c"io",
            ErrorCode::Cancelled => c"cancelled",
            ErrorCode::Unsupported => c"unsupported",
            ErrorCode::NoMatchingPlatform => c"no_matching_platform",
            ErrorCode::Registry => c"registry",
            ErrorCode::Closed => c"closed",
            ErrorCode::Panic => c"panic",
            ErrorCode::NotCached => c"not_cached",
        }
    }
}

/// Every error of the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A function argument was missing, not UTF-8, or out of range.
    #[error("invalid argument {name}: {reason}")]
    InvalidArgument {
        /// The argument's name.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// The reference string could not be parsed.
    #[error("invalid reference {reference:?}: {reason}")]
    InvalidReference {
        /// The text as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The registry answered 404 for something.
    #[error("{what} of {reference}: not found in the registry")]
    NotFound {
        /// What was asked for ("manifest sha256:...", "blob sha256:...").
        what: String,
        /// The image reference.
        reference: String,
    },

    /// The registry answered 401 or 403.
    #[error("{what} of {reference}: unauthorized: {detail}")]
    Unauthorized {
        /// What was asked for.
        what: String,
        /// The image reference.
        reference: String,
        /// The registry's words.
        detail: String,
    },

    /// Content did not match its descriptor.
    #[error("{what} of {reference}: {detail}")]
    Integrity {
        /// What was checked ("blob sha256:...").
        what: String,
        /// The image reference.
        reference: String,
        /// Expected and found values.
        detail: String,
    },

    /// A layer holds an entry that the extraction profile refuses.
    #[error("layer {digest} of {reference}: {source}")]
    Extract {
        /// The layer digest.
        digest: String,
        /// The image reference.
        reference: String,
        /// What the extractor found.
        #[source]
        source: ExtractError,
    },

    /// The network failed.
    #[error("{what} of {reference}: network error: {detail}")]
    Network {
        /// What was being fetched.
        what: String,
        /// The image reference.
        reference: String,
        /// The transport's explanation, with its causes.
        detail: String,
    },

    /// The registry answered with something that is not valid.
    #[error("{what} of {reference}: {detail}")]
    Registry {
        /// What was being fetched.
        what: String,
        /// The image reference.
        reference: String,
        /// What is wrong with the answer.
        detail: String,
    },

    /// A file-system step on the cache failed.
    #[error("{step} {path}: {source}")]
    Io {
        /// The step ("creating directory", "publishing layer", ...).
        step: &'static str,
        /// The path it acted on.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// The caller cancelled the operation.
    #[error("fetch of {reference} cancelled")]
    Cancelled {
        /// The image reference.
        reference: String,
    },

    /// A media type or schema the library does not support.
    #[error("{what} of {reference}: unsupported: {detail}")]
    Unsupported {
        /// What was found.
        what: String,
        /// The image reference.
        reference: String,
        /// Why it is unsupported.
        detail: String,
    },

    /// No entry of an index fits the platform.
    #[error(
        "index {digest} of {reference}: no manifest for platform {platform} \
         (available: {available})"
    )]
    NoMatchingPlatform {
        /// The index digest.
        digest: String,
        /// The image reference.
        reference: String,
        /// The platform asked for.
        platform: String,
        /// The platforms the index offers.
        available: String,
    },

    /// The cache handle was closed.
    #[error("the cache handle is closed")]
    Closed,

    /// A C handle that is not live: freed or closed already, or not made by this library.
    #[error("{name} is not a live handle (closed or freed already?)")]
    StaleHandle {
        /// The argument's name.
        name: &'static str,
    },

    /// A panic caught at the C boundary.
    #[error("internal error (panic): {0}")]
    Panic(String),

    /// The data is not cached and the network may not be used.
    #[error("{reference}: not cached ({detail})")]
    NotCached {
        /// The image reference.
        reference: String,
        /// What is missing.
        detail: String,
    },
}

impl Error {
    /// The stable result code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidArgument { .. } => ErrorCode::InvalidArgument,
            Error::InvalidReference { .. } => ErrorCode::InvalidReference,
            Error::NotFound { .. } => ErrorCode::NotFound,
            Error::Unauthorized { .. } => ErrorCode::Unauthorized,
            Error::Integrity { .. } => ErrorCode::Integrity,
            Error::Extract { source, .. } => extract_code(source),
            Error::Network { .. } => ErrorCode::Network,
            Error::Registry { .. } => ErrorCode::Registry,
            Error::Io { .. } => ErrorCode::Io,
            Error::Cancelled { .. } => ErrorCode::Cancelled,
            Error::Unsupported { .. } => ErrorCode::Unsupported,
            Error::NoMatchingPlatform { .. } => ErrorCode::NoMatchingPlatform,
            Error::Closed | Error::StaleHandle { .. } => ErrorCode::Closed,
            Error::Panic(_) => ErrorCode::Panic,
            Error::NotCached { .. } => ErrorCode::NotCached,
        }
    }

    /// An I/O error on a cache path.
    pub(crate) fn io(
        step: &'static str,
        path: impl AsRef<std::path::Path>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.as_ref().display().to_string();
        move |source| Error::Io { step, path, source }
    }
}

/// Which code an extraction failure maps to: a refused entry is unsafe, a broken stream is an
/// integrity failure, a full disk is I/O.
fn extract_code(error: &ExtractError) -> ErrorCode {
    match error {
        ExtractError::Unsafe { .. } | ExtractError::LimitExceeded { .. } => ErrorCode::UnsafeLayer,
        ExtractError::UnsupportedMediaType(_) => ErrorCode::Unsupported,
        ExtractError::CompressionMismatch { .. } | ExtractError::Malformed(_) => {
            ErrorCode::Integrity
        }
        ExtractError::Io { .. } => ErrorCode::Io,
    }
}

/// The result type of the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
