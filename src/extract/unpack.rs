//! Walks the tar stream member by member and applies each one to the staging directory.
//!
//! tar-rs runs in raw mode: it hands us every header, extension headers included, so that PAX
//! records and GNU long names are size-checked before a byte of them is buffered (see
//! [`super::member`] for how they are interpreted).

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::Permissions;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use cap_std::fs::Dir;
use tar::{Archive, Entry, EntryType};

use super::decompress::{drain, StreamFaults};
use super::entry_path::EntryPath;
use super::member::{ExtensionKind, Extensions, Member, MemberKind};
use super::nofollow::{self, io_error, MissingParent};
use super::{ExtractError, ExtractStats, Limits};

/// Size of the buffer file contents are copied through.
const COPY_BUFFER_BYTES: usize = 256 * 1024;

/// The permission bits a regular file keeps: read and execute, never write, setuid, setgid or
/// sticky.
const READ_ONLY_FILE_MODE: u32 = 0o555;

/// Extracts one tar stream into `root`.
pub(super) struct Unpacker<'a> {
    root: &'a Dir,
    limits: &'a Limits,
    faults: &'a StreamFaults,
    stats: ExtractStats,
    /// Regular files written so far: the only valid hard-link targets.
    regular_files: HashSet<EntryPath>,
    /// The last member seen, to say where a corrupt stream went wrong.
    last_entry: Option<String>,
    buffer: Vec<u8>,
}

impl<'a> Unpacker<'a> {
    pub(super) fn new(root: &'a Dir, limits: &'a Limits, faults: &'a StreamFaults) -> Self {
        Unpacker {
            root,
            limits,
            faults,
            stats: ExtractStats::default(),
            regular_files: HashSet::new(),
            last_entry: None,
            buffer: vec![0; COPY_BUFFER_BYTES],
        }
    }

    /// Extracts every member, then reads the stream to its end.
    pub(super) fn run(mut self, stream: impl Read) -> Result<ExtractStats, ExtractError> {
        let mut archive = Archive::new(stream);
        archive.set_ignore_zeros(false);
        self.unpack_members(&mut archive)?;

        // Padding after the end-of-archive marker still counts against the budget, and the
        // decoder verifies its checksum only when it reaches its end.
        let mut rest = archive.into_inner();
        drain(&mut rest).map_err(|e| {
            self.faults
                .classify("reading past the tar end-of-archive marker", e, self.limits)
        })?;
        Ok(self.stats)
    }

    fn unpack_members<R: Read>(&mut self, archive: &mut Archive<R>) -> Result<(), ExtractError> {
        let entries = archive.entries().map_err(|e| self.stream_error(e))?;
        let mut extensions = Extensions::default();

        for entry in entries.raw(true) {
            let mut entry = entry.map_err(|e| self.stream_error(e))?;
            match entry.header().entry_type() {
                EntryType::XHeader => {
                    let data = self.read_extension(&mut entry, ExtensionKind::Pax)?;
                    extensions.set_pax(&data)?;
                }
                EntryType::XGlobalHeader => {
                    // Read only to check its size; global records are not applied.
                    self.read_extension(&mut entry, ExtensionKind::PaxGlobal)?;
                }
                EntryType::GNULongName => {
                    let name = self.read_extension(&mut entry, ExtensionKind::LongName)?;
                    extensions.set_long_name(name)?;
                }
                EntryType::GNULongLink => {
                    let name = self.read_extension(&mut entry, ExtensionKind::LongLinkName)?;
                    extensions.set_long_link_name(name)?;
                }
                _ => self.extract_member(&mut entry, std::mem::take(&mut extensions))?,
            }
        }

        if extensions.is_pending() {
            return Err(ExtractError::Malformed(
                "extension header at the end of the archive describes no member".to_string(),
            ));
        }
        Ok(())
    }

