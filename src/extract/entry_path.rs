//! Entry names as the profile sees them: relative, without `.` components, never with `..`.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;

use super::{ExtractError, Limits};

/// The longest file name the file systems the cache lives on accept (Linux's NAME_MAX). A longer
/// component is the layer's fault, so it is refused as such rather than failing as an I/O error.
const MAX_COMPONENT_BYTES: usize = 255;

/// A normalised entry name: one or more non-empty components joined by `/`, none of them `.`
/// or `..`. Only ever resolved component by component below the layer root.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct EntryPath(Vec<u8>);

impl EntryPath {
    /// Normalises a name as written in the archive. Returns `None` for the root itself (an empty
    /// name, `/`, `.`, `./`).
    pub(super) fn parse(raw: &[u8], limits: &Limits) -> Result<Option<EntryPath>, ExtractError> {
        let lossy = || String::from_utf8_lossy(raw).into_owned();
        if raw.len() > limits.max_path_bytes {
            return Err(ExtractError::LimitExceeded {
                what: "bytes in an entry name",
                limit: limits.max_path_bytes as u64,
            });
        }
        if raw.contains(&0) {
            return Err(unsafe_name(lossy(), "the name contains a NUL byte"));
        }

        let mut components = Vec::new();
        for component in raw.split(|&b| b == b'/') {
            match component {
                b"" | b"." => continue,
                b".." => return Err(unsafe_name(lossy(), "the name contains a `..` component")),
                long if long.len() > MAX_COMPONENT_BYTES => {
                    return Err(ExtractError::LimitExceeded {
                        what: "bytes in one component of an entry name",
                        limit: MAX_COMPONENT_BYTES as u64,
                    })
                }
                _ => components.push(component),
            }
        }

        if components.len() > limits.max_depth {
            return Err(ExtractError::LimitExceeded {
                what: "components in an entry name",
                limit: limits.max_depth as u64,
            });
        }
        if components.is_empty() {
            return Ok(None);
        }
        Ok(Some(EntryPath(components.join(&b'/'))))
    }

    /// The components before the last one.
    pub(super) fn parents(&self) -> impl Iterator<Item = &OsStr> {
        let mut all = self.components();
        all.next_back();
        all
    }

    /// The last component.
    pub(super) fn file_name(&self) -> &OsStr {
        let last = self.0.rsplit(|&b| b == b'/').next().unwrap_or(&self.0);
        OsStr::from_bytes(last)
    }

    /// The first `count` components joined by `/`, for messages about a parent directory.
    pub(super) fn prefix(&self, count: usize) -> String {
        let end = self
            .0
            .iter()
            .enumerate()
            .filter(|(_, &b)| b == b'/')
            .nth(count.saturating_sub(1))
            .map_or(self.0.len(), |(i, _)| i);
        String::from_utf8_lossy(&self.0[..end]).into_owned()
    }

    fn components(&self) -> impl DoubleEndedIterator<Item = &OsStr> {
        self.0.split(|&b| b == b'/').map(OsStr::from_bytes)
    }
}

impl fmt::Display for EntryPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

fn unsafe_name(entry: String, reason: &str) -> ExtractError {
    ExtractError::Unsafe {
        entry,
        reason: reason.to_string(),
    }
}
