//! What one tar member says, gathered from its header and the extension headers before it
//! (PAX `x` records, GNU long names) before anything is written.

use std::io;

use tar::{EntryType, Header, PaxExtensions};

use super::entry_path::EntryPath;
use super::{ExtractError, Limits};

/// The extension headers that may precede a member, with the limit each one is held to.
#[derive(Debug, Clone, Copy)]
pub(super) enum ExtensionKind {
    Pax,
    PaxGlobal,
    LongName,
    LongLinkName,
}

impl ExtensionKind {
    /// The limit's name for [`ExtractError::LimitExceeded`] and its value.
    pub(super) fn limit(self, limits: &Limits) -> (&'static str, u64) {
        // A GNU long name carries a trailing NUL.
        let name_limit = limits.max_path_bytes as u64 + 1;
        match self {
            ExtensionKind::Pax => (
                "bytes in a PAX extended header",
                limits.max_pax_header_bytes,
            ),
            ExtensionKind::PaxGlobal => {
                ("bytes in a PAX global header", limits.max_pax_header_bytes)
            }
            ExtensionKind::LongName => ("bytes in a GNU long name", name_limit),
            ExtensionKind::LongLinkName => ("bytes in a GNU long link name", name_limit),
        }
    }
}

/// What extension headers said about the next member.
#[derive(Debug, Default)]
pub(super) struct Extensions {
    pax: Option<PaxRecords>,
    long_name: Option<Vec<u8>>,
    long_link_name: Option<Vec<u8>>,
}

/// The PAX records this profile uses; the rest (uid, gid, xattrs, ...) are ignored.
#[derive(Debug, Default)]
struct PaxRecords {
    path: Option<Vec<u8>>,
    link_path: Option<Vec<u8>>,
    size: Option<u64>,
    mtime: Option<u64>,
    sparse: bool,
}

impl Extensions {
    pub(super) fn is_pending(&self) -> bool {
        self.pax.is_some() || self.long_name.is_some() || self.long_link_name.is_some()
    }

    pub(super) fn set_pax(&mut self, data: &[u8]) -> Result<(), ExtractError> {
        if self.pax.is_some() {
            return Err(duplicate_extension("PAX extended headers"));
        }
        self.pax = Some(PaxRecords::parse(data)?);
        Ok(())
    }

    pub(super) fn set_long_name(&mut self, name: Vec<u8>) -> Result<(), ExtractError> {
        if self.long_name.is_some() {
            return Err(duplicate_extension("GNU long names"));
        }
        self.long_name = Some(trim_nul(name));
        Ok(())
    }

    pub(super) fn set_long_link_name(&mut self, name: Vec<u8>) -> Result<(), ExtractError> {
        if self.long_link_name.is_some() {
            return Err(duplicate_extension("GNU long link names"));
        }
        self.long_link_name = Some(trim_nul(name));
        Ok(())
    }
}

impl PaxRecords {
    fn parse(data: &[u8]) -> Result<PaxRecords, ExtractError> {
        let mut records = PaxRecords::default();
        for record in PaxExtensions::new(data) {
            let record =
                record.map_err(|e| ExtractError::Malformed(format!("PAX extended header: {e}")))?;
            // An empty value removes the record, leaving the header's own field in force.
            let value = Some(record.value_bytes()).filter(|v| !v.is_empty());
            match record.key_bytes() {
                b"path" => records.path = value.map(<[u8]>::to_vec),
                b"linkpath" => records.link_path = value.map(<[u8]>::to_vec),
                b"size" => records.size = value.map(parse_pax_size).transpose()?,
                b"mtime" => records.mtime = value.and_then(parse_pax_mtime),
                key if key.starts_with(b"GNU.sparse.") => records.sparse = true,
                _ => {}
            }
        }
        Ok(records)
    }
}

