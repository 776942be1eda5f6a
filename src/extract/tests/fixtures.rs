//! Shared setup for the extraction tests: a staging root next to a sentinel directory, a tar
//! builder that writes names verbatim, compressors, and assertions on results.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use cap_std::fs::Dir;
use tar::{EntryType, Header};

use crate::extract::{extract_layer, ExtractError, ExtractStats, Limits};

pub(super) const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub(super) const TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub(super) const DOCKER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub(super) const STEP_ZSTD: &str = "application/vnd.gitlab.step.layer.v1.tar+zstd";

/// A staging root `layer/` next to a sentinel directory `outside/` holding one file.
pub(super) struct Fixture {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    /// The staging root, `layer/`.
    pub(super) root: Dir,
    /// The sentinel directory, `outside/`, holding `secret`.
    pub(super) outside: PathBuf,
    before: Vec<String>,
}

impl Fixture {
    pub(super) fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().to_path_buf();
        let outside = base.join("outside");
        fs::create_dir(base.join("layer")).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), "keep").unwrap();
        fs::set_permissions(outside.join("secret"), fs::Permissions::from_mode(0o640)).unwrap();
        fs::set_permissions(&outside, fs::Permissions::from_mode(0o750)).unwrap();

        let root = Dir::open_ambient_dir(base.join("layer"), cap_std::ambient_authority()).unwrap();
        let before = snapshot_outside(&base);
        Fixture {
            _tmp: tmp,
            base,
            root,
            outside,
            before,
        }
    }

    pub(super) fn extract(
        &self,
        blob: &[u8],
        media_type: &str,
    ) -> Result<ExtractStats, ExtractError> {
        self.extract_with(blob, media_type, &Limits::default())
    }

    pub(super) fn extract_with(
        &self,
        blob: &[u8],
        media_type: &str,
        limits: &Limits,
    ) -> Result<ExtractStats, ExtractError> {
        extract_layer(blob, media_type, &self.root, limits)
    }

    /// A path inside the layer root.
    pub(super) fn path(&self, name: &str) -> PathBuf {
        self.base.join("layer").join(name)
    }

    /// What is at `name` in the layer root, without following a symlink.
    pub(super) fn kind(&self, name: &str) -> &'static str {
        let file_type = fs::symlink_metadata(self.path(name)).unwrap().file_type();
        if file_type.is_symlink() {
            "symlink"
        } else if file_type.is_dir() {
            "dir"
        } else if file_type.is_file() {
            "file"
        } else {
            "other"
        }
    }

    pub(super) fn outside_str(&self) -> &str {
        self.outside.to_str().unwrap()
    }

    pub(super) fn assert_outside_untouched(&self) {
        assert_eq!(
            snapshot_outside(&self.base),
            self.before,
            "something outside the root changed"
        );
    }
}

/// Everything next to the layer root: names, kinds, modes and contents.
fn snapshot_outside(base: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    let mut pending = vec![base.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for child in fs::read_dir(&dir).unwrap() {
            let path = child.unwrap().path();
            if path == base.join("layer") {
                continue;
            }
            let meta = fs::symlink_metadata(&path).unwrap();
            let detail = if meta.is_dir() {
                pending.push(path.clone());
                "dir".to_string()
            } else if meta.is_symlink() {
                format!("-> {}", fs::read_link(&path).unwrap().display())
            } else {
                String::from_utf8_lossy(&fs::read(&path).unwrap()).into_owned()
            };
            lines.push(format!("{} {:o} {detail}", path.display(), meta.mode()));
        }
    }
    lines.sort();
    lines
}

