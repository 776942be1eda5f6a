//! The on-disk store: content by digest, extracted layers, tag records, and atomic publish.
//!
//! ```text
//! <root>/
//!   oci-cache-layout        layout version ("1")
//!   blobs/sha256/<hex>      manifests, indexes and configs, verified, as served
//!   layers/sha256/<hex>/    one extracted layer per digest, published by rename
//!   tags/<hex>.json         last digest seen for a tag, keyed by sha256("registry/repo:tag")
//!   merged/sha256/<hex>/    an image's layers merged into one directory (hard links), by
//!                           manifest digest
//!   private/<hex>           a repository that asked for credentials, keyed by
//!                           sha256("registry/repo"); holds that name
//!   staging/                private work directories and files, renamed into place when done
//!   locks/sha256/<hex>      lock files: whoever holds one downloads that layer (see `lock`)
//!   pins/sha256/<hex>       pin files: shared locks held by results using that layer; a
//!                           prune removes a layer only with the exclusive lock
//!   uses/sha256/<hex>       empty; its mtime is the layer's last use (updated hourly at most)
//!   images/sha256/<hex>     {"manifest_digest", "reference", "layers"} of a fetched image
//!   stats.json              counters of every handle that closed (hits, misses, bytes)
//! ```
//!
//! Nothing under `blobs/`, `layers/` or `tags/` is ever written in place: each entry is written
//! in `staging/` and renamed over, so a reader sees either nothing or a complete, verified entry.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::reference::ImageReference;

const LAYOUT_FILE: &str = "oci-cache-layout";
const LAYOUT_VERSION: &str = "1";

/// A file in `staging/` this old is debris of a killed process: writing one takes milliseconds.
const STALE_STAGING_FILE: std::time::Duration = std::time::Duration::from_secs(60);

/// A merged directory in `staging/` this old is debris: building one takes seconds.
const STALE_STAGING_DIR: std::time::Duration = std::time::Duration::from_secs(600);

/// What the store remembers of a tag.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TagRecord {
    /// The reference as `registry/repository:tag`.
    pub reference: String,
    /// The digest of the manifest or index the tag pointed at.
    pub digest: String,
}

/// How often a layer's last use is written: more often costs a write per hit.
pub const USE_RESOLUTION: std::time::Duration = std::time::Duration::from_secs(3600);

/// What the store remembers of a fetched image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Its manifest digest.
    pub manifest_digest: String,
    /// The reference that first gave it.
    pub reference: String,
    /// Its layers' digests, base first.
    pub layers: Vec<String>,
}