    /// Reads the data of an extension header, refusing it before buffering if it is too large.
    fn read_extension<R: Read>(
        &mut self,
        entry: &mut Entry<'_, R>,
        kind: ExtensionKind,
    ) -> Result<Vec<u8>, ExtractError> {
        let (what, limit) = kind.limit(self.limits);
        let size = entry.size();
        if size > limit {
            return Err(ExtractError::LimitExceeded { what, limit });
        }

        let mut data = Vec::with_capacity(size as usize);
        entry
            .read_to_end(&mut data)
            .map_err(|e| self.stream_error(e))?;
        if data.len() as u64 != size {
            return Err(ExtractError::Malformed(format!(
                "{what}: the archive ends after {} of {size} bytes",
                data.len()
            )));
        }
        Ok(data)
    }

    fn extract_member<R: Read>(
        &mut self,
        entry: &mut Entry<'_, R>,
        extensions: Extensions,
    ) -> Result<(), ExtractError> {
        self.count_member()?;
        let member = Member::describe(entry.header(), extensions, self.limits)?;
        self.last_entry = Some(member.name.clone());

        let Some(path) = member.path.clone() else {
            return self.skip_root(&member);
        };
        match member.kind {
            MemberKind::File => self.write_file(&path, &member, entry),
            MemberKind::Directory => self.make_dir(&path, &member),
            MemberKind::Symlink => self.make_symlink(&path, &member),
            MemberKind::HardLink => self.make_hard_link(&path, &member),
            MemberKind::Skipped(kind) => {
                self.skip(&member.name, kind);
                Ok(())
            }
        }
    }

    fn count_member(&mut self) -> Result<(), ExtractError> {
        self.stats.entries += 1;
        if self.stats.entries > self.limits.max_entries {
            return Err(ExtractError::LimitExceeded {
                what: "entries",
                limit: self.limits.max_entries,
            });
        }
        Ok(())
    }

    fn skip_root(&mut self, member: &Member) -> Result<(), ExtractError> {
        match member.kind {
            MemberKind::Directory => {
                tracing::debug!(entry = %member.name, "root directory entry ignored")
            }
            MemberKind::Skipped(kind) => self.skip(&member.name, kind),
            _ => self.skip(&member.name, "non-directory named like the root"),
        }
        Ok(())
    }

    fn skip(&mut self, name: &str, kind: &'static str) {
        tracing::warn!(entry = name, kind, "layer entry skipped");
        self.stats.skipped += 1;
    }

    fn write_file<R: Read>(
        &mut self,
        path: &EntryPath,
        member: &Member,
        entry: &mut Entry<'_, R>,
    ) -> Result<(), ExtractError> {
        let parent = nofollow::open_parent(self.root, path, MissingParent::Create, path)?;
        let name = path.file_name();
        nofollow::remove_existing(&parent, name)
            .map_err(|e| io_error(path, "replacing any earlier entry at", e))?;
        let mut file =
            nofollow::create_file(&parent, name).map_err(|e| io_error(path, "creating file", e))?;

        let written = self.copy_contents(entry, &mut file, path)?;
        if written != member.size {
            return Err(ExtractError::Malformed(format!(
                "data of {path} ends after {written} of {} bytes",
                member.size
            )));
        }

        // Cached files are shared by every job on the host: they are stored read-only, so that
        // a step cannot change the shared copy by accident (root can, on purpose).
        file.set_permissions(Permissions::from_mode(member.mode & READ_ONLY_FILE_MODE))
            .map_err(|e| io_error(path, "setting the mode of file", e))?;
        if let Some(mtime) = member.mtime {
            let when = SystemTime::UNIX_EPOCH + Duration::from_secs(mtime);
            if let Err(error) = file.set_modified(when) {
                tracing::debug!(entry = %path, %error, "file mtime not applied");
            }
        }

        self.stats.files += 1;
        self.stats.bytes += written;
        self.regular_files.insert(path.clone());
        Ok(())
    }