/// Builds a tar stream with raw headers, so that names tar-rs's builder would refuse can be used.
pub(super) struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    pub(super) fn new() -> Layer {
        Layer(tar::Builder::new(Vec::new()))
    }

    pub(super) fn file(self, name: &str, mode: u32, data: &[u8]) -> Layer {
        self.entry(EntryType::Regular, name, mode, None, data)
    }

    pub(super) fn dir(self, name: &str, mode: u32) -> Layer {
        self.entry(EntryType::Directory, name, mode, None, b"")
    }

    pub(super) fn symlink(self, name: &str, target: &str) -> Layer {
        self.entry(EntryType::Symlink, name, 0o777, Some(target), b"")
    }

    pub(super) fn hard_link(self, name: &str, target: &str) -> Layer {
        self.entry(EntryType::Link, name, 0o644, Some(target), b"")
    }

    pub(super) fn entry(
        mut self,
        kind: EntryType,
        name: &str,
        mode: u32,
        link: Option<&str>,
        data: &[u8],
    ) -> Layer {
        let mut header = raw_header(kind, name, mode, data.len() as u64);
        if let Some(link) = link {
            header.set_link_name_literal(link).unwrap();
        }
        header.set_cksum();
        self.0.append(&header, data).unwrap();
        self
    }

    pub(super) fn pax(mut self, records: &[(&str, &[u8])]) -> Layer {
        self.0
            .append_pax_extensions(records.iter().copied())
            .unwrap();
        self
    }

    /// Appends a header whose fields the caller has finished (checksum included).
    pub(super) fn header(mut self, header: &Header, data: &[u8]) -> Layer {
        self.0.append(header, data).unwrap();
        self
    }

    pub(super) fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

pub(super) fn raw_header(kind: EntryType, name: &str, mode: u32, size: u64) -> Header {
    let mut header = Header::new_gnu();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(1_700_000_000);
    header.set_cksum();
    header
}

pub(super) fn gzip(tar: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(tar).unwrap();
    encoder.finish().unwrap()
}

pub(super) fn zstd(tar: &[u8]) -> Vec<u8> {
    zstd::encode_all(tar, 3).unwrap()
}

pub(super) fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

pub(super) fn assert_unsafe(result: Result<ExtractStats, ExtractError>, reason_part: &str) {
    match result {
        Err(ExtractError::Unsafe { reason, .. }) => {
            assert!(
                reason.contains(reason_part),
                "reason {reason:?} lacks {reason_part:?}"
            )
        }
        other => panic!("expected Unsafe ({reason_part}), got {other:?}"),
    }
}

pub(super) fn assert_limit(result: Result<ExtractStats, ExtractError>, what_part: &str) {
    match result {
        Err(ExtractError::LimitExceeded { what, .. }) => {
            assert!(
                what.contains(what_part),
                "limit {what:?} is not about {what_part:?}"
            )
        }
        other => panic!("expected LimitExceeded ({what_part}), got {other:?}"),
    }
}

pub(super) fn assert_malformed(result: Result<ExtractStats, ExtractError>) {
    assert!(
        matches!(result, Err(ExtractError::Malformed(_))),
        "expected Malformed, got {result:?}"
    );
}

pub(super) fn assert_compression_mismatch(result: Result<ExtractStats, ExtractError>) {
    assert!(
        matches!(result, Err(ExtractError::CompressionMismatch { .. })),
        "expected CompressionMismatch, got {result:?}"
    );
}

/// Counts the bytes read through it.
pub(super) struct CountingReader<'a> {
    pub(super) inner: &'a [u8],
    pub(super) read: u64,
}

impl Read for CountingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

pub(super) fn step_layer() -> Vec<u8> {
    Layer::new()
        .dir("bin", 0o755)
        .file("bin/run", 0o755, b"#!/bin/sh\necho hi\n")
        .file("step.yml", 0o644, b"spec: {}\n")
        .finish()
}

pub(super) fn assert_step_layer_extracted(fixture: &Fixture, stats: &ExtractStats) {
    assert_eq!(
        fs::read(fixture.path("bin/run")).unwrap(),
        b"#!/bin/sh\necho hi\n"
    );
    // Stored read-only: the exec bits stay, the write bits go.
    assert_eq!(mode_of(&fixture.path("bin/run")), 0o555);
    assert_eq!(mode_of(&fixture.path("step.yml")), 0o444);
    assert_eq!(
        (stats.entries, stats.files, stats.bytes, stats.skipped),
        (3, 2, 27, 0)
    );
    fixture.assert_outside_untouched();
}