/// One member, described from its header and extension headers before anything is written.
#[derive(Debug)]
pub(super) struct Member {
    /// The name as written, for messages and logs.
    pub(super) name: String,
    /// The normalised name; `None` for the root itself.
    pub(super) path: Option<EntryPath>,
    pub(super) kind: MemberKind,
    pub(super) mode: u32,
    pub(super) mtime: Option<u64>,
    pub(super) link_name: Option<Vec<u8>>,
    pub(super) size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MemberKind {
    File,
    Directory,
    Symlink,
    HardLink,
    /// Not extracted; the text names the kind for the log.
    Skipped(&'static str),
}

impl Member {
    /// Combines the header with the extension headers that preceded it (PAX records first, then
    /// GNU long names, then the header's own fields) and checks the result against the profile.
    pub(super) fn describe(
        header: &Header,
        extensions: Extensions,
        limits: &Limits,
    ) -> Result<Member, ExtractError> {
        let pax = extensions.pax.unwrap_or_default();
        let raw_name = pax
            .path
            .or(extensions.long_name)
            .unwrap_or_else(|| header.path_bytes().into_owned());
        let name = String::from_utf8_lossy(&raw_name).into_owned();
        let malformed = |e: io::Error| ExtractError::Malformed(format!("header of {name}: {e}"));

        let size = header.entry_size().map_err(malformed)?;
        check_pax_size(&name, pax.size, size)?;
        let kind = member_kind(header, &raw_name).map_err(|reason| unsafe_named(&name, reason))?;
        if pax.sparse {
            return Err(unsafe_named(&name, "sparse files are not supported"));
        }

        let link_name = pax
            .link_path
            .or(extensions.long_link_name)
            .or_else(|| header.link_name_bytes().map(|n| n.into_owned()));
        if link_name
            .as_ref()
            .is_some_and(|n| n.len() > limits.max_path_bytes)
        {
            return Err(ExtractError::LimitExceeded {
                what: "bytes in a link name",
                limit: limits.max_path_bytes as u64,
            });
        }
        // Only a PAX `linkpath` can carry one. The kernel would refuse the symlink with EINVAL,
        // which would be reported as a failure of the cache's disk instead of a hostile layer.
        if link_name.as_ref().is_some_and(|n| n.contains(&0)) {
            return Err(unsafe_named(&name, "the link target contains a NUL byte"));
        }

        Ok(Member {
            path: EntryPath::parse(&raw_name, limits)?,
            kind,
            mode: header.mode().map_err(malformed)?,
            mtime: pax.mtime.or_else(|| header.mtime().ok()),
            link_name,
            size,
            name,
        })
    }
}

/// Maps a tar entry type to what the profile does with it.
fn member_kind(header: &Header, raw_name: &[u8]) -> Result<MemberKind, &'static str> {
    let kind = match header.entry_type() {
        // Pre-POSIX archives mark directories as type NUL with a trailing slash.
        EntryType::Regular if header.as_old().linkflag[0] == 0 && raw_name.ends_with(b"/") => {
            MemberKind::Directory
        }
        EntryType::Regular | EntryType::Continuous => MemberKind::File,
        EntryType::Directory => MemberKind::Directory,
        EntryType::Symlink => MemberKind::Symlink,
        EntryType::Link => MemberKind::HardLink,
        EntryType::Char => MemberKind::Skipped("character device"),
        EntryType::Block => MemberKind::Skipped("block device"),
        EntryType::Fifo => MemberKind::Skipped("fifo"),
        EntryType::GNUSparse => return Err("sparse files are not supported"),
        _ => MemberKind::Skipped("unknown entry type"),
    };
    Ok(kind)
}

/// Refuses a PAX size that differs from the header's: tar-rs in raw mode steps over the header's
/// size, and a reader that honoured the PAX value would see a different archive. A writer that
/// keeps a size too large for the header field only in PAX is therefore refused too; step layers
/// hold no file near that size (8 GiB in octal, unlimited in base-256).
fn check_pax_size(name: &str, pax_size: Option<u64>, header_size: u64) -> Result<(), ExtractError> {
    match pax_size {
        Some(pax) if pax != header_size => Err(unsafe_named(
            name,
            &format!("PAX size {pax} disagrees with the header size {header_size}"),
        )),
        _ => Ok(()),
    }
}

fn parse_pax_size(value: &[u8]) -> Result<u64, ExtractError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| {
            let shown = String::from_utf8_lossy(value);
            ExtractError::Malformed(format!("PAX size record {shown:?} is not a number"))
        })
}

/// Whole seconds of a PAX time (`1700000000.25`); times before the epoch are not applied.
fn parse_pax_mtime(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?;
    let seconds = text.split('.').next()?;
    seconds.parse().ok()
}

fn trim_nul(mut name: Vec<u8>) -> Vec<u8> {
    while name.last() == Some(&0) {
        name.pop();
    }
    name
}

fn duplicate_extension(what: &str) -> ExtractError {
    ExtractError::Malformed(format!("two {what} describe the same member"))
}

fn unsafe_named(name: &str, reason: &str) -> ExtractError {
    ExtractError::Unsafe {
        entry: name.to_string(),
        reason: reason.to_string(),
    }
}