    fn copy_contents<R: Read>(
        &mut self,
        entry: &mut Entry<'_, R>,
        file: &mut std::fs::File,
        path: &EntryPath,
    ) -> Result<u64, ExtractError> {
        let mut written = 0u64;
        loop {
            let n = match entry.read(&mut self.buffer) {
                Ok(0) => return Ok(written),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let context = format!("reading the data of {path}");
                    return Err(self.faults.classify(context, e, self.limits));
                }
            };
            file.write_all(&self.buffer[..n])
                .map_err(|e| io_error(path, "writing file", e))?;
            written += n as u64;
        }
    }

    fn make_dir(&mut self, path: &EntryPath, member: &Member) -> Result<(), ExtractError> {
        let parent = nofollow::open_parent(self.root, path, MissingParent::Create, path)?;
        let name = path.file_name();
        nofollow::ensure_dir(&parent, name).map_err(|e| io_error(path, "creating directory", e))?;

        // Owner access is forced so that the cache can always remove the tree later.
        nofollow::set_dir_mode(&parent, name, (member.mode & 0o777) | 0o700)
            .map_err(|e| io_error(path, "setting the mode of directory", e))?;

        self.regular_files.remove(path);
        Ok(())
    }

    fn make_symlink(&mut self, path: &EntryPath, member: &Member) -> Result<(), ExtractError> {
        let target = match member.link_name.as_deref() {
            Some(target) if !target.is_empty() => OsStr::from_bytes(target),
            _ => return Err(unsafe_entry(path, "symbolic link without a target")),
        };

        let parent = nofollow::open_parent(self.root, path, MissingParent::Create, path)?;
        let name = path.file_name();
        nofollow::remove_existing(&parent, name)
            .map_err(|e| io_error(path, "replacing any earlier entry at", e))?;
        parent
            .symlink_contents(target, name)
            .map_err(|e| io_error(path, "creating symbolic link", e))?;

        self.regular_files.remove(path);
        Ok(())
    }

    fn make_hard_link(&mut self, path: &EntryPath, member: &Member) -> Result<(), ExtractError> {
        let target = self.hard_link_target(path, member)?;
        if &target == path {
            tracing::debug!(entry = %path, "hard link to itself ignored");
            return Ok(());
        }

        let source_dir = nofollow::open_parent(self.root, &target, MissingParent::Refuse, path)?;
        let source_name = target.file_name();
        let is_file = nofollow::is_regular_file(&source_dir, source_name).unwrap_or(false);
        if !is_file {
            let reason = format!("hard link target {target} is no longer a regular file");
            return Err(unsafe_entry(path, reason));
        }

        let parent = nofollow::open_parent(self.root, path, MissingParent::Create, path)?;
        let name = path.file_name();
        nofollow::remove_existing(&parent, name)
            .map_err(|e| io_error(path, "replacing any earlier entry at", e))?;
        source_dir
            .hard_link(source_name, &parent, name)
            .map_err(|e| io_error(path, "creating hard link", e))?;

        self.regular_files.insert(path.clone());
        Ok(())
    }

    /// Normalises a hard link's target and checks that it is a regular file of this layer.
    fn hard_link_target(
        &self,
        path: &EntryPath,
        member: &Member,
    ) -> Result<EntryPath, ExtractError> {
        let raw = member.link_name.as_deref().unwrap_or_default();
        let shown = String::from_utf8_lossy(raw);
        let target = match EntryPath::parse(raw, self.limits) {
            Ok(Some(target)) => target,
            Ok(None) => {
                let reason = format!("hard link target {shown:?} names the layer root");
                return Err(unsafe_entry(path, reason));
            }
            Err(ExtractError::Unsafe { reason, .. }) => {
                let reason = format!("hard link target {shown:?} is refused: {reason}");
                return Err(unsafe_entry(path, reason));
            }
            Err(other) => return Err(other),
        };

        if !self.regular_files.contains(&target) {
            let reason = format!(
                "hard link target {target} is not a regular file extracted earlier in this layer"
            );
            return Err(unsafe_entry(path, reason));
        }
        Ok(target)
    }

    /// Classifies an error from the tar reader or the stream under it.
    fn stream_error(&self, error: io::Error) -> ExtractError {
        let context = match &self.last_entry {
            Some(name) => format!("reading the tar header after {name}"),
            None => "reading the first tar header".to_string(),
        };
        self.faults.classify(context, error, self.limits)
    }
}

fn unsafe_entry(path: &EntryPath, reason: impl Into<String>) -> ExtractError {
    ExtractError::Unsafe {
        entry: path.to_string(),
        reason: reason.into(),
    }
}
