//! The merged directory of an image: its layers applied in order over one directory, with
//! whiteouts (`.wh.NAME` removes NAME) and opaque directories (`.wh..wh..opq` hides what lower
//! layers put in its directory) honoured, as container runtimes apply them. It is built from
//! the layer directories with hard links (no file content is copied), published atomically like
//! a layer, and cached by manifest digest.
//!
//! The layer directories were extracted by this library under the extraction profile, so they
//! hold only directories, regular files and symlinks. Nothing here follows a symlink: every
//! entry is looked at with `symlink_metadata`, and a directory of a later layer replaces a link
//! or file of an earlier one before anything is written below it.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::store::Store;

/// The marker of an opaque directory.
const OPAQUE: &str = ".wh..wh..opq";

/// The prefix of a whiteout.
const WHITEOUT: &str = ".wh.";

/// The merged directory of the image `manifest_digest` whose layers are `layers` (base first),
/// built now unless it already exists.
pub(crate) fn merged_dir(
    store: &Store,
    manifest_digest: &str,
    layers: &[PathBuf],
) -> Result<PathBuf> {
    let target = store.merged_path(manifest_digest);
    if target.is_dir() {
        tracing::debug!(manifest = %manifest_digest, outcome = "hit", "merged directory");
        return Ok(target);
    }

    let staging = store.merged_staging_dir(manifest_digest)?;
    for layer in layers {
        apply_dir(layer, staging.path(), Path::new(""))
            .map_err(Error::io("merging layer", layer))?;
    }
    let published = store.publish_merged(staging, manifest_digest)?;
    tracing::debug!(
        manifest = %manifest_digest,
        layers = layers.len(),
        outcome = "built",
        "merged directory"
    );
    Ok(published)
}

/// Apply the directory `relative` of `layer` onto the same directory of `merged`.
fn apply_dir(layer: &Path, merged: &Path, relative: &Path) -> io::Result<()> {
    let (source, destination) = (layer.join(relative), merged.join(relative));
    let mut names: Vec<_> = fs::read_dir(&source)?
        .map(|entry| entry.map(|e| e.file_name()))
        .collect::<io::Result<_>>()?;
    names.sort();

    if names.iter().any(|name| name == OPAQUE) {
        clear_dir(&destination)?;
    }
    for name in &names {
        let text = name.to_string_lossy();
        if let Some(hidden) = text.strip_prefix(WHITEOUT).filter(|_| text != OPAQUE) {
            remove_any(&destination.join(hidden))?;
        }
    }

    for name in names
        .iter()
        .filter(|n| !n.to_string_lossy().starts_with(WHITEOUT))
    {
        let child = relative.join(name);
        let (from, to) = (layer.join(&child), merged.join(&child));
        let meta = fs::symlink_metadata(&from)?;
        if meta.is_dir() {
            make_dir(&to, meta.permissions().mode())?;
            apply_dir(layer, merged, &child)?;
            continue;
        }

        remove_any(&to)?;
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?;
        } else {
            fs::hard_link(&from, &to)?;
        }
    }
    Ok(())
}

/// Make `path` a directory with `mode`, replacing a file or link of a lower layer.
fn make_dir(path: &Path, mode: u32) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            fs::remove_file(path)?;
            fs::create_dir(path)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(path)?,
        Err(e) => return Err(e),
    }
    fs::set_permissions(path, fs::Permissions::from_mode((mode & 0o777) | 0o700))
}

/// Remove whatever is at `path` (a directory with its contents), if anything.
fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Remove everything in the directory `path`, if it is one.
fn clear_dir(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {}
        _ => return Ok(()),
    }
    for entry in fs::read_dir(path)? {
        remove_any(&entry?.path())?;
    }
    Ok(())
}
