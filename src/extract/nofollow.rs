//! File-system steps that never follow a symlink. Each names one component relative to an open
//! directory handle; the caller resolves parents afresh for every entry.

use std::ffi::OsStr;
use std::fs::Permissions;
use std::io;
use std::os::unix::fs::PermissionsExt;

use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt, OpenOptionsMaybeDirExt};
use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};

use super::entry_path::EntryPath;
use super::ExtractError;

/// Mode of a parent directory the archive does not list itself.
const IMPLICIT_DIR_MODE: u32 = 0o755;

/// What to do when a parent directory does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MissingParent {
    /// Create it with mode 0755 (entries being extracted).
    Create,
    /// Refuse (hard-link targets, which must already exist).
    Refuse,
}

/// Opens the directory that will hold `path`, walking from `root` one component at a time
/// without following symlinks. `entry` names the member being extracted, for errors.
pub(super) fn open_parent(
    root: &Dir,
    path: &EntryPath,
    missing: MissingParent,
    entry: &EntryPath,
) -> Result<Dir, ExtractError> {
    let mut current = root
        .try_clone()
        .map_err(|source| io_error(entry, "duplicating the layer root handle for", source))?;

    for (depth, name) in path.parents().enumerate() {
        current = open_child_dir(&current, name, missing).map_err(|fault| {
            let parent = path.prefix(depth + 1);
            fault.into_error(entry, &parent)
        })?;
    }
    Ok(current)
}

/// Removes whatever is at `name`: a directory tree, or a file or symlink (the link itself).
pub(super) fn remove_existing(parent: &Dir, name: &OsStr) -> io::Result<()> {
    match parent.symlink_metadata(name) {
        Ok(meta) if meta.is_dir() => parent.remove_dir_all(name),
        Ok(_) => parent.remove_file(name),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Makes `name` a real directory: keeps one that exists, replaces a symlink or file.
pub(super) fn ensure_dir(parent: &Dir, name: &OsStr) -> io::Result<()> {
    match parent.symlink_metadata(name) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => parent.remove_file(name)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    parent.create_dir(name)
}

/// Sets the mode of the directory `name` through a handle opened without following symlinks,
/// so a symlink swapped in at that name can never redirect the chmod.
pub(super) fn set_dir_mode(parent: &Dir, name: &OsStr, mode: u32) -> io::Result<()> {
    let dir = parent
        .open_with(
            name,
            OpenOptions::new()
                .read(true)
                .maybe_dir(true)
                .follow(FollowSymlinks::No)
                .custom_flags(libc::O_DIRECTORY),
        )?
        .into_std();
    dir.set_permissions(Permissions::from_mode(mode))
}

/// Creates the regular file `name`, failing if anything exists there. Only the owner can read it
/// until the caller sets its final mode.
pub(super) fn create_file(parent: &Dir, name: &OsStr) -> io::Result<std::fs::File> {
    let file = parent.open_with(
        name,
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .follow(FollowSymlinks::No)
            .mode(0o600),
    )?;
    Ok(file.into_std())
}

/// True when `name` is a regular file (not a symlink to one).
pub(super) fn is_regular_file(parent: &Dir, name: &OsStr) -> io::Result<bool> {
    Ok(parent.symlink_metadata(name)?.is_file())
}

/// Builds an [`ExtractError::Io`] for `entry`.
pub(super) fn io_error(entry: &EntryPath, step: &'static str, source: io::Error) -> ExtractError {
    ExtractError::Io {
        entry: entry.to_string(),
        step,
        source,
    }
}

/// Why a parent component could not be opened.
enum ParentFault {
    Symlink,
    NotDirectory,
    Missing,
    Io(&'static str, io::Error),
}

impl ParentFault {
    fn into_error(self, entry: &EntryPath, parent: &str) -> ExtractError {
        let reason = match self {
            ParentFault::Symlink => format!("parent {parent} is a symbolic link"),
            ParentFault::NotDirectory => format!("parent {parent} is not a directory"),
            ParentFault::Missing => format!("parent {parent} does not exist"),
            ParentFault::Io(step, source) => return io_error(entry, step, source),
        };
        ExtractError::Unsafe {
            entry: entry.to_string(),
            reason,
        }
    }
}

/// Opens (or creates) the directory `name` below `dir` without following a symlink there.
fn open_child_dir(dir: &Dir, name: &OsStr, missing: MissingParent) -> Result<Dir, ParentFault> {
    match dir.open_dir_nofollow(name) {
        Ok(child) => return Ok(child),
        Err(e) if e.kind() == io::ErrorKind::NotFound && missing == MissingParent::Create => {}
        Err(e) => return Err(diagnose(dir, name, "opening parent directory of", e)),
    }

    dir.create_dir(name)
        .map_err(|e| diagnose(dir, name, "creating parent directory of", e))?;
    set_dir_mode(dir, name, IMPLICIT_DIR_MODE)
        .map_err(|e| diagnose(dir, name, "setting the mode of a parent directory of", e))?;
    dir.open_dir_nofollow(name)
        .map_err(|e| diagnose(dir, name, "opening parent directory of", e))
}

/// Explains a failed open or create of a parent component by looking at what is there.
fn diagnose(dir: &Dir, name: &OsStr, step: &'static str, cause: io::Error) -> ParentFault {
    match dir.symlink_metadata(name) {
        Ok(meta) if meta.is_symlink() => ParentFault::Symlink,
        Ok(meta) if !meta.is_dir() => ParentFault::NotDirectory,
        Err(e) if e.kind() == io::ErrorKind::NotFound => ParentFault::Missing,
        _ => ParentFault::Io(step, cause),
    }
}