/// A cache directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Open the store at `root`, creating its layout if it is new.
    pub fn open(root: &Path) -> Result<Store> {
        let root =
            std::path::absolute(root).map_err(Error::io("resolving cache directory", root))?;
        for dir in [
            "blobs/sha256",
            "layers/sha256",
            "merged/sha256",
            "tags",
            "private",
            "staging",
            "locks/sha256",
            "pins/sha256",
            "uses/sha256",
            "images/sha256",
        ] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(Error::io("creating cache directory", &path))?;
        }

        let layout = root.join(LAYOUT_FILE);
        match fs::read_to_string(&layout) {
            Ok(version) if version.trim() == LAYOUT_VERSION => {}
            Ok(version) => {
                return Err(Error::Io {
                    step: "checking cache layout",
                    path: layout.display().to_string(),
                    source: std::io::Error::other(format!(
                        "layout version {:?} is not supported (expected {LAYOUT_VERSION})",
                        version.trim()
                    )),
                })
            }
            Err(_) => write_atomically(&root, &layout, LAYOUT_VERSION.as_bytes())?,
        }

        let store = Store { root };
        store.reclaim_debris();
        Ok(store)
    }

    /// Remove what killed processes left in `staging/`: layer directories whose digest nobody
    /// holds the lock of, and files (manifests, records) older than a minute, which take
    /// milliseconds to write. Best effort: what cannot be removed now is left for later.
    fn reclaim_debris(&self) {
        let staging = self.root.join("staging");
        let Ok(entries) = fs::read_dir(&staging) else {
            return;
        };

        for entry in entries.filter_map(|entry| entry.ok()) {
            let (path, name) = (
                entry.path(),
                entry.file_name().to_string_lossy().into_owned(),
            );
            let removed = match entry.file_type() {
                // A removal that a killed prune left half done: already out of view.
                Ok(kind) if kind.is_dir() && name.starts_with("removed-") => {
                    fs::remove_dir_all(&path).is_ok()
                }
                Ok(kind) if kind.is_dir() && name.starts_with("merged-") => {
                    is_older_than(&entry, STALE_STAGING_DIR) && fs::remove_dir_all(&path).is_ok()
                }
                Ok(kind) if kind.is_dir() => self.reclaim_layer_dir(&path, &name),
                Ok(_) if writer_is_gone(&name) || is_older_than(&entry, STALE_STAGING_FILE) => {
                    fs::remove_file(&path).is_ok()
                }
                _ => false,
            };
            if removed {
                tracing::debug!(path = %path.display(), "staging debris removed");
            }
        }
    }

    /// Remove the staging directory `name` of a layer when nobody downloads that layer.
    fn reclaim_layer_dir(&self, path: &Path, name: &str) -> bool {
        let Some(hex) = name
            .strip_prefix("layer-")
            .and_then(|rest| rest.split('-').next())
        else {
            return false;
        };
        let Ok(digest) = crate::reference::parse_digest(&format!("sha256:{hex}")) else {
            return false;
        };

        // Held only while removing: a fetch that wants the layer waits these few moments.
        let Some(_lock) = crate::lock::try_lock_file(&self.layer_lock_path(&digest)) else {
            return false;
        };
        fs::remove_dir_all(path).is_ok()
    }

    /// A store in a new private directory under the system's temporary directory, for fetches
    /// with caching disabled. The caller owns the directory and removes it.
    pub fn scratch() -> Result<Store> {
        let dir = tempfile::Builder::new()
            .prefix("oci-cache-uncached-")
            .tempdir()
            .map_err(Error::io(
                "creating uncached output directory",
                std::env::temp_dir(),
            ))?;
        Store::open(&dir.keep())
    }

    /// The cache's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a verified blob (manifest, index, config) is kept.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.root.join("blobs").join(digest_path(digest))
    }

    /// Where an extracted layer is kept.
    pub fn layer_path(&self, digest: &str) -> PathBuf {
        self.root.join("layers").join(digest_path(digest))
    }

    /// The bytes of a cached blob, if present.
    pub fn read_blob(&self, digest: &str) -> Result<Option<Vec<u8>>> {
        let path = self.blob_path(digest);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading cached blob", &path)(e)),
        }
    }

    /// Keep `bytes` as the blob `digest`, after checking that they hash to it.
    pub fn write_blob(&self, digest: &str, bytes: &[u8]) -> Result<()> {
        let actual = sha256_digest(bytes);
        if actual != digest {
            return Err(Error::Integrity {
                what: format!("blob {digest}"),
                reference: self.root.display().to_string(),
                detail: format!("refusing to store: content hashes to {actual}"),
            });
        }
        write_atomically(&self.root, &self.blob_path(digest), bytes)
    }

    /// True when the layer `digest` is extracted and published.
    pub fn has_layer(&self, digest: &str) -> bool {
        self.layer_path(digest).is_dir()
    }

    /// The lock file that grants the right to download the layer `digest`.
    pub fn layer_lock_path(&self, digest: &str) -> PathBuf {
        self.root.join("locks").join(digest_path(digest))
    }

    /// A new private directory in `staging/` for the layer `digest`, removed when dropped.
    pub fn staging_dir(&self, digest: &str) -> Result<tempfile::TempDir> {
        self.new_staging_dir(&staging_prefix(digest))
    }

    /// A new directory in `staging/` whose name starts with `prefix` (which tells
    /// `reclaim_debris` what it is), removed when dropped.
    fn new_staging_dir(&self, prefix: &str) -> Result<tempfile::TempDir> {
        let staging = self.root.join("staging");
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&staging)
            .map_err(Error::io("creating staging directory", &staging))
    }

    /// Remove what fetches that died left in `staging/` for the layer `digest`. Only the holder
    /// of the layer's lock may call this: every other staging directory of that digest then
    /// belongs to a process that no longer runs.
    pub fn reclaim_staging(&self, digest: &str) -> Result<usize> {
        let staging = self.root.join("staging");
        let prefix = staging_prefix(digest);
        let entries = fs::read_dir(&staging).map_err(Error::io("listing staging", &staging))?;

        // Reclaiming is tidying: a directory that cannot be removed is left for the next try,
        // and never fails the fetch (its own staging directory is a new one).
        let mut reclaimed = 0;
        for entry in entries.filter_map(|entry| entry.ok()) {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let path = entry.path();
                match fs::remove_dir_all(&path) {
                    Ok(()) => reclaimed += 1,
                    Err(error) => {
                        tracing::warn!(path = %path.display(), %error, "staging debris not removed")
                    }
                }
            }
        }
        Ok(reclaimed)
    }

    /// Publish an extracted, verified layer by renaming its staging directory into place. When
    /// another fetch published the same digest first, that copy is kept and this one removed.
    pub fn publish_layer(&self, staging: tempfile::TempDir, digest: &str) -> Result<PathBuf> {
        publish_dir(staging, self.layer_path(digest), "publishing layer")
    }

    /// Where the merged directory of the image `manifest_digest` lives.
    pub fn merged_path(&self, manifest_digest: &str) -> PathBuf {
        self.root.join("merged").join(digest_path(manifest_digest))
    }

    /// A new private directory in `staging/` to build the merged directory of an image in.
    pub fn merged_staging_dir(&self, manifest_digest: &str) -> Result<tempfile::TempDir> {
        let hex = manifest_digest.trim_start_matches("sha256:");
        self.new_staging_dir(&format!("merged-{hex}-"))
    }

    /// Publish a merged directory by renaming it into place; when another fetch published it
    /// first, that copy is kept and this one removed.
    pub fn publish_merged(
        &self,
        staging: tempfile::TempDir,
        manifest_digest: &str,
    ) -> Result<PathBuf> {
        let target = self.merged_path(manifest_digest);
        publish_dir(staging, target, "publishing merged directory")
    }

    /// The pin file of the layer `digest` (see [`crate::lock::pin_layer`]).
    pub fn layer_pin_path(&self, digest: &str) -> PathBuf {
        self.root.join("pins").join(digest_path(digest))
    }

    /// Record that the layer `digest` was used now, unless that was recorded less than
    /// [`USE_RESOLUTION`] ago: a warm hit costs one `stat`, and a write at most hourly.
    pub fn touch_use(&self, digest: &str) {
        let path = self.root.join("uses").join(digest_path(digest));
        let recent = fs::metadata(&path)
            .and_then(|meta| meta.modified())
            .is_ok_and(|at| at.elapsed().is_ok_and(|age| age < USE_RESOLUTION));
        if recent {
            return;
        }
        let touched = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .and_then(|file| file.set_modified(std::time::SystemTime::now()));
        if let Err(error) = touched {
            tracing::debug!(path = %path.display(), %error, "last use not recorded");
        }
    }

    /// When the layer `digest` was last used, as far as the store recorded it (else when it
    /// was published).
    pub fn last_use(&self, digest: &str) -> std::time::SystemTime {
        let use_file = self.root.join("uses").join(digest_path(digest));
        fs::metadata(&use_file)
            .or_else(|_| fs::metadata(self.layer_path(digest)))
            .and_then(|meta| meta.modified())
            .unwrap_or(std::time::SystemTime::UNIX_EPOCH)
    }

    /// Remember the image `manifest_digest` made of `layers`, first given by `reference`;
    /// written once (a warm hit costs one `stat` here).
    pub fn record_image(
        &self,
        manifest_digest: &str,
        reference: &str,
        layers: &[String],
    ) -> Result<()> {
        let path = self.image_record_path(manifest_digest);
        if path.exists() {
            return Ok(());
        }
        let record = ImageRecord {
            manifest_digest: manifest_digest.to_string(),
            reference: reference.to_string(),
            layers: layers.to_vec(),
        };
        let bytes = serde_json::to_vec(&record).expect("an image record serialises");
        write_atomically(&self.root, &path, &bytes)
    }

    /// Every image record.
    pub fn image_records(&self) -> Vec<ImageRecord> {
        let dir = self.root.join("images/sha256");
        let Ok(entries) = fs::read_dir(&dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| self.read_image_record(&entry.ok()?.path()))
            .collect()
    }

    /// Remove the record of the image `manifest_digest` and its merged directory.
    pub fn remove_image(&self, manifest_digest: &str) -> Result<()> {
        let merged = self.merged_path(manifest_digest);
        if merged.exists() {
            self.remove_dir_atomically(&merged)?;
        }
        let record = self.image_record_path(manifest_digest);
        match fs::remove_file(&record) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io("removing image record", &record)(e))
            }
            _ => Ok(()),
        }
    }

    /// Remove the layer `digest`. The caller holds its pin exclusively: no result uses it.
    pub fn remove_layer(&self, digest: &str) -> Result<()> {
        self.remove_dir_atomically(&self.layer_path(digest))?;
        let _ = fs::remove_file(self.root.join("uses").join(digest_path(digest)));
        Ok(())
    }

    /// Take `path` out of view with one rename into `staging/`, then delete it: a reader sees
    /// the directory whole or not at all.
    fn remove_dir_atomically(&self, path: &Path) -> Result<()> {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let doomed = self.new_staging_dir(&format!("removed-{name}-"))?.keep();
        fs::remove_dir(&doomed).map_err(Error::io("preparing removal", &doomed))?;
        fs::rename(path, &doomed).map_err(Error::io("removing", path))?;
        fs::remove_dir_all(&doomed).map_err(Error::io("deleting", &doomed))
    }

    fn image_record_path(&self, manifest_digest: &str) -> PathBuf {
        let hex = manifest_digest.trim_start_matches("sha256:");
        self.root.join("images/sha256").join(format!("{hex}.json"))
    }

    fn read_image_record(&self, path: &Path) -> Option<ImageRecord> {
        serde_json::from_slice(&fs::read(path).ok()?).ok()
    }

    /// The counters saved by handles that closed.
    pub fn saved_counters(&self) -> crate::cache::Counters {
        fs::read(self.root.join("stats.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Add `counters` to the saved ones, under a lock that orders handles of every process.
    pub fn save_counters(&self, counters: &crate::cache::Counters) -> Result<()> {
        let lock_path = self.root.join("locks/stats");
        let _lock = crate::lock::flock_blocking(&lock_path, libc::LOCK_EX, "locking counters")?;
        let mut total = self.saved_counters();
        total.add(counters);
        let bytes = serde_json::to_vec(&total).expect("counters serialise");
        write_atomically(&self.root, &self.root.join("stats.json"), &bytes)
    }

    /// The record of a tag, if one was kept.
    pub fn read_tag(&self, reference: &ImageReference) -> Result<Option<TagRecord>> {
        let path = self.tag_path(reference);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("reading tag record", &path)(e)),
        };

        // A record that does not parse is treated as absent: the registry is asked again.
        Ok(serde_json::from_slice(&bytes).ok())
    }

    /// Remember that `reference`'s tag points at `digest`.
    pub fn write_tag(&self, reference: &ImageReference, digest: &str) -> Result<()> {
        let record = TagRecord {
            reference: tag_key(reference),
            digest: digest.to_string(),
        };
        let bytes = serde_json::to_vec(&record).expect("a tag record serialises");
        write_atomically(&self.root, &self.tag_path(reference), &bytes)
    }

    /// Record that `reference`'s repository asked for credentials: every later hit on it must
    /// first prove that the caller may read it.
    pub fn mark_private(&self, reference: &ImageReference) -> Result<()> {
        let path = self.private_path(reference);
        if path.exists() {
            return Ok(());
        }
        write_atomically(&self.root, &path, reference.name().as_bytes())
    }

    /// True when `reference`'s repository was recorded as private.
    pub fn is_private(&self, reference: &ImageReference) -> bool {
        self.private_path(reference).exists()
    }

    fn private_path(&self, reference: &ImageReference) -> PathBuf {
        let key = hex::encode(Sha256::digest(reference.name().as_bytes()));
        self.root.join("private").join(key)
    }

    /// All tag records.
    pub fn tags(&self) -> Result<Vec<TagRecord>> {
        let dir = self.root.join("tags");
        let entries = fs::read_dir(&dir).map_err(Error::io("listing tag records", &dir))?;
        let records = entries
            .filter_map(|entry| fs::read(entry.ok()?.path()).ok())
            .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
            .collect();
        Ok(records)
    }

    /// The digests of all published layers.
    pub fn layers(&self) -> Result<Vec<String>> {
        let dir = self.root.join("layers/sha256");
        let entries = fs::read_dir(&dir).map_err(Error::io("listing layers", &dir))?;
        let digests = entries
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .map(|hex| format!("sha256:{hex}"))
            .collect();
        Ok(digests)
    }

    fn tag_path(&self, reference: &ImageReference) -> PathBuf {
        let key = sha256_digest(tag_key(reference).as_bytes());
        let hex = key.trim_start_matches("sha256:");
        self.root.join("tags").join(format!("{hex}.json"))
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// `sha256:<hex>` as the relative path `sha256/<hex>`. Digests are validated before they get
/// here (see [`crate::reference::parse_digest`]), so the result is one plain file name deep.
fn digest_path(digest: &str) -> PathBuf {
    let (algorithm, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
    Path::new(algorithm).join(hex)
}

/// Sync the entries of the directory `staging` and rename it to `target`; when `target`
/// already exists (another fetch published it first), keep that one and drop `staging`.
///
/// The files' contents are not synced one by one: a killed process cannot leave a partial
/// directory (the page cache survives it), but a power loss right after the rename could
/// (ARCHITECTURE.md, "Why one directory sync").
fn publish_dir(staging: tempfile::TempDir, target: PathBuf, step: &'static str) -> Result<PathBuf> {
    let dir =
        fs::File::open(staging.path()).map_err(Error::io("opening staging", staging.path()))?;
    dir.sync_all()
        .map_err(Error::io("syncing staging", staging.path()))?;

    match fs::rename(staging.path(), &target) {
        Ok(()) => {
            let _ = staging.keep();
            Ok(target)
        }
        Err(_) if target.is_dir() => Ok(target),
        Err(e) => Err(Error::io(step, &target)(e)),
    }
}

/// True for a staging file `file-<pid>-…` whose writing process no longer runs.
fn writer_is_gone(name: &str) -> bool {
    let pid = name
        .strip_prefix("file-")
        .and_then(|rest| rest.split('-').next())
        .and_then(|pid| pid.parse::<libc::pid_t>().ok());
    let Some(pid) = pid.filter(|&pid| pid > 0) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let status = unsafe { libc::kill(pid, 0) };
    status == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

fn is_older_than(entry: &fs::DirEntry, age: std::time::Duration) -> bool {
    let modified = entry.metadata().and_then(|m| m.modified());
    modified.is_ok_and(|time| time.elapsed().is_ok_and(|elapsed| elapsed > age))
}

fn staging_prefix(digest: &str) -> String {
    format!("layer-{}-", digest.trim_start_matches("sha256:"))
}

fn tag_key(reference: &ImageReference) -> String {
    format!(
        "{}:{}",
        reference.name(),
        reference.tag().unwrap_or_default()
    )
}

/// Write `bytes` to a new file in `staging/`, sync it, and rename it over `path`.
fn write_atomically(root: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let staging = root.join("staging");
    // Named by the writer's process, so that debris of a killed writer is known at once.
    let mut file = tempfile::Builder::new()
        .prefix(&format!("file-{}-", std::process::id()))
        .tempfile_in(&staging)
        .map_err(Error::io("creating staging file", &staging))?;

    file.write_all(bytes)
        .map_err(Error::io("writing staging file", file.path()))?;
    file.as_file()
        .sync_all()
        .map_err(Error::io("syncing staging file", file.path()))?;

    file.persist(path)
        .map_err(|e| Error::io("publishing file", path)(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_files_of_exited_writers_are_known() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();

        assert!(writer_is_gone(&format!("file-{gone}-abc")));
        assert!(!writer_is_gone(&format!("file-{}-abc", std::process::id())));
        assert!(!writer_is_gone("layer-00-abc"));
    }

    #[test]
    fn blob_that_does_not_match_its_digest_is_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let digest = sha256_digest(b"right");

        assert!(store.write_blob(&digest, b"wrong").is_err());
        assert_eq!(store.read_blob(&digest).unwrap(), None);

        store.write_blob(&digest, b"right").unwrap();
        assert_eq!(store.read_blob(&digest).unwrap().unwrap(), b"right");
    }

    #[test]
    fn second_publish_of_a_layer_keeps_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let digest = sha256_digest(b"layer");

        let first = store.staging_dir(&digest).unwrap();
        fs::write(first.path().join("a"), "first").unwrap();
        let second = store.staging_dir(&digest).unwrap();
        fs::write(second.path().join("a"), "second").unwrap();

        let path = store.publish_layer(first, &digest).unwrap();
        store.publish_layer(second, &digest).unwrap();
        assert_eq!(fs::read_to_string(path.join("a")).unwrap(), "first");
        assert_eq!(fs::read_dir(dir.path().join("staging")).unwrap().count(), 0);
    }

    #[test]
    fn open_removes_layer_debris_that_nobody_holds() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (dead, busy) = (sha256_digest(b"dead"), sha256_digest(b"busy"));
        let debris = store.staging_dir(&dead).unwrap().keep();
        let in_progress = store.staging_dir(&busy).unwrap();
        let _held = crate::lock::try_lock_file(&store.layer_lock_path(&busy)).unwrap();

        Store::open(dir.path()).unwrap();

        assert!(!debris.exists());
        assert!(in_progress.path().exists());
    }

    #[test]
    fn reclaim_removes_only_the_digests_debris() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (dead, alive) = (sha256_digest(b"dead"), sha256_digest(b"alive"));
        let debris = store.staging_dir(&dead).unwrap().keep();
        let other = store.staging_dir(&alive).unwrap();

        assert_eq!(store.reclaim_staging(&dead).unwrap(), 1);
        assert!(!debris.exists());
        assert!(other.path().exists());
    }
}
